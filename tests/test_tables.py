"""Win rates and mean scores against hand computations; properties of the bootstrap interval."""

import numpy as np
import pandas as pd
import pytest

from inpo_bench.tables import (
    ablation_table,
    cluster_bootstrap_mean,
    mean_scores,
    paired_outcomes,
    read_scores,
    steps_to_reach,
    toy_claims,
    win_rate,
    win_rates,
    win_rates_markdown,
)


def scores(rows):
    return pd.DataFrame(rows, columns=["prompt_id", "seed", "score"])


def test_win_rate_by_hand_with_ties():
    model = scores([("a", 0, 0.9), ("a", 1, 0.5), ("b", 0, 0.2), ("c", 0, 0.7), ("c", 1, 0.1)])
    base = scores([("c", 1, 0.3), ("c", 0, 0.7), ("b", 0, 0.1), ("a", 1, 0.6), ("a", 0, 0.4)])
    # a/0 win, a/1 loss, b/0 win, c/0 tie, c/1 loss -> (1 + 0 + 1 + 0.5 + 0) / 5 = 0.5
    result = win_rate(model, base)
    assert result["win_rate"] == pytest.approx(0.5) and result["n"] == 5 and result["ties"] == 1
    assert result["n_prompts"] == 3
    outcomes = paired_outcomes(model, base).set_index(["prompt_id", "seed"])["outcome"]
    assert outcomes.loc[("c", 0)] == 0.5 and outcomes.loc[("a", 1)] == 0.0
    assert win_rate(base, model)["win_rate"] == pytest.approx(0.5)  # complementary


def test_unpaired_images_are_an_error():
    model = scores([("a", 0, 0.9), ("b", 0, 0.2)])
    base = scores([("a", 0, 0.4), ("a", 1, 0.1)])
    with pytest.raises(ValueError, match=r"dpo vs base: 2 image\(s\) without a counterpart") as error:
        win_rate(model, base, what="dpo vs base")
    assert "b/0 (model only)" in str(error.value) and "a/1 (baseline only)" in str(error.value)


def test_bootstrap_interval_contains_estimate_is_seeded_and_narrows():
    rng = np.random.default_rng(0)

    def sample(n_prompts):
        values = (rng.random(n_prompts * 2) < 0.6).astype(float)
        return values, np.repeat(np.arange(n_prompts), 2)

    values, clusters = sample(50)
    low, high = cluster_bootstrap_mean(values, clusters, seed=3)
    assert low <= values.mean() <= high
    assert (low, high) == cluster_bootstrap_mean(values, clusters, seed=3)
    assert (low, high) != cluster_bootstrap_mean(values, clusters, seed=4)
    big_values, big_clusters = sample(2000)
    big_low, big_high = cluster_bootstrap_mean(big_values, big_clusters, seed=3)
    assert big_high - big_low < (high - low) / 3  # ~ 1/sqrt(40) as wide


def test_bootstrap_resamples_prompts_not_images():
    """Two seeds of a prompt always agree here, so resampling images would understate the interval."""
    rng = np.random.default_rng(1)
    per_prompt = (rng.random(40) < 0.5).astype(float)
    values, clusters = np.repeat(per_prompt, 10), np.repeat(np.arange(40), 10)
    low, high = cluster_bootstrap_mean(values, clusters, seed=0)
    expected_se = per_prompt.std() / np.sqrt(40)
    assert (high - low) == pytest.approx(2 * 1.96 * expected_se, rel=0.25)


def test_tables_from_files(tmp_path):
    paths = {}
    for model, shift in (("base", 0.0), ("dpo", 0.1)):
        frame = scores([(f"p{i}", s, i / 10 + shift * (s + 1)) for i in range(6) for s in (0, 1)])
        paths[model, "toy_seen", "oracle_reward"] = tmp_path / f"{model}.csv"
        frame.to_csv(paths[model, "toy_seen", "oracle_reward"], index=False)
    table = win_rates(paths, [("dpo", "base"), ("dpo", "sft")])
    assert len(table) == 1 and table.win_rate.iloc[0] == 1.0 and table.ties.iloc[0] == 0
    assert "dpo vs base" in win_rates_markdown(table) and "100.0" in win_rates_markdown(table)
    means = mean_scores([(m, p, s, path) for (m, p, s), path in paths.items()])
    assert means.set_index("model").loc["dpo", "mean"] == pytest.approx(0.25 + 0.15)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"prompt_id": ["a", "a"], "seed": [0, 0], "score": [1, 2]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="more than one score"):
        read_scores(bad)


