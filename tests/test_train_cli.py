"""Training as the rules run it: kill -9 and resume, two processes under accelerate, divergence."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from safetensors.torch import load_file

from inpo_bench.config import deep_merge, load_config, training_spec
from tests.conftest import REPO, TINY

pytestmark = pytest.mark.slow


def train_command(tiny_run: Path, method: str, out: Path, scratch: Path, overrides: dict) -> list[str]:
    """The command the train rule runs (config.training_spec for --spec), with method settings overridden."""
    config = load_config(REPO / "config" / "config.yaml", TINY)
    method_config = deep_merge(config[method], overrides)
    spec = {**training_spec(config, method_config), "device": "cpu"}
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
        "--checkpoint-every",
        str(method_config["checkpoint_every"]),
        "--threads",
        "1",
    ]


def run(args: list[str], launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*(launcher or [sys.executable]), *args], env=env, capture_output=True, text=True)


def unet_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "unet" / "diffusion_pytorch_model.safetensors")


ACCELERATE_2 = [
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


def kill_after_checkpoint(command: list[str], scratch: Path, step: int) -> None:
    """Start a training command and kill -9 it and every process below it once `step` is saved, as a cluster
    scheduler ends a job (torchrun starts its workers in sessions of their own, out of reach of killpg)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 180
    while not (scratch / f"step-{step:07d}").is_dir():
        assert process.poll() is None and time.time() < deadline, "training ended before the checkpoint"
        time.sleep(0.05)
    tree = [process.pid, *(child.pid for child in psutil.Process(process.pid).children(recursive=True))]
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    psutil.wait_procs([p for p in map(_process, tree[1:]) if p is not None], timeout=30)


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def largest_change(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("method", ["dpo", "inpo"])
def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tiny_run, tmp_path, method):
    overrides = {"steps": 24, "checkpoint_every": 4, "eval_every": 0}
    reference = tmp_path / "reference"
    result = run(train_command(tiny_run, method, reference, tmp_path / "ref-scratch", overrides))
    assert result.returncode == 0, result.stderr

    out, scratch = tmp_path / "run", tmp_path / "scratch"
    kill_after_checkpoint([sys.executable, *train_command(tiny_run, method, out, scratch, overrides)], scratch, 8)
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


def test_two_processes_resume_exactly_and_train_what_one_process_trains(tiny_run, tmp_path):
    """Two gloo processes killed after a checkpoint resume (every rank, not just rank 0) to the weights of an
    uninterrupted two-process run; a one-process run of the same pairs_per_step trains the same model up to the
    order of floating-point sums, and does not resume from the two-process checkpoints."""
    overrides = {"steps": 24, "checkpoint_every": 4, "eval_every": 0, "batch_size": 2}
    uninterrupted, resumed, single = tmp_path / "two", tmp_path / "two-resumed", tmp_path / "one"
    result = run(train_command(tiny_run, "dpo", uninterrupted, tmp_path / "s-two", overrides), launcher=ACCELERATE_2)
    assert result.returncode == 0, result.stderr
    two_record = json.loads((uninterrupted / "train.json").read_text())
    assert two_record["processes"] == 2 and two_record["pairs_per_step"] == 4 and two_record["grad_accum"] == 1

    scratch = tmp_path / "s-resumed"
    kill_after_checkpoint([*ACCELERATE_2, *train_command(tiny_run, "dpo", resumed, scratch, overrides)], scratch, 8)
    assert not (resumed / "model.json").exists()
    result = run(train_command(tiny_run, "dpo", resumed, scratch, overrides), launcher=ACCELERATE_2)
    assert result.returncode == 0, result.stderr  # rank 1 restores its state too (it segfaulted here before)
    assert "resumed from" in result.stdout
    two = unet_weights(uninterrupted)
    for key, value in two.items():
        assert torch.equal(value, unet_weights(resumed)[key]), key

    kill_after_checkpoint([*ACCELERATE_2, *train_command(tiny_run, "dpo", single, scratch, overrides)], scratch, 8)
    assert not (single / "model.json").exists()
    result = run(train_command(tiny_run, "dpo", single, scratch, overrides))
    assert result.returncode == 0, result.stderr
    assert "ignoring checkpoints" in result.stdout and "resumed from" not in result.stdout
    record = json.loads((single / "train.json").read_text())
    assert record["processes"] == 1 and record["pairs_per_step"] == 4 and record["grad_accum"] == 2
    moved = largest_change(two, unet_weights(tiny_run / "models" / "base"))
    assert largest_change(unet_weights(single), two) < 0.01 * moved


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
