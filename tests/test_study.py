"""The toy study's tables: seed-inclusive gains, curves on three compute axes, compute to reach DPO's gain."""

import json

import numpy as np
import pandas as pd
import pytest

from inpo_bench.tables.curves import training_curves
from inpo_bench.tables.study import (
    claim_stability,
    compute_to_reach,
    curve_summary,
    gain_stability,
    interval_target,
    seed_gains,
    seeded_difference,
    study_claims,
)


def test_a_constant_shift_has_a_degenerate_interval():
    b = np.random.default_rng(0).normal(size=(1, 40))
    point, low, high = seeded_difference(b + 0.25, b, n_boot=500)
    assert point == pytest.approx(0.25) and low == pytest.approx(0.25) and high == pytest.approx(0.25)


def test_the_interval_holds_the_seed_spread_that_prompts_alone_miss():
    b = np.random.default_rng(1).normal(size=(1, 50))
    a = np.concatenate([b + 0.0, b + 0.1, b + 0.2])  # three seeds, no prompt-level noise in the gain
    point, low, high = seeded_difference(a, b, n_boot=2000)
    assert point == pytest.approx(0.1)
    assert 0.0 <= low < 0.07 and 0.13 < high <= 0.2  # a bootstrap of 3 seed means: within their range


def test_the_bootstrap_equals_a_loop_over_explicit_resamples():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 7)), rng.normal(size=(2, 7)) + 0.3
    n_boot = 300
    _, low, high = seeded_difference(a, b, n_boot=n_boot, seed=5)
    # the same draws in the same order, applied as indices instead of counts
    draws = np.random.default_rng(5)
    prompts = draws.integers(0, 7, size=(n_boot, 7))
    seeds_a = draws.integers(0, 3, size=(n_boot, 3))
    seeds_b = draws.integers(0, 2, size=(n_boot, 2))
    replicates = [a[sa][:, p].mean() - b[sb][:, p].mean() for p, sa, sb in zip(prompts, seeds_a, seeds_b, strict=True)]
    assert (low, high) == pytest.approx(tuple(np.quantile(replicates, [0.025, 0.975])), abs=1e-12)


