"""Shared fixtures: the default config, a toy world and a tiny random model saved in the real formats."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(*args: str, cwd: Path = REPO, check: bool = True) -> subprocess.CompletedProcess:
    """Run the workflow as users do, in a subprocess."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole DAG of the tiny test config, run once per test session; returns its results/tiny folder."""
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(workdir))
    return workdir / "results" / "tiny"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The paper-scale DAG of config/smoke-sd.yaml on tiny stand-ins, once per session; returns its directory
    (whose resources/smoke/ holds every stand-in, so other smoke runs can share it)."""
    workdir = tmp_path_factory.mktemp("smoke")
    snakemake("--cores", "2", "--configfile", str(REPO / "config" / "smoke-sd.yaml"), "--directory", str(workdir))
    return workdir


@pytest.fixture(scope="session")
def default_config() -> dict:
    from inpo_bench.config import load_config

    return load_config(REPO / "config" / "config.yaml")


@pytest.fixture(scope="session")
def world(default_config):
    from inpo_bench.toyworld.world import World

    return World.from_config(default_config["world"], default_config["seed"])


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, default_config, world) -> Path:
    """An untrained toy base (random weights), saved and reloaded through the real code."""
    import torch

    from inpo_bench.models.bundle import save_full_model
    from inpo_bench.models.tiny import build_toy_model

    arch = default_config["toy_model"]
    torch.manual_seed(0)
    model = build_toy_model(arch, world.words, world.resolution)
    out = tmp_path_factory.mktemp("models") / "base"
    save_full_model(out, model)
    return out
