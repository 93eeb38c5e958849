"""The probe scripts of bench/: the toy-world ones (issue 13) on the tiny end-to-end run, as users have it (no test
writes into the shared run: other tests count the jobs it still lacks), and the paper path's GPU check on a CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO, TINY

pytestmark = pytest.mark.slow


def probe(script: str, run: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--run", str(run), "--configfile", str(TINY), *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert not check or result.returncode == 0, result.stderr[-3000:]
    return result


def test_gradient_direction_gives_smpo_its_pair_scores(tiny_run, tmp_path):
    # SmPO's objective needs the pairs scored by its label scorer; the script built it without them and crashed
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "models" / "base", run / "models" / "base")
    (run / "data").mkdir()
    shutil.copy(tiny_run / "world.json", run)
    shutil.copy(tiny_run / "data" / "pairs.parquet", run / "data")
    args = ("--methods", "smpo", "--controls", "0", "--prompts", "2", "--draws", "1", "--sizes", "1e-4")
    missing = probe("gradient_direction.py", run, *args, check=False)
    assert missing.returncode != 0 and "toy_reward.parquet is missing, which smpo needs" in missing.stderr
    ids = pd.read_parquet(run / "data" / "pairs.parquet", columns=["pair_id"]).pair_id
    scores = np.random.default_rng(0).uniform(size=(len(ids), 2))
    (run / "data" / "pair_scores").mkdir()
    pd.DataFrame({"pair_id": ids, "score_w": scores[:, 0], "score_l": scores[:, 1]}).to_parquet(
        run / "data" / "pair_scores" / "toy_reward.parquet"
    )
    output = probe("gradient_direction.py", run, *args).stdout
    assert re.search(r"^smpo\s+[+-]\d\.\d{4}\s", output, re.MULTILINE), output


def test_oracle_terms_resampled_at_the_stored_guidance_makes_the_stored_images(tiny_run, monkeypatch):
    spec = importlib.util.spec_from_file_location("oracle_terms", REPO / "bench" / "oracle_terms.py")
    oracle_terms = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle_terms)
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the script pins the threads the sample rule used
        monkeypatch.setenv(var, os.environ.get(var, ""))
    threads = torch.get_num_threads()
    record = json.loads((tiny_run / "samples" / "base" / "toy_seen" / "sample.json").read_text())
    if record["dtype"] != "float32":
        pytest.skip("the tiny run sampled in half precision on a GPU; the script samples float32 on a CPU")
    try:
        fresh = oracle_terms.sampled(tiny_run, "base", "toy_seen", [record["cfg"], 1.0], batch_size=0)
    finally:
        torch.set_num_threads(threads)
    images, prompts = oracle_terms.stored(tiny_run, "base", "toy_seen")
    assert fresh[record["cfg"]][1] == prompts
    assert all(np.array_equal(a, b) for a, b in zip(fresh[record["cfg"]][0], images, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(fresh[1.0][0], images))  # another scale, other images


def test_the_gpu_check_runs_on_a_cpu_and_finds_every_step_zero_loss_at_its_initial_value(tmp_path):
    """bench/gpu_check.py is the prepared device check; on a CPU it runs its numerics part (no fp16 training)."""
    options = ["--device", "cpu", "--methods", "sft", "dpo", "--steps", "2", "--sample-images", "4"]
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out", str(tmp_path), *options],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    zero = {(r["method"], r["precision"]): r for r in report["step_zero"]}
    assert set(zero) == {("dpo", p) for p in ("fp32", "bf16", "fp16")}  # SFT has no step-0 value
    assert all(r["loss"] == pytest.approx(np.log(2), abs=1e-6) and r["model_minus_ref_mse"] == 0 for r in zero.values())
    trained = {(r["method"], r["precision"]) for r in report["training"]}
    assert trained == {(m, p) for m in ("sft", "dpo") for p in ("fp32", "bf16")}
    assert len(report["losses"]["dpo/bf16"]) == 2 and report["sampling"][0]["images_per_second"] > 0
    assert "## Step-0 loss" in (tmp_path / "gpu_check.md").read_text()


@pytest.mark.long  # the smoke DAG once more, about a minute
def test_the_gpu_check_runs_the_smoke_dag_and_keeps_its_report(tmp_path):
    options = ["--device", "cpu", "--methods", "dpo", "--steps", "1", "--sample-images", "2", "--dag", "fp16"]
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--out", str(tmp_path), *options],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = json.loads((tmp_path / "gpu_check.json").read_text())["dag"]
    assert run["precision"] == "fp16" and run["exit"] == 0, run["tail"]
    assert "smoke DAG at fp16: exit 0" in (tmp_path / "gpu_check.md").read_text()
