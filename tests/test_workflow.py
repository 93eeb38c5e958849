"""The Snakemake DAG as users run it: dry runs, lint, config rejection, and a tiny end-to-end run whose every
output is checked against the file contracts of DESIGN.md."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from inpo_bench.train import TIMING_COLUMNS
from tests.conftest import REPO, TINY, snakemake


def job_counts(output: str) -> dict[str, int]:
    lines = output.split("Job stats:")[1].splitlines()[3:]
    counts = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_default_dry_run_plans_the_whole_dag(tmp_path):
    dry = snakemake("-n", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)).stdout
    counts = job_counts(dry)
    assert "results/toy/tables/scorer_agreement.csv" in dry  # the learned toy reward against the oracle
    assert counts["pretrain_base"] == 1 and counts["toy_pickapic"] == 1 and counts["prepare_pairs"] == 1
    assert counts["train"] == 3  # sft, dpo, inpo; ablation cells only with the `ablations` target
    assert counts["promptset"] == 2 and counts["sample"] == 4 * 2 and counts["score_oracle"] == 4 * 2
    assert counts["tables"] == 1 and counts["figures"] == 1


def test_ablation_dry_run_adds_one_training_job_per_cell(tmp_path):
    counts = job_counts(snakemake("-n", "ablations", "--directory", str(tmp_path)).stdout)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["ablations"]
    tables = {method: [paths] if isinstance(paths, str) else paths for method, paths in config.items()}
    rows = {m: sum(len((REPO / p).read_text().strip().splitlines()) - 1 for p in ps) for m, ps in tables.items()}
    cells = sum(rows.values())
    # every cell is compared with the base and its method's default model: those, and nothing else, are trained
    assert counts["train"] == len(tables) + cells and counts["sample"] == (1 + len(tables) + cells) * 2
    assert counts["ablation_table"] == len(tables) and counts["ablation_figure"] == len(tables)


def test_lint_is_clean():
    result = snakemake("--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_imports_no_model_library():
    """Every snakemake start (each dry run, each test, each cluster submission) imports what the rules import;
    torch, diffusers and transformers belong in the jobs (importing them costs ~4 s here)."""
    import re
    import subprocess
    import sys

    sources = [REPO / "workflow" / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]
    modules = {
        m for path in sources for m in re.findall(r"^\s*(?:from|import) (inpo_bench[\w.]*)", path.read_text(), re.M)
    }
    assert len(modules) >= 5, modules
    probe = "".join(f"import {m}\n" for m in sorted(modules))
    probe += "import sys\nprint(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_bad_config_fails_before_any_job(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("pretrain:\n  stpes: 10\nsample:\n  guidance: high\n")
    result = snakemake("--cores", "1", "--configfile", str(overlay), "--directory", str(tmp_path), check=False)
    message = result.stdout + result.stderr
    assert result.returncode != 0
    assert "unknown key(s) ['stpes']" in message and "sample.guidance: 'high' is not of type 'number'" in message
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_tiny_run_writes_every_contract_file(tiny_run):
    out = tiny_run
    world = json.loads((out / "world.json").read_text())
    assert len(world["seen"]) + len(world["unseen"]) == 3 * 2 * 3 and len(world["unseen"]) == 4

    for name, expected in (("toy_seen", world["seen"]), ("toy_unseen", world["unseen"])):
        prompts = pd.read_csv(out / "prompts" / f"{name}.csv")
        assert list(prompts.columns) == ["prompt_id", "prompt"] and sorted(prompts.prompt) == sorted(expected)

    base = out / "models" / "base"
    assert json.loads((base / "model.json").read_text())["components"] == "."
    for folder in ("unet", "text_encoder", "tokenizer", "scheduler"):
        assert (base / folder).is_dir()
    log = pd.read_csv(base / "train_log.csv")
    from inpo_bench.train import LOG_COLUMNS

    assert list(log.columns) == LOG_COLUMNS  # pretraining logs no method-specific column
    assert log.step.tolist() == [1, 2, 3, 4] and (log.skipped == 0).all() and np.isfinite(log.loss).all()
    evals = pd.read_csv(base / "eval_log.csv")
    assert evals.step.tolist() == [0, 2, 4] and evals.reward.between(0, 1).all()
    record = json.loads((base / "train.json").read_text())
    assert record["seed"] == 0 and record["versions"]["torch"].startswith("2.13") and record["wall_seconds"] > 0
    assert not list((out / "scratch").rglob("state.pt"))  # checkpoints are removed once a model is saved

    raw = pd.read_parquet(out / "data" / "raw" / "toy-pickapic-00000.parquet")
    report = json.loads((out / "data" / "prepare.json").read_text())
    pairs = pd.read_parquet(out / "data" / "pairs.parquet")
    assert len(raw) == len(world["seen"]) * 2 and report["read"] == len(raw)
    assert report["ties_removed"] == int((raw.label_0 == 0.5).sum()) and report["corrupt_dropped"] == 0
    assert report["kept"] == len(pairs) == len(raw) - report["ties_removed"]
    assert list(pairs.columns) == ["pair_id", "caption", "image_w", "image_l", "source", "reward_w", "reward_l"]
    for row in pairs.head(3).itertuples():
        source = raw.iloc[int(row.pair_id.rsplit("-", 1)[1])]
        winner = "jpg_0" if source.label_0 == 1.0 else "jpg_1"
        assert row.image_w == source[winner] and Image.open(io.BytesIO(row.image_w)).size == (16, 16)

    for promptset, n_prompts in (("toy_seen", len(world["seen"])), ("toy_unseen", len(world["unseen"]))):
        folder = out / "samples" / "base" / promptset
        index = pd.read_csv(folder / "index.csv")
        assert list(index.columns) == ["prompt_id", "seed", "prompt", "file"]
        assert len(index) == n_prompts * 2 and set(index.seed) == {0, 1}
        assert all(Image.open(folder / f).size == (16, 16) for f in index.file)
        meta = json.loads((folder / "sample.json").read_text())
        assert meta["sampler"] == "ddim" and meta["steps"] == 2 and meta["cfg"] == 4.0 and meta["resolution"] == 16
        assert meta["batch_size"] == 16
        for scorer in ("oracle_reward", "oracle_fidelity", "oracle_aesthetic", "oracle_all_correct"):
            scores = pd.read_csv(out / "scores" / "base" / promptset / f"{scorer}.csv")
            assert list(scores.columns) == ["prompt_id", "seed", "score"]
            assert sorted(zip(scores.prompt_id, scores.seed)) == sorted(zip(index.prompt_id, index.seed))
            assert scores.score.between(0, 1).all()
        not_noise = pd.read_csv(out / "scores" / "base" / promptset / "oracle_not_noise.csv").score
        assert set(not_noise) <= {0.0, 1.0}

    for method in ("sft", "dpo", "inpo"):
        folder = out / "models" / method
        spec = json.loads((folder / "model.json").read_text())
        assert spec["components"] == "../base" and not (folder / "text_encoder").exists()
        log = pd.read_csv(folder / "train_log.csv")
        assert log.step.tolist() == [1, 2, 3] and np.isfinite(log.loss).all()
        if method != "sft":
            assert log.implicit_acc.between(0, 1).all() and (log.ref_mse > 0).all()
        assert pd.read_csv(folder / "eval_log.csv").step.tolist() == [0, 2, 3]
        assert json.loads((folder / "train.json").read_text())["init"].endswith("models/base")
    assert "inversion_evals" in pd.read_csv(out / "models" / "inpo" / "train_log.csv").columns

    table = pd.read_csv(out / "tables" / "mean_scores.csv")
    assert list(table.columns) == ["model", "promptset", "scorer", "mean", "ci_low", "ci_high", "n", "n_prompts"]
    # 4 models x 2 prompt sets x the 8 scorers of tests/configs/tiny.yaml
    assert len(table) == 4 * 2 * 8 and (table.ci_low <= table["mean"]).all() and (table["mean"] <= table.ci_high).all()
    reward = pd.read_csv(out / "scores" / "base" / "toy_seen" / "oracle_reward.csv").score.mean()
    row = table[(table.model == "base") & (table.promptset == "toy_seen") & (table.scorer == "oracle_reward")]
    assert row["mean"].iloc[0] == pytest.approx(reward)
    assert "## toy_unseen" in (out / "tables" / "mean_scores.md").read_text()

    wins = pd.read_csv(out / "tables" / "win_rates.csv")
    assert list(wins.columns) == [
        "model",
        "baseline",
        "promptset",
        "scorer",
        "win_rate",
        "ci_low",
        "ci_high",
        "n",
        "ties",
        "n_prompts",
    ]
    assert len(wins) == 6 * 2 * 8 and wins.win_rate.between(0, 1).all()
    for name in ("training_curves", "steps_to_reward", "paper_claims"):
        assert len(pd.read_csv(out / "tables" / f"{name}.csv")) > 0 and (out / "tables" / f"{name}.md").is_file()
    claims = pd.read_csv(out / "tables" / "paper_claims.csv")
    assert set(claims.verdict) <= {"holds", "does not hold", "inconclusive", "not measured"}
    for figure in ("win_rates", "training_curves", "grid_toy_seen", "grid_toy_unseen"):
        assert Image.open(out / "figures" / f"{figure}.png").size[0] > 200


@pytest.mark.slow
@pytest.mark.long  # reruns the whole tiny DAG in a second directory
def test_tiny_run_is_up_to_date_and_deterministic(tiny_run, tmp_path):
    workdir = tiny_run.parents[1]
    assert "Nothing to be done" in snakemake("-n", "--configfile", str(TINY), "--directory", str(workdir)).stdout
    snakemake("--cores", "2", "--configfile", str(TINY), "--directory", str(tmp_path))
    again = tmp_path / "results" / "tiny"
    for relative in (
        "scores/base/toy_seen/oracle_reward.csv",
        "scores/base/toy_unseen/oracle_aesthetic.csv",
        "models/base/train_log.csv",
    ):
        first, second = pd.read_csv(tiny_run / relative), pd.read_csv(again / relative)
        assert first.drop(columns=TIMING_COLUMNS, errors="ignore").equals(
            second.drop(columns=TIMING_COLUMNS, errors="ignore")
        ), relative
    pairs = [pd.read_parquet(run / "data" / "pairs.parquet") for run in (tiny_run, again)]
    assert pairs[0].equals(pairs[1])


@pytest.mark.slow
@pytest.mark.long  # trains, samples and scores every ablation cell
def test_tiny_ablations_and_rerunning_one_cell(tiny_run, tmp_path):
    workdir, models = tiny_run.parents[1], tiny_run / "models" / "inpo"
    args = ("--configfile", str(TINY), "--directory", str(workdir))
    snakemake("--cores", "2", "ablations", *args)
    table = pd.read_csv(tiny_run / "tables" / "ablation_inpo.csv")
    assert set(table.cell) == {"default", "beta~500", "inv_grid~exact"}
    cell = table[(table.cell == "beta~500") & (table.promptset == "toy_seen") & (table.scorer == "oracle_reward")]
    # inv_grid is not swept by this cell: the table shows the value it inherits
    assert cell.beta.iloc[0] == 500 and cell.inv_grid.iloc[0] == "official" and 0 <= cell.win_vs_base.iloc[0] <= 1
    record = json.loads((models / "beta~500" / "train.json").read_text())["config"]
    assert record["beta"] == 500 and record["inversion"]["grid"] == "official"  # the rest inherited
    assert (tiny_run / "figures" / "ablation_inpo.png").is_file()

    target = models / "beta~500" / "model.json"
    other = models / "inv_grid~exact" / "model.json"
    before = other.stat().st_mtime_ns
    dry = snakemake("-n", "--forcerun", str(target.relative_to(workdir)), *args, "--", "ablations")
    counts = job_counts(dry.stdout)
    assert counts["train"] == 1 and counts["sample"] == 2 and counts["score_oracle"] == 2
    assert counts["ablation_table"] == 1 and "pretrain_base" not in counts
    snakemake("--cores", "2", "--forcerun", str(target.relative_to(workdir)), *args, "--", "ablations")
    assert other.stat().st_mtime_ns == before

    report = tmp_path / "report.html"  # the report of both targets has the ablations in it
    snakemake("--report", str(report), *args, "--", "default", "ablations")
    html = report.read_text(errors="replace")
    for name in ("win_rates.csv", "ablation_inpo.csv", "ablation_inpo.png", "ablation_dpo.png"):
        assert name in html, name


@pytest.mark.slow
def test_report_builds_from_the_tiny_run(tiny_run, tmp_path):
    workdir = tiny_run.parents[1]
    report = tmp_path / "report.html"
    snakemake("--report", str(report), "--configfile", str(TINY), "--directory", str(workdir))
    html = report.read_text(errors="replace")
    for name in ("win_rates.csv", "paper_claims.csv", "training_curves.png", "grid_toy_unseen.png"):
        assert name in html, name
    assert "ablation_inpo" not in html  # the default target's report (with the ablations: the ablation test)


@pytest.mark.slow
def test_settings_that_cannot_change_the_weights_retrain_nothing(tiny_run, tmp_path):
    """A new checkpoint interval, gradient checkpointing or worker count must not retrain a model (at paper scale
    that is hundreds of GPU-hours for identical weights); a new beta must."""
    workdir = tiny_run.parents[1]
    runtime_only = tmp_path / "runtime.yaml"
    runtime_only.write_text(
        "training: {gradient_checkpointing: true}\ndata: {workers: 3}\n"
        "sft: {checkpoint_every: 1}\ndpo: {checkpoint_every: 1}\ninpo: {checkpoint_every: 1}\n"
    )
    dry = snakemake("-n", "--configfile", str(TINY), str(runtime_only), "--directory", str(workdir))
    assert "Nothing to be done" in dry.stdout, dry.stdout
    beta = tmp_path / "beta.yaml"
    beta.write_text("dpo: {beta: 1000}\n")
    counts = job_counts(snakemake("-n", "--configfile", str(TINY), str(beta), "--directory", str(workdir)).stdout)
    assert counts["train"] == 1


@pytest.mark.slow
def test_the_zoo_trains_and_compares_every_registered_method(tiny_run):
    from inpo_bench.methods import names

    workdir = tiny_run.parents[1]
    args = ("--configfile", str(TINY), "--directory", str(workdir))
    dry = job_counts(snakemake("-n", "zoo", *args).stdout)
    assert dry.get("train") == len(names()) - 3, dry  # sft, dpo and inpo are the default target's, already trained
    assert dry.get("score_pairs") == 1 and dry.get("toy_reward") == 1, dry  # SmPO's labels need the toy reward
    snakemake("--cores", "2", "zoo", *args)
    zoo = tiny_run / "zoo" / "tables"
    wins = pd.read_csv(zoo / "win_rates.csv")
    assert set(wins[wins.baseline == "base"].model) == set(names())
    assert set(wins[wins.baseline == "dpo"].model) == set(names()) - {"dpo"}
    assert set(pd.read_csv(zoo / "training_curves.csv").model) == set(names())
    assert (tiny_run / "zoo" / "figures" / "win_rates.png").is_file()
    record = json.loads((tiny_run / "models" / "toy_reward" / "model.json").read_text())
    assert record["pairs"] > 0 and "held_out_accuracy" in record["log"][-1]
    scores = pd.read_parquet(tiny_run / "data" / "pair_scores" / "toy_reward.parquet")
    assert list(scores.columns) == ["pair_id", "score_w", "score_l"]
    assert (
        json.loads((tiny_run / "models" / "smpo" / "train.json").read_text())["config"]["label_scorer"] == "toy_reward"
    )
    # the default target's tables still hold only its own methods
    assert set(pd.read_csv(tiny_run / "tables" / "win_rates.csv").model) <= {"sft", "dpo", "inpo"}


def test_the_study_plans_one_training_per_extra_seed(tiny_run):
    args = ("--configfile", str(TINY), "--directory", str(tiny_run.parents[1]))
    dry = job_counts(snakemake("-n", "study", *args).stdout)
    assert dry.get("train") == 3 and dry.get("study_tables") == 1, dry  # seed 1 of each; seed 0 is the main model
    assert dry.get("sample") == 3 * 2, dry  # the new models on both prompt sets; the base and seed 0 are sampled


def test_the_replicate_trains_each_method_again_on_its_own_seeds(tiny_run):
    args = ("--configfile", str(TINY), "--directory", str(tiny_run.parents[1]))
    printed = snakemake("-n", "-p", "study_replicate", *args).stdout
    dry = job_counts(printed)
    # seed 1 of the study and seed 2 of the replicate, for each of three methods; both tables and their comparison
    assert dry.get("train") == 6 and dry.get("study_tables") == 1 and dry.get("study_replicate_tables") == 1, dry
    assert dry.get("study_stability") == 1, dry
    # the replicate's tables are built from its own seeds' models only
    commands = [line for line in printed.splitlines() if "inpo_bench study --scores" in line]
    replicate = next(line for line in commands if "--out-dir results/tiny/study/replicate/tables" in line)
    assert "dpo/train_seed~2" in replicate and "train_seed~1" not in replicate, replicate


@pytest.mark.long  # three more trainings, their samples and scores (about a minute); the tables: test_study.py
def test_the_study_trains_every_seed_and_judges_on_seed_intervals(tiny_run):
    workdir = tiny_run.parents[1]
    args = ("--configfile", str(TINY), "--directory", str(workdir))
    snakemake("--cores", "2", "study", *args)
    study = tiny_run / "study"
    gains = pd.read_csv(study / "tables" / "seed_gains.csv")
    row = gains[(gains.model == "inpo") & (gains.baseline == "base") & (gains.scorer == "oracle_reward")].iloc[0]
    assert row.seeds == 2 and row.baseline_seeds == 1 and len(row.per_seed.split(" / ")) == 2
    assert row.ci_low <= row.gain <= row.ci_high and set(gains.scorer) == {"oracle_reward", "oracle_fidelity"}
    assert {("inpo", "dpo"), ("inpo", "sft"), ("dpo", "base")} <= set(zip(gains.model, gains.baseline))
    summary = pd.read_csv(study / "tables" / "curve_summary.csv")
    assert set(summary.method) == {"sft", "dpo", "inpo"} and (summary.seeds == 2).all()
    # DPO: 4 pairs per step, winners and losers through policy (forward + backward) and reference = 32 per step
    log = pd.read_csv(tiny_run / "models" / "dpo" / "train_seed~1" / "train_log.csv")
    assert log.unet_forwards.tolist() == [32, 64, 96]
    inpo = summary[summary.method == "inpo"].set_index("step").unet_forwards
    assert inpo.loc[3] > 3 * 32  # the inversion's passes on top of DPO's
    reach = pd.read_csv(study / "tables" / "compute_to_reach.csv")
    assert len(reach) == 3 * 2 and set(reach.fraction_of_reference_gain) == {0.5, 1.0}
    claims = pd.read_csv(study / "tables" / "paper_claims.csv")
    assert len(claims) == 7 and set(claims.verdict) <= {"holds", "does not hold", "inconclusive", "not measured"}
    assert Image.open(study / "figures" / "efficiency_curves.png").size[0] > 1000


def test_the_study_is_refused_at_paper_scale(tmp_path):
    result = snakemake(
        "-n", "study", "--configfile", str(REPO / "config" / "smoke-sd.yaml"), "--directory", str(tmp_path), check=False
    )
    assert result.returncode != 0 and "toy-world target" in result.stdout + result.stderr


def test_tune_trains_only_the_lrs_the_config_does_not_train(tiny_run):
    args = ("--configfile", str(TINY), "--directory", str(tiny_run.parents[1]))
    dry = snakemake("-n", "tune", *args).stdout
    assert job_counts(dry).get("train") == 1 and job_counts(dry).get("tune_tables") == 1, dry
    assert "models/dpo/lr~1e-05/eval_log.csv" in dry  # 3e-5 is DPO's lr: its main model, already trained


@pytest.mark.long  # one more tiny training and the tables
def test_tune_judges_the_grid_on_the_progress_evaluation(tiny_run):
    args = ("--configfile", str(TINY), "--directory", str(tiny_run.parents[1]))
    snakemake("--cores", "2", "tune", *args)
    table = pd.read_csv(tiny_run / "tune" / "tables" / "lr_choice.csv")
    assert table.model.tolist() == ["dpo/lr~1e-05", "dpo"] and table.chosen.sum() == 1
    evals = pd.read_csv(tiny_run / "models" / "dpo" / "eval_log.csv")
    assert table.window_mean.iloc[1] == pytest.approx(evals[evals.step >= 2].reward.mean())


def test_tune_is_refused_at_paper_scale(tmp_path):
    result = snakemake(
        "-n", "tune", "--configfile", str(REPO / "config" / "smoke-sd.yaml"), "--directory", str(tmp_path), check=False
    )
    assert result.returncode != 0 and "toy-world target" in result.stdout + result.stderr