def test_paper_comparison_joins_cell_by_cell():
    from inpo_bench.tables import paper_comparison

    paper = pd.DataFrame(
        {
            "paper_model": ["InPO-SD1.5"] * 3 + ["InPO-SDXL"],
            "paper_baseline": ["Base-SD1.5"] * 3 + ["Base-SDXL"],
            "run": ["sd15"] * 3 + ["sdxl"],
            "model": "inpo",
            "baseline": "base",
            "promptset": ["hpdv2", "parti", "parti", "hpdv2"],
            "paper_metric": ["hps", "hps", "clip", "hps"],
            "win_rate": [90.22, 81.86, 61.89, 85.38],
        }
    )
    wins = pd.DataFrame(
        {
            "model": ["inpo"],
            "baseline": ["base"],
            "promptset": ["parti"],
            "scorer": ["hpsv21"],
            "win_rate": [0.75],
            "ci_low": [0.7],
            "ci_high": [0.8],
            "n": [1632],
        }
    )
    table = paper_comparison(paper, wins, "sd15", {"hps": "hpsv21", "clip": "clip"})
    assert len(table) == 3  # only this run's rows
    row = table.set_index(["promptset", "paper_metric"]).loc[("parti", "hps")]
    assert row.win_rate == pytest.approx(75.0) and row.difference == pytest.approx(75.0 - 81.86) and row.n == 1632
    assert table.win_rate.isna().sum() == 2  # cells this run does not cover stay empty
    assert table[table.win_rate.isna()].note.str.startswith("no win rate inpo:base").all()

    # released checkpoints stand in for the paper's models; a missing model says why
    paper = pd.concat([paper, paper.iloc[[1]].assign(baseline="sft", paper_baseline="SFT-SD1.5")])
    wins = wins.assign(model="inpo_release", baseline="base")
    table = paper_comparison(
        paper, wins, "sd15", {"hps": "hpsv21"}, models={"inpo": "inpo_release"}, missing={"sft": "never released"}
    )
    row = table.set_index(["paper_baseline", "promptset", "paper_metric"]).loc[("Base-SD1.5", "parti", "hps")]
    assert row.win_rate == pytest.approx(75.0) and row.note == ""
    sft = table[table.paper_baseline == "SFT-SD1.5"]
    assert sft.win_rate.isna().all() and (sft.note == "sft: never released").all()


def test_independent_means_in_the_published_unit():
    from inpo_bench.tables import independent_comparison

    reference = pd.DataFrame(
        {
            "source": "MaPO Table 2",
            "run": ["sdxl", "sdxl", "sd15"],
            "model": ["inpo", "mapo", "inpo"],
            "promptset": "pickapic_test_unique",
            "scorer": ["hpsv21", "hpsv21", "hpsv21"],
            "published": [30.2, 31.2, 1.0],
            "scale": [100, 100, 100],
        }
    )
    means = pd.DataFrame(
        {
            "model": ["inpo_release"],
            "promptset": ["pickapic_test_unique"],
            "scorer": ["hpsv21"],
            "mean": [0.301],
            "ci_low": [0.299],
            "ci_high": [0.303],
            "n": [500],
        }
    )
    table = independent_comparison(reference, means, "sdxl", {"inpo": "inpo_release"})
    assert list(table.model) == ["inpo_release", "mapo"]  # this run's rows, under this run's names
    assert table["mean"].iloc[0] == pytest.approx(30.1) and table.ci_high.iloc[0] == pytest.approx(30.3)
    assert pd.isna(table["mean"].iloc[1]) and "no mean score of mapo" in table.note.iloc[1]