def write_scores(path, prompt_means, seeds=(0, 1)):
    """A score file whose per-prompt mean over `seeds` is prompt_means[i] (seed k: mean + (k - mean k) / 10)."""
    rows = [
        {"prompt_id": f"p{i}", "seed": s, "score": m + (s - np.mean(seeds)) / 10}
        for i, m in enumerate(prompt_means)
        for s in seeds
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_seed_gains_averages_seeds_and_reports_each(tmp_path):
    base = np.linspace(0.2, 0.6, 30)
    scores = {("base", "toy_seen", "oracle_reward"): write_scores(tmp_path / "base.csv", base)}
    for k, shift in enumerate([0.01, 0.07, 0.13]):
        model = "dpo" if k == 0 else f"dpo/train_seed~{k}"
        scores[model, "toy_seen", "oracle_reward"] = write_scores(tmp_path / f"dpo{k}.csv", base + shift)
    scores["inpo", "toy_seen", "oracle_reward"] = write_scores(tmp_path / "inpo.csv", base - 0.02)
    groups = {"base": ["base"], "dpo": ["dpo", "dpo/train_seed~1", "dpo/train_seed~2"], "inpo": ["inpo"]}
    gains = seed_gains(scores, groups, [("dpo", "base"), ("inpo", "base"), ("inpo", "dpo"), ("sft", "base")], 500)
    by = gains.set_index(["model", "baseline"])
    assert ("sft", "base") not in by.index  # no scores for sft: no row
    dpo = by.loc[("dpo", "base")]
    assert dpo.gain == pytest.approx(0.07) and dpo.seeds == 3 and dpo.baseline_seeds == 1 and dpo.prompts == 30
    assert dpo.per_seed == "+0.010 / +0.070 / +0.130" and dpo.verdict == "higher"
    assert by.loc[("inpo", "base")].verdict == "lower"
    assert by.loc[("inpo", "dpo")].gain == pytest.approx(-0.09)
    target = interval_target(gains).set_index(["model", "baseline"])
    # a third of DPO's gain (0.0233) is above 0.01; DPO's seed spread makes its own interval wider than that
    assert target.loc[("inpo", "base")].target_half_width == pytest.approx(0.07 / 3)
    assert target.loc[("inpo", "base")].meets_target and not target.loc[("dpo", "base")].meets_target


def test_seed_gains_refuses_unpaired_samples(tmp_path):
    scores = {
        ("base", "s", "r"): write_scores(tmp_path / "a.csv", [0.1, 0.2]),
        ("dpo", "s", "r"): write_scores(tmp_path / "b.csv", [0.1, 0.2], seeds=(0, 2)),
    }
    with pytest.raises(ValueError, match="paired"):
        seed_gains(scores, {"base": ["base"], "dpo": ["dpo"]}, [("dpo", "base")])


def curves_of(rewards: dict[str, list[float]], forwards_per_step: dict[str, int]) -> pd.DataFrame:
    rows = []
    for model, values in rewards.items():
        method = model.split("/")[0]
        for k, reward in enumerate(values):
            step = 10 * k
            rows.append(
                {
                    "model": model,
                    "step": step,
                    "unet_forwards": step * forwards_per_step[method],
                    "seconds": step * 0.5,
                    "reward": reward,
                }
            )
    return pd.DataFrame(rows)


GROUPS = {"dpo": ["dpo", "dpo/train_seed~1"], "inpo": ["inpo", "inpo/train_seed~1"]}
CURVES = curves_of(
    {
        "dpo": [0.40, 0.42, 0.44, 0.46],  # final gain 0.06
        "dpo/train_seed~1": [0.40, 0.41, 0.43, 0.44],  # final gain 0.04: the mean gain is 0.05
        "inpo": [0.40, 0.46, 0.46, 0.47],  # reaches 0.45 at step 10
        "inpo/train_seed~1": [0.40, 0.43, 0.45, 0.45],  # at step 20; half the gain (0.425) at 10
    },
    {"dpo": 128, "inpo": 288},
)


def test_compute_to_reach_by_hand():
    reach = compute_to_reach(CURVES, GROUPS).set_index(["method", "fraction_of_reference_gain"])
    full = reach.loc[("inpo", 1.0)]
    assert full.reference_gain == pytest.approx(0.05) and full.reached == 2
    assert full.step == pytest.approx(15.0) and full.unet_forwards == pytest.approx(15 * 288)
    # t-interval of {10, 20}: 15 +- 12.706 * sd(7.07) / sqrt(2)
    assert full.step_ci_high - 15 == pytest.approx(12.706 * 5.0)
    assert reach.loc[("inpo", 0.5)].step == pytest.approx(10.0)
    dpo = reach.loc[("dpo", 1.0)]
    assert dpo.reached == 1 and dpo.step == pytest.approx(30.0) and np.isnan(dpo.step_ci_low)  # seed 1 never did


def test_curve_summary_by_hand():
    summary = curve_summary(CURVES, GROUPS).set_index(["method", "step"])
    row = summary.loc[("dpo", 30)]
    assert row.seeds == 2 and row.reward == pytest.approx(0.45) and row.unet_forwards == pytest.approx(30 * 128)
    assert row.reward_ci_high - 0.45 == pytest.approx(12.706 * np.std([0.46, 0.44], ddof=1) / np.sqrt(2))


def test_claims_follow_the_intervals():
    gains = pd.DataFrame(
        [
            {"model": "inpo", "baseline": "base", "promptset": "toy_seen", "scorer": "oracle_reward", "gain": 0.03,
             "ci_low": 0.01, "ci_high": 0.05, "seeds": 3, "baseline_seeds": 1, "per_seed": "", "verdict": "higher"},
            {"model": "inpo", "baseline": "dpo", "promptset": "toy_seen", "scorer": "oracle_reward", "gain": 0.0,
             "ci_low": -0.01, "ci_high": 0.01, "seeds": 3, "baseline_seeds": 3, "per_seed": "",
             "verdict": "no detectable difference"},
        ]
    )  # fmt: skip
    reach = compute_to_reach(CURVES, GROUPS)
    claims = study_claims(gains, reach).set_index("claim").verdict
    assert claims["DDIM-InPO improves on the base model"] == "holds"
    assert claims["DDIM-InPO beats Diffusion-DPO"] == "inconclusive"
    assert claims["DDIM-InPO beats SFT"] == "not measured"
    # one DPO seed never reached its group's mean gain: no compute verdict either way
    assert claims["DDIM-InPO reaches Diffusion-DPO's gain in at most a quarter of its steps"] == "inconclusive"


def test_training_curves_carry_the_compute_spent(tmp_path):
    pd.DataFrame({"step": [0, 2], "reward": [0.4, 0.5], "fidelity": 0, "aesthetic": 0, "all_correct": 0}).to_csv(
        tmp_path / "eval_log.csv", index=False
    )
    pd.DataFrame(
        {"step": [1, 2], "loss": [0.7, 0.6], "implicit_acc": 0.5, "seconds": [1.5, 3.0], "unet_forwards": [128, 256]}
    ).to_csv(tmp_path / "train_log.csv", index=False)
    curves = training_curves({"dpo": (tmp_path / "eval_log.csv", tmp_path / "train_log.csv")})
    assert curves.unet_forwards.tolist() == [0, 256] and curves.seconds.tolist() == [0, 3.0]


def test_the_efficiency_figure_has_three_axes_and_is_reproducible(tmp_path):
    from PIL import Image

    from inpo_bench import plots

    summary = curve_summary(CURVES, GROUPS)
    plots.efficiency_curves(summary, tmp_path / "a.png")
    plots.efficiency_curves(summary, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    width, height = Image.open(tmp_path / "a.png").size
    assert width > 2.5 * height  # three panels side by side


def test_the_study_command_writes_every_table_from_seeded_runs(tmp_path):
    """`inpo-bench study` on hand-made runs: InPO's two seeds gain +0.05 and +0.07 over the base, DPO's +0.01 and
    +0.03, so the tables must say so seed by seed and the claims follow (the DAG test of it is `-m long`)."""
    from PIL import Image

    from inpo_bench.cli import main

    base = np.linspace(0.3, 0.6, 24)
    gains = {"base": [0.0], "dpo": [0.01, 0.03], "inpo": [0.05, 0.07], "sft": [0.0, 0.02]}
    groups = {g: ["base"] if g == "base" else [g, f"{g}/train_seed~1"] for g in gains}
    scores, models = [], []
    for group, offsets in gains.items():
        for model, offset in zip(groups[group], offsets, strict=True):
            for promptset in ("toy_seen", "toy_unseen"):
                path = tmp_path / "scores" / model / promptset / "oracle_reward.csv"
                scores.append(str(write_scores(path, base + offset)))
            if group == "base":
                continue
            folder = tmp_path / "models" / model
            folder.mkdir(parents=True)
            rewards = 0.4 + offset * np.array([0.0, 0.5, 1.0])
            pd.DataFrame(
                {"step": [0, 5, 10], "reward": rewards, "fidelity": 0, "aesthetic": 0, "all_correct": 0}
            ).to_csv(folder / "eval_log.csv", index=False)
            per_step = {"dpo": 32, "inpo": 80, "sft": 12}[group]
            pd.DataFrame(
                {
                    "step": [5, 10],
                    "loss": 0.6,
                    "implicit_acc": 0.5,
                    "seconds": [1.0, 2.0],
                    "unet_forwards": [5 * per_step, 10 * per_step],
                }
            ).to_csv(folder / "train_log.csv", index=False)
            models.append(str(folder))
    out = tmp_path / "study"
    argv = ["study", "--scores", *scores, "--groups", json.dumps(groups), "--models", *models]
    assert main([*argv, "--out-dir", str(out), "--figure", str(tmp_path / "curves.png")]) == 0

    table = pd.read_csv(out / "seed_gains.csv").set_index(["model", "baseline", "promptset"])
    inpo = table.loc[("inpo", "base", "toy_seen")]
    assert inpo.gain == pytest.approx(0.06) and inpo.per_seed == "+0.050 / +0.070" and inpo.verdict == "higher"
    assert table.loc[("inpo", "dpo", "toy_seen")].gain == pytest.approx(0.04)
    assert table.loc[("inpo", "sft", "toy_unseen")].gain == pytest.approx(0.05)
    summary = pd.read_csv(out / "curve_summary.csv").set_index(["method", "step"])
    assert summary.loc[("inpo", 10)].unet_forwards == 800 and summary.loc[("dpo", 10)].reward == pytest.approx(0.42)
    claims = pd.read_csv(out / "paper_claims.csv").set_index("claim").verdict
    assert claims["DDIM-InPO improves on the base model"] == "holds"
    assert claims["DDIM-InPO beats Diffusion-DPO"] == "holds"
    # DPO's mean final gain is +0.02: both InPO seeds reach it at step 5, one DPO seed never does (.41 < .42)
    reach = pd.read_csv(out / "compute_to_reach.csv").set_index(["method", "fraction_of_reference_gain"])
    assert reach.loc[("inpo", 1.0)].step == 5 and reach.loc[("inpo", 1.0)].reached == 2
    assert Image.open(tmp_path / "curves.png").size[0] > 1000


def _gains(rows: list[tuple[str, float, float, float, str]]) -> pd.DataFrame:
    """seed_gains rows (model, gain, low, high, verdict) against the base on toy_seen's oracle reward."""
    frame = pd.DataFrame(rows, columns=["model", "gain", "ci_low", "ci_high", "verdict"])
    return frame.assign(baseline="base", promptset="toy_seen", scorer="oracle_reward")


def test_stability_names_flips_and_interval_cover_row_by_row():
    first = _gains(
        [
            ("sft", 0.002, 0.001, 0.003, "higher"),
            ("dpo", 0.010, 0.004, 0.016, "higher"),
            ("kto", -0.006, -0.008, -0.004, "lower"),
            ("inpo", -0.001, -0.003, 0.001, "no detectable difference"),
        ]
    )
    second = _gains(
        [
            ("dpo", 0.012, 0.005, 0.019, "higher"),  # same verdict, each inside the other's interval
            ("inpo", 0.002, 0.0005, 0.0035, "higher"),  # a verdict change that is not a sign flip
            ("kto", 0.004, 0.001, 0.007, "higher"),  # a sign flip
            ("dspo", 0.0, -0.001, 0.001, "no detectable difference"),  # only in the second table
        ]
    )
    table = gain_stability(first, second)
    assert table.model.tolist() == ["sft", "dpo", "kto", "inpo", "dspo"]  # the first's order, then the second's
    table = table.set_index("model")
    assert table.same_verdict.to_dict() == {"dpo": True, "inpo": False, "kto": False, "sft": False, "dspo": False}
    assert table.opposite_verdicts.to_dict() == {"dpo": False, "inpo": False, "kto": True, "sft": False, "dspo": False}
    assert table.second_in_first_interval.to_dict() == {
        "dpo": True, "inpo": False, "kto": False, "sft": False, "dspo": False
    }  # fmt: skip
    assert table.first_in_second_interval["dpo"] and not table.first_in_second_interval["inpo"]
    assert np.isnan(table.gain_second["sft"]) and table.verdict_first["sft"] == "higher"


def test_claim_stability_and_the_command(tmp_path):
    from inpo_bench.cli import main

    claims = ["DDIM-InPO improves on the base model", "DDIM-InPO beats SFT"]
    for side, verdicts in (("a", ["inconclusive", "holds"]), ("b", ["holds", "does not hold"])):
        (tmp_path / side).mkdir()
        pd.DataFrame({"claim": claims, "verdict": verdicts, "evidence": ""}).to_csv(
            tmp_path / side / "paper_claims.csv", index=False
        )
        gain = 0.01 if side == "a" else -0.01
        _gains([("dpo", gain, gain - 0.005, gain + 0.005, "higher" if side == "a" else "lower")]).to_csv(
            tmp_path / side / "seed_gains.csv", index=False
        )
    table = claim_stability(
        pd.read_csv(tmp_path / "a" / "paper_claims.csv"), pd.read_csv(tmp_path / "b" / "paper_claims.csv")
    )
    assert table.claim.tolist() == claims and table.same_verdict.tolist() == [False, False]
    assert table.opposite_verdicts.tolist() == [False, True]
    out = tmp_path / "out"
    argv = ["study-stability", "--first", str(tmp_path / "a"), "--second", str(tmp_path / "b"), "--out-dir", str(out)]
    assert main(argv) == 0
    assert pd.read_csv(out / "verdict_stability.csv").opposite_verdicts.tolist() == [True]
    assert pd.read_csv(out / "claim_stability.csv").opposite_verdicts.tolist() == [False, True]
    assert "survive a second set of training seeds?" in (out / "claim_stability.md").read_text()
    assert main([*argv, "--second-is", "another float path"]) == 0
    assert "Do the paper's claims survive another float path?" in (out / "claim_stability.md").read_text()
    assert "Do the gains' verdicts survive another float path?" in (out / "verdict_stability.md").read_text()
    (tmp_path / "b" / "seed_gains.csv").unlink()
    with pytest.raises(SystemExit, match=r"seed_gains\.csv is missing"):
        main(argv)
