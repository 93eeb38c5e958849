"""Headroom of the toy base (tables/headroom.py) against hand computations."""

import numpy as np
import pytest

from inpo_bench.tables.headroom import best_of_n, best_of_n_kl, frontier_gain, headroom_table, tilt


def test_best_of_n_by_enumerating_subsets():
    rewards = np.array([[0.1, 0.5, 0.3], [0.9, 0.2, 0.4]])
    # prompt 1 sorted .1 .3 .5: pairs {.1,.3} {.1,.5} {.3,.5} -> max .3 .5 .5; prompt 2: .4 .9 .9
    assert best_of_n(rewards, 2) == pytest.approx(((0.3 + 0.5 + 0.5) / 3 + (0.4 + 0.9 + 0.9) / 3) / 2)
    assert best_of_n(rewards, 1) == pytest.approx(rewards.mean())
    assert best_of_n(rewards, 3) == pytest.approx((0.5 + 0.9) / 2)
    rng = np.random.default_rng(0)
    big = rng.random((5, 8))
    from itertools import combinations

    brute = np.mean([np.mean([max(row[list(c)]) for c in combinations(range(8), 3)]) for row in big])
    assert best_of_n(big, 3) == pytest.approx(brute)
    with pytest.raises(ValueError, match="1 <= n <= 3"):
        best_of_n(rewards, 4)


def test_tilt_limits_and_kl():
    rewards = np.array([[0.2, 0.4, 0.9], [0.1, 0.1, 0.7]])
    gain, kl = tilt(rewards, 1e6)  # no tilt
    assert gain == pytest.approx(0.0, abs=1e-6) and kl == pytest.approx(0.0, abs=1e-9)
    gain, kl = tilt(rewards, 1e-6)  # all weight on each prompt's best
    assert gain == pytest.approx(((0.9 - 0.5) + (0.7 - 0.3)) / 2) and kl == pytest.approx(np.log(3))
    # tau 0.5 on one prompt by hand
    w = np.exp(np.array([0.2, 0.4, 0.9]) / 0.5)
    w /= w.sum()
    gain, kl = tilt(rewards[:1], 0.5)
    assert gain == pytest.approx(w @ [0.2, 0.4, 0.9] - 0.5) and kl == pytest.approx(np.sum(w * np.log(3 * w)))
    assert best_of_n_kl(1) == 0.0 and best_of_n_kl(2) == pytest.approx(np.log(2) - 0.5)


def test_headroom_table_and_the_frontier_between_points():
    rewards = np.random.default_rng(1).random((20, 8))
    table = headroom_table("toy_seen", rewards, [0.01, 0.1, 1.0])
    assert list(table.selection) == ["best_of_n"] * 8 + ["tilt"] * 3
    bon = table[table.selection == "best_of_n"]
    assert bon.gain.is_monotonic_increasing and bon.gain.iloc[0] == pytest.approx(0.0, abs=1e-12)
    tilts = table[table.selection == "tilt"].sort_values("kl")
    assert tilts.gain.is_monotonic_increasing and tilts.tau.tolist() == [1.0, 0.1, 0.01]
    first, second = tilts.iloc[0], tilts.iloc[1]
    middle = (first.kl + second.kl) / 2
    assert frontier_gain(table, middle) == pytest.approx((first.gain + second.gain) / 2)
    assert frontier_gain(table, 0.0) == 0.0 and frontier_gain(table, 100.0) == pytest.approx(tilts.gain.iloc[-1])


def test_reward_vs_kl_reads_both_frontiers_at_each_models_divergence():
    import pandas as pd

    from inpo_bench.tables.headroom import reward_vs_kl

    headroom = pd.DataFrame(
        {
            "selection": ["best_of_n", "best_of_n", "tilt", "tilt"],
            "n": [1, 2, np.nan, np.nan],
            "gain": [0.0, 0.04, 0.02, 0.06],
            "kl": [0.0, np.log(2) - 0.5, 0.1, 0.5],
        }
    )
    table = reward_vs_kl(
        "toy_seen",
        headroom,
        {"dpo": (0.01, 0.002, 0.018), "sft": (-0.01, -0.02, 0.0)},
        {"dpo": {"chain_kl": 0.3, "eps_mse": 1e-4}, "sft": {"chain_kl": 0.05, "eps_mse": 2e-4}},
    ).set_index("model")
    assert table.loc["dpo", "tilt_gain_at_kl"] == pytest.approx(0.04)  # halfway from 0.1 (.02) to 0.5 (.06)
    assert table.loc["dpo", "share_of_tilt"] == pytest.approx(0.25)
    assert table.loc["dpo", "best_of_n_gain_at_kl"] == pytest.approx(0.04)  # beyond best-of-2's KL: its gain
    assert table.loc["sft", "tilt_gain_at_kl"] == pytest.approx(0.01)  # between 0 at 0 and .02 at 0.1
    assert table.loc["sft", "share_of_tilt"] == pytest.approx(-1.0)
    # read backwards: DPO's .01 is half of the tilt's first point (.02 at 0.1 nats) and a quarter of best-of-2's .04
    assert table.loc["dpo", "tilt_kl_for_gain"] == pytest.approx(0.05)
    assert table.loc["dpo", "best_of_n_for_gain"] == pytest.approx(1.25)
    assert np.isnan(table.loc["sft", "tilt_kl_for_gain"]) and np.isnan(table.loc["sft", "best_of_n_for_gain"])
