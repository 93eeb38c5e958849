"""The learned-scorer agreement table against a hand count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inpo_bench.tables.agreement import scorer_agreement


def _write(path, values):
    pd.DataFrame({"prompt_id": [f"p{i}" for i in range(len(values))], "seed": 0, "score": values}).to_csv(
        path, index=False
    )
    return path


def test_agreement_counts_the_pairs_both_scorers_order_alike(tmp_path):
    # four prompts; oracle prefers the model on p0, p1, p2 and ties p3; the learned scorer prefers it on p0, p2, p3
    files = {
        ("m", "set", "oracle"): _write(tmp_path / "mo.csv", [0.9, 0.8, 0.7, 0.5]),
        ("b", "set", "oracle"): _write(tmp_path / "bo.csv", [0.1, 0.2, 0.3, 0.5]),
        ("m", "set", "learned"): _write(tmp_path / "ml.csv", [2.0, 1.0, 3.0, 4.0]),
        ("b", "set", "learned"): _write(tmp_path / "bl.csv", [1.0, 5.0, 0.0, 1.0]),
    }
    table = scorer_agreement(files, [("m", "b")], learned="learned", reference="oracle", n_boot=200)
    row = table[table.comparison == "m vs b"].iloc[0]
    # p3 is a tie for the oracle and leaves the count; of p0..p2 they agree on p0 and p2
    assert row.n == 3 and row.agreement == pytest.approx(2 / 3)
    assert row.win_rate == pytest.approx(3 / 4) and row.reference_win_rate == pytest.approx(3.5 / 4)
    assert row.ci_low <= row.agreement <= row.ci_high
    every = table[table.comparison == "all images (Spearman)"].iloc[0]
    # Spearman over the 8 images = Pearson of their ranks, counted by hand (ties: the average rank)
    learned_ranks = [5, 3, 6, 7, 3, 8, 1, 3]  # scores [2, 1, 3, 4 | 1, 5, 0, 1]
    oracle_ranks = [8, 7, 6, 4.5, 1, 2, 3, 4.5]  # scores [.9, .8, .7, .5 | .1, .2, .3, .5]
    expected = np.corrcoef(learned_ranks, oracle_ranks)[0, 1]
    assert every.n == 8 and every.agreement == pytest.approx(expected)


def test_comparisons_without_both_scorers_are_left_out(tmp_path):
    files = {
        ("m", "set", "learned"): _write(tmp_path / "ml.csv", [1.0]),
        ("b", "set", "learned"): _write(tmp_path / "b.csv", [0.0]),
    }
    assert scorer_agreement(files, [("m", "b")], learned="learned", reference="oracle").empty


def test_the_tables_command_writes_the_agreement_table(tmp_path):
    from inpo_bench.cli import main

    root = tmp_path / "scores"
    for model, oracle, learned in (("base", [0.1, 0.5], [0.0, 2.0]), ("dpo", [0.3, 0.2], [1.0, 1.0])):
        for scorer, values in (("oracle_reward", oracle), ("toy_reward", learned)):
            (root / model / "toy_seen").mkdir(parents=True, exist_ok=True)
            _write(root / model / "toy_seen" / f"{scorer}.csv", values)
    files = [str(p) for p in sorted(root.rglob("*.csv"))]
    out = tmp_path / "tables"
    args = ["tables", "--scores", *files, "--comparisons", "dpo:base", "--out-dir", str(out)]
    assert main([*args, "--agreement", "toy_reward:oracle_reward"]) == 0
    table = pd.read_csv(out / "scorer_agreement.csv")
    row = table[table.comparison == "dpo vs base"].iloc[0]
    assert row.n == 2 and row.agreement == 1.0  # p0: both prefer dpo; p1: both prefer base
    assert "toy_reward agrees with oracle_reward" in (out / "scorer_agreement.md").read_text()
