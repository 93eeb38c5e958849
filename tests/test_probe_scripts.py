"""The toy-world probe scripts of bench/ (issue 13) on the tiny end-to-end run: they read a run as users have it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, TINY, snakemake


def probe(script: str, run: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--run", str(run), "--configfile", str(TINY), *args],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def row(output: str, label: str) -> list[float]:
    """The numbers of the printed table's row `label`."""
    lines = [line for line in output.splitlines() if line.startswith(label + " ")]
    assert len(lines) == 1, output
    return [float(x) for x in lines[0][len(label) :].split()]


def test_gradient_direction_gives_smpo_its_pair_scores(tiny_run):
    # SmPO's objective needs the pairs scored by its label scorer; the script built it without them and crashed
    target = tiny_run.relative_to(tiny_run.parents[1]) / "data" / "pair_scores" / "toy_reward.parquet"
    snakemake("--cores", "2", str(target), "--configfile", str(TINY), "--directory", str(tiny_run.parents[1]))
    args = ("--methods", "smpo", "--controls", "0", "--prompts", "2", "--draws", "1", "--sizes", "1e-4")
    output = probe("gradient_direction.py", tiny_run, *args)
    assert re.search(r"^smpo\s+[+-]\d\.\d{4}\s", output, re.MULTILINE), output


def test_oracle_terms_resampled_at_the_evaluation_guidance_are_the_stored_samples_terms(tiny_run):
    stored = row(probe("oracle_terms.py", tiny_run, "--models", "base"), "base")
    fresh = probe("oracle_terms.py", tiny_run, "--models", "base", "--guidance", "4", "1")
    assert row(fresh, "base, guidance 4") == stored  # the sample rule's prompts, seeds, steps and batches
    assert row(fresh, "base, guidance 1") != stored