def test_models_table_and_one_sampler_for_every_model(tmp_path):
    import json

    from inpo_bench.tables import model_table, sampler_settings

    (tmp_path / "sd").mkdir()
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"components": "sd", "unet": None}))
    release = tmp_path / "release.json"
    release.write_text(
        json.dumps({"checkpoint": {"method": "dpo", "source": "mhdang/x", "load": "unet", "revision": "a" * 40}})
    )
    table = model_table({"base": base, "dpo_release": release}).set_index("model")
    assert (
        table.loc["dpo_release", "revision"] == "a" * 40 and table.loc["dpo_release", "origin"] == "released checkpoint"
    )
    assert table.loc["base", "origin"] == "base" and table.loc["base", "code"] == ""  # not trained here
    (tmp_path / "dpo").mkdir()
    (tmp_path / "dpo" / "model.json").write_text(json.dumps({"components": "sd", "unet": "unet"}))
    (tmp_path / "dpo" / "train.json").write_text(
        json.dumps(
            {
                "code": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": True, "package": "0.1.0"},
                "machine": {"gpu": "NVIDIA H100 80GB HBM3", "gpus_visible": ["NVIDIA H100 80GB HBM3"] * 8},
                "processes": 4,  # 4 of the 8 visible GPUs trained it
                "mixed_precision": "fp16",
                "data_source": {"kind": "hub", "repo": "m/p", "commit": "f" * 40, "split": "train"}
                | {"data_sha256": "e" * 64},
            }
        )
    )
    row = model_table({"dpo": tmp_path / "dpo" / "model.json"}).set_index("model").loc["dpo"]
    assert (row.code, row.machine, row.precision) == ("0123456789ab+dirty", "4 x NVIDIA H100 80GB HBM3", "fp16")
    assert row.data == "m/p@ffffffffffff train sha256 eeeeeeeeeeee"
    same = {"sampler": "ddim", "steps": 50, "cfg": 7.5, "seeds": [0]}
    assert sampler_settings({("base", "parti"): same, ("dpo_release", "parti"): {**same, "wall_seconds": 3}}) == same
    with pytest.raises(ValueError, match="other sampler settings \\(cfg\\)"):
        sampler_settings({("base", "parti"): same, ("spo_release", "parti"): {**same, "cfg": 5.0}})


def curves(rows):
    return pd.DataFrame(rows, columns=["model", "step", "reward"])


TWO_CURVES = curves(
    [("dpo", 0, 0.30), ("dpo", 25, 0.34), ("dpo", 50, 0.40), ("inpo", 0, 0.30), ("inpo", 25, 0.36), ("inpo", 50, 0.33)]
)


def test_steps_to_reach_by_hand():
    # dpo gains 0.10; half of it (0.35) is first reached by inpo at step 25 and by dpo at step 50; all of it (0.40)
    # only by dpo, at step 50
    table = steps_to_reach(TWO_CURVES, reference="dpo", seconds={"dpo": 2.0, "inpo": 3.0}).set_index(
        ["model", "fraction_of_reference_gain"]
    )
    assert table.loc[("dpo", 0.5), "step"] == 50 and table.loc[("inpo", 0.5), "step"] == 25
    assert table.loc[("dpo", 1.0), "step"] == 50 and pd.isna(table.loc[("inpo", 1.0), "step"])
    assert table.loc[("inpo", 0.5), "target_reward"] == pytest.approx(0.35)
    assert table.loc[("inpo", 0.5), "seconds"] == pytest.approx(75.0)
    assert table.loc[("dpo", 1.0), "seconds"] == pytest.approx(100.0)
    assert pd.isna(table.loc[("inpo", 1.0), "seconds"])
    assert table.loc[("inpo", 1.0), "final_reward"] == pytest.approx(0.33)


