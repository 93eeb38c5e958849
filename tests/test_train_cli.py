"""Training as the rules run it: kill -9 and resume, two processes under accelerate, divergence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from inpo_bench.config import deep_merge, load_config
from tests.conftest import REPO, TINY

pytestmark = pytest.mark.slow


def train_command(tiny_run: Path, method: str, out: Path, scratch: Path, overrides: dict) -> list[str]:
    config = load_config(REPO / "config" / "config.yaml", TINY)
    spec = {
        "method": deep_merge(config[method], overrides),
        "progress_eval": config["progress_eval"],
        "training": config["training"],
        "encoding": config["data"]["encoding"],
        "seed": 0,
        "device": "cpu",
    }
    return [
        "-m",
        "inpo_bench",
        "train",
        "--method",
        method,
        "--init",
        str(tiny_run / "models" / "base"),
        "--pairs",
        str(tiny_run / "data" / "pairs.parquet"),
        "--spec",
        json.dumps(spec),
        "--out",
        str(out),
        "--scratch",
        str(scratch),
        "--threads",
        "1",
    ]


def run(args: list[str], launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*(launcher or [sys.executable]), *args], env=env, capture_output=True, text=True)


def unet_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "unet" / "diffusion_pytorch_model.safetensors")


@pytest.mark.parametrize("method", ["dpo", "inpo"])
def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tiny_run, tmp_path, method):
    overrides = {"steps": 24, "checkpoint_every": 4, "eval_every": 0}
    reference = tmp_path / "reference"
    result = run(train_command(tiny_run, method, reference, tmp_path / "ref-scratch", overrides))
    assert result.returncode == 0, result.stderr

    out, scratch = tmp_path / "run", tmp_path / "scratch"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [sys.executable, *train_command(tiny_run, method, out, scratch, overrides)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not (scratch / "step-0000008").is_dir():
        assert process.poll() is None and time.time() < deadline, "training ended before the second checkpoint"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "model.json").exists()

    result = run(train_command(tiny_run, method, out, scratch, overrides))
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stdout
    resumed, uninterrupted = unet_weights(out), unet_weights(reference)
    assert resumed.keys() == uninterrupted.keys()
    for key in resumed:
        assert torch.equal(resumed[key], uninterrupted[key]), key
    log = (out / "train_log.csv").read_text().splitlines()
    assert len(log) == 1 + 24  # the resumed log carries the steps before the kill
    assert not list(scratch.glob("step-*"))  # and the checkpoints are gone once the model is saved


def test_two_processes_under_accelerate_write_the_same_outputs(tiny_run, tmp_path):
    overrides = {"steps": 3, "checkpoint_every": 2}
    single, double = tmp_path / "one", tmp_path / "two"
    assert run(train_command(tiny_run, "dpo", single, tmp_path / "s1", overrides)).returncode == 0
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    result = run(train_command(tiny_run, "dpo", double, tmp_path / "s2", overrides), launcher=launcher)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in double.iterdir())
    assert json.loads((double / "train.json").read_text())["processes"] == 2
    assert json.loads((single / "train.json").read_text())["processes"] == 1
    weights = unet_weights(double)
    assert all(torch.isfinite(w).all() for w in weights.values())
    # data parallelism adds each rank's micro-batch, so two processes train on different pairs than one
    assert any(not torch.equal(weights[k], w) for k, w in unet_weights(single).items())


def test_divergence_is_a_one_line_error_and_writes_no_model(tiny_run, tmp_path):
    result = run(train_command(tiny_run, "dpo", tmp_path / "out", tmp_path / "scratch", {"lr": 1e30, "steps": 6}))
    assert result.returncode == 1
    assert "inpo-bench train: error: step" in result.stderr and "not finite" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "model.json").exists()


def test_train_seed_replaces_the_run_seed(tiny_run, tmp_path):
    overrides = {"steps": 2, "checkpoint_every": 0, "eval_every": 0}
    weights = {}
    for name, train_seed in (("run", None), ("same", 0), ("other", 5)):  # the run seed is 0
        out = tmp_path / name
        settings = {**overrides, "train_seed": train_seed}
        result = run(train_command(tiny_run, "dpo", out, tmp_path / f"{name}-scratch", settings))
        assert result.returncode == 0, result.stderr
        weights[name] = unet_weights(out)
    assert json.loads((tmp_path / "other" / "train.json").read_text())["seed"] == 5
    assert all(torch.equal(weights["run"][key], weights["same"][key]) for key in weights["run"])
    assert any(not torch.equal(weights["run"][key], weights["other"][key]) for key in weights["run"])