def test_steps_to_reach_without_a_reference_gain_reaches_nothing():
    flat = curves([("dpo", 0, 0.3), ("dpo", 25, 0.3), ("inpo", 0, 0.3), ("inpo", 25, 0.5)])
    assert steps_to_reach(flat, reference="dpo").step.isna().all()
    with pytest.raises(ValueError, match="sft"):
        steps_to_reach(flat, reference="sft")


def win_row(baseline, promptset, low, high):
    return {
        "model": "inpo",
        "baseline": baseline,
        "promptset": promptset,
        "scorer": "oracle_reward",
        "win_rate": (low + high) / 2,
        "ci_low": low,
        "ci_high": high,
        "n": 10,
    }


def test_toy_claims_verdicts_follow_the_intervals_and_the_steps():
    win = pd.DataFrame(
        [
            win_row("base", "toy_seen", 0.52, 0.70),  # whole interval above 50%: holds
            win_row("sft", "toy_seen", 0.45, 0.60),  # straddles 50%: inconclusive
            win_row("dpo", "toy_seen", 0.30, 0.48),  # below: does not hold
        ]  # no toy_unseen row: not measured
    )
    steps = steps_to_reach(TWO_CURVES, reference="dpo")
    claims = toy_claims(win, steps, {"dpo": 2.0, "inpo": 3.0}).set_index("claim").verdict.tolist()
    assert claims == ["holds", "inconclusive", "does not hold", "not measured", "does not hold"]
    evidence = toy_claims(win, steps, {"dpo": 2.0, "inpo": 3.0}).evidence.iloc[-1]
    assert "step 50" in evidence and "0.400" in evidence and "0.330" in evidence

    # inpo reaches the full gain at step 25, dpo at step 100: exactly a quarter, and less time at 3 vs 2 s/step
    fast = curves([("dpo", 0, 0.3), ("dpo", 50, 0.35), ("dpo", 100, 0.4), ("inpo", 0, 0.3), ("inpo", 25, 0.41)])
    table = toy_claims(win, steps_to_reach(fast, reference="dpo"), {"dpo": 2.0, "inpo": 3.0}).set_index("claim")
    assert table.loc["DDIM-InPO reaches Diffusion-DPO's gain in at most a quarter of its steps", "verdict"] == "holds"
    timing = table.loc["DDIM-InPO reaches Diffusion-DPO's gain in less training time"]
    assert timing.verdict == "holds" and timing.evidence == "inpo 75 s, dpo 200 s of training"


def test_ablation_table_by_hand(tmp_path, default_config):
    values = {
        "base": [0.1, 0.5],
        "inpo": [0.2, 0.4],  # the default configuration
        "inpo/beta~500": [0.3, 0.6],
        "inpo/train_seed~1": [0.2, 0.1],
    }
    scores = {}
    for model, pair in values.items():
        path = tmp_path / f"{model.replace('/', '_')}.csv"
        scores_frame = pd.DataFrame({"prompt_id": ["a", "b"], "seed": [0, 0], "score": pair})
        scores_frame.to_csv(path, index=False)
        scores[model, "toy_seen", "oracle_reward"] = path
    table = ablation_table("inpo", ["beta~500", "train_seed~1"], default_config["inpo"], scores, n_boot=50).set_index(
        "cell"
    )
    assert list(table.index) == ["default", "beta~500", "train_seed~1"]
    assert table.loc["beta~500", "mean"] == pytest.approx(0.45)
    # wins over the base: default 1 of 2, beta~500 2 of 2, train_seed~1 1 of 2; over the default: 2 of 2 and
    # a tie (0.2 = 0.2) plus a loss
    assert table.win_vs_base.tolist() == [0.5, 1.0, 0.5]
    assert np.isnan(table.loc["default", "win_vs_default"])
    assert table.loc["beta~500", "win_vs_default"] == 1.0 and table.loc["train_seed~1", "win_vs_default"] == 0.25
    # swept columns show each cell's full config; an unset train_seed (the run's seed) reads "default"
    assert table.beta.tolist() == [default_config["inpo"]["beta"], 500, default_config["inpo"]["beta"]]
    assert table.train_seed.tolist() == ["default", "default", 1]
