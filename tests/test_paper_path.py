"""The paper-scale code path: Stable Diffusion 1.5 / SDXL bases, Pick-a-Pic v2, the five scorers, SLURM, all on
tiny stand-ins in the real formats (config/smoke-sd.yaml)."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from diffusers import UNet2DConditionModel
from PIL import Image

from tests.conftest import REPO, snakemake

SMOKE = REPO / "config" / "smoke-sd.yaml"
SDXL = REPO / "tests" / "configs" / "smoke-sdxl.yaml"


@pytest.mark.slow
def test_smoke_config_runs_the_paper_dag_end_to_end(smoke_run):
    out = smoke_run / "results" / "smoke-sd"
    report = json.loads((out / "data" / "prepare.json").read_text())
    # the shard has 24 rows: one tie (row 1) and one pair whose second image is truncated (row 2)
    assert report["read"] == 24 and report["ties_removed"] == 1 and report["corrupt_dropped"] == 1
    assert report["corrupt_pair_ids"] == ["train-00000-of-00001-2"] and report["kept"] == 22
    pairs = pd.read_parquet(out / "data" / "pairs.parquet")
    assert len(pairs) == 22 and "reward_w" not in pairs.columns and set(pairs.source) == {"pickapic_v2"}
    assert not {"train-00000-of-00001-1", "train-00000-of-00001-2"} & set(pairs.pair_id)
    # the local shard is recorded with its hash; the smoke stand-in, which this DAG writes, is not locked (a user's
    # local copy is: tests/test_pickapic_source.py)
    shard = smoke_run / "resources" / "smoke" / "pickapic_v2" / "data" / "train-00000-of-00001.parquet"
    (entry,) = report["source"]["shards"]
    assert report["source"]["kind"] == "local" and entry["rows"] == 24 and entry["bytes"] == shard.stat().st_size
    assert entry["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest() and report["source"]["lock"] is None

    base = json.loads((out / "models" / "base" / "model.json").read_text())
    assert base["kind"] == "sd" and base["unet"] is None and base["components"].endswith("resources/smoke/sd15")
    for method in ("sft", "dpo", "inpo"):
        folder = out / "models" / method
        UNet2DConditionModel.from_pretrained(folder / "unet")  # the diffusers layout, loadable on its own
        record = json.loads((folder / "train.json").read_text())
        assert record["config"]["steps"] == 2 and record["training"]["mixed_precision"] == "fp16"
        # watched as it trains: progress_eval's scorer on its prompts at steps 0, 1, 2 (eval_every 1)
        evals = pd.read_csv(folder / "eval_log.csv")
        assert evals.step.tolist() == [0, 1, 2] and set(evals.scorer) == {"pickscore"} and (evals.images == 2).all()
        assert np.isfinite(evals.score).all() and record["progress_eval"]["prompts"] == ["anime-000", "photo-799"]
        log = pd.read_csv(folder / "train_log.csv")
        assert {"winner_mse_gap", "loser_mse_gap", "reward_margin", "examples_per_second", "grad_norm"} <= set(log)
        assert (log.examples_per_second > 0).all() and (log.unet_forwards.diff().dropna() > 0).all()
    assert json.loads((out / "models" / "inpo" / "train.json").read_text())["init"].endswith("models/sft")
    curves = pd.read_csv(out / "tables" / "training_curves.csv")
    assert set(curves.model) == {"sft", "dpo", "inpo"} and len(curves) == 9
    assert (out / "figures" / "training_curves.png").is_file()
    base_score = curves[(curves.model == "dpo") & (curves.step == 0)].score.item()
    assert curves[(curves.model == "sft") & (curves.step == 0)].score.item() == base_score  # both start at the base
    # provenance: the code, the machine and the data every trained model, sample and score came from
    record = json.loads((out / "models" / "dpo" / "train.json").read_text())
    assert len(record["code"]["commit"] or "x" * 40) == 40 and record["machine"]["cpu_capability"]
    assert record["data_source"]["kind"] == "local" and len(record["data_source"]["data_sha256"]) == 64
    sampled = json.loads((out / "samples" / "dpo" / "hpdv2" / "sample.json").read_text())
    assert sampled["prompt_source"]["source"] == "shipped: hpsv2.json" and sampled["machine"]["cpu"]
    scored = json.loads((out / "scores" / "dpo" / "hpdv2" / "pickscore.json").read_text())
    assert scored["prompt_source"] == sampled["prompt_source"] and "code" in scored
    models = pd.read_csv(out / "tables" / "models.csv").set_index("model")
    assert models.loc["dpo", "precision"] == "no" and models.loc["dpo", "data"].startswith("local sha256 ")
    encoded = json.loads((out / "data" / "encoded" / "encoded.json").read_text())
    assert encoded["pairs"] == 22 and encoded["x0_shape"] == [4, 16, 16] and encoded["dtype"] == "float16"
    assert encoded["flips"] == 2  # data.flip: both flips of every image are on disk
    record = json.loads((out / "models" / "dpo" / "train.json").read_text())
    assert record["pairs_per_step"] == 4 and record["grad_accum"] == 2 and record["data"]["flip"]

    # HPDv2's photo style is never sampled: its scores are hpdv2's rows with photo- prompt ids
    assert not (out / "samples" / "inpo" / "hpdv2_photo").exists()
    for scorer in ("pickscore", "hpsv21"):
        full = pd.read_csv(out / "scores" / "inpo" / "hpdv2" / f"{scorer}.csv")
        photo = pd.read_csv(out / "scores" / "inpo" / "hpdv2_photo" / f"{scorer}.csv")
        assert len(photo) >= 1 and photo.prompt_id.str.startswith("photo-").all()
        assert photo.equals(full[full.prompt_id.str.startswith("photo-")].reset_index(drop=True))

    assert json.loads((out / "prompts" / "hpdv2.json").read_text())["used"] == 2
    index = pd.read_csv(out / "samples" / "inpo" / "hpdv2" / "index.csv")
    assert all(Image.open(out / "samples" / "inpo" / "hpdv2" / f).size == (32, 32) for f in index.file)
    for scorer in ("pickscore", "hpsv21"):
        scores = pd.read_csv(out / "scores" / "inpo" / "hpdv2" / f"{scorer}.csv")
        assert len(scores) == len(index) and scores.score.notna().all()
    wins = pd.read_csv(out / "tables" / "win_rates.csv")
    assert set(wins.scorer) == {"pickscore", "hpsv21"}
    assert not (out / "tables" / "paper_claims.csv").exists()  # the toy-world claims need the oracle
    paper = pd.read_csv(out / "tables" / "paper_comparison.csv")
    assert len(paper) == 4 * 8  # the SD1.5 rows of the paper's table: 4 baselines x 2 prompt sets x 4 metrics
    # this run trains no KTO and samples no Parti, and scores two of the four metrics: those cells say why
    covered = (paper.paper_baseline != "KTO-SD1.5") & (paper.promptset == "hpdv2") & paper.scorer.isin(wins.scorer)
    assert covered.sum() == 3 * 2 and paper[covered].win_rate.between(0, 100).all()
    assert paper[~covered].win_rate.isna().all() and paper[~covered].note.str.startswith("no win rate").all()


@pytest.mark.slow
def test_sdxl_smoke_trains_and_scores(smoke_run):
    target = "results/smoke-sdxl/scores/inpo/hpdv2/pickscore.csv"
    snakemake("--cores", "2", "--configfile", str(SMOKE), str(SDXL), "--directory", str(smoke_run), "--", target)
    out = smoke_run / "results" / "smoke-sdxl"
    assert json.loads((out / "models" / "base" / "model.json").read_text())["kind"] == "sdxl"
    record = json.loads((out / "models" / "inpo" / "train.json").read_text())
    assert record["config"]["optimizer"] == "adafactor" and record["gradient_checkpointing"]
    unet = UNet2DConditionModel.from_pretrained(out / "models" / "inpo" / "unet")
    assert unet.config.addition_embed_type == "text_time"
    assert len(pd.read_csv(smoke_run / target)) == 2


GPU_RULES = {"train", "sample", "score_model", "encode_pairs"}


def slurm_dry_run(config: str, workdir: Path) -> tuple[str, dict[str, int], dict[str, dict[str, str]]]:
    """The SLURM plan of a paper config: its output, job counts, and the resources of each rule's first job."""
    dry = snakemake(
        "-n",
        "-p",
        "--executor",
        "slurm",
        "-j",
        "10",
        "--workflow-profile",
        "profiles/slurm",
        "--configfile",
        str(REPO / "config" / config),
        "--directory",
        str(workdir),
    ).stdout
    counts = {k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)$", dry.split("Job stats:")[1].split("\n\n")[0], re.M)}
    resources = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        found = re.search(r"resources: (.*)", block)
        if rule and found:
            resources.setdefault(rule[1], dict(item.split("=", 1) for item in found[1].split(", ")))
    return dry, counts, resources


@pytest.mark.parametrize("config", ["sd15.yaml", "sdxl.yaml"])
def test_paper_configs_plan_sane_slurm_jobs(tmp_path, config):
    dry, counts, resources = slurm_dry_run(config, tmp_path)
    run = config.removesuffix(".yaml")
    # base, sft, dpo, inpo (+ kto for SD1.5); pickapic, parti, hpdv2 sampled (hpdv2's styles are derived)
    trained = 4 if run == "sd15" else 3
    models, sampled, styles = 1 + trained, 3, 4
    scorers = yaml.safe_load((REPO / "config" / config).read_text())["eval"]["scorers"]
    assert len(scorers) == 7 and "hpsv3" in scorers  # the six of the paper's era and HPSv3
    assert counts["train"] == trained and counts["base_model"] == 1 and counts["prepare_pairs"] == 1
    assert counts["sample"] == models * sampled and counts["score_model"] == models * sampled * len(scorers)
    prepared = {"hpsv2", "hpsv21", "imagereward", "aesthetic", "hpsv3"}  # converted or fetched once
    assert counts["subset_scores"] == models * styles and counts["prepare_scorer"] == len(prepared & set(scorers))
    assert counts.get("encode_pairs", 0) == (1 if run == "sd15" else 0)  # sdxl encodes per batch
    for rule, res in resources.items():
        assert int(res["mem_mb"]) >= 8000 and int(res["runtime"]) >= 60, rule
        if rule in GPU_RULES:
            assert res["slurm_partition"] == "gpu" and int(res["gpu"]) >= 1, rule
        else:
            assert res["slurm_partition"] == "cpu" and int(res.get("gpu", 0)) == 0, rule
    assert int(resources["train"]["gpu"]) == 8 and int(resources["train"]["runtime"]) == 2 * 24 * 60
    assert "accelerate launch --multi_gpu --num_processes 8" in dry
    if run == "sd15":
        assert (
            int(resources["encode_pairs"]["runtime"]) >= 12 * 60 and int(resources["encode_pairs"]["cpus_per_task"]) > 1
        )
        assert "--method inpo --init results/sd15/models/sft" in dry  # SD1.5 InPO starts from SFT
        assert "--method kto --init results/sd15/models/base" in dry  # the paper's fourth baseline
        assert "inpo:kto" in dry
        assert "encode-pairs" in dry and "--flip --workers 8" in dry
    else:
        assert "--method inpo --init results/sdxl/models/base" in dry and '"optimizer": "adafactor"' in dry
        assert "--gradient-checkpointing 1" in dry
    # what cannot change the weights is not in --spec, so changing it retrains nothing
    specs = re.findall(r"--spec '([^']*)'", dry)
    train_specs = [json.loads(s) for s in specs if '"method"' in s]
    assert train_specs and all("checkpoint_every" not in s["method"] for s in train_specs)
    assert all("progress_eval" not in s and "eval_every" not in s["method"] for s in train_specs)


def test_sd_images_are_resized_and_centre_cropped(tmp_path):
    from inpo_bench.data.pairs import prepare_image

    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, 20:60] = 255  # a white band over the middle half of the width
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG")
    out = prepare_image(buffer.getvalue(), 32, "test", exact=False)
    # 40 x 80 -> 32 x 64, centre crop of 32 columns: columns 16..48 of the resized image, all inside the band
    assert out.shape == (32, 32, 3) and out[:, 2:30].min() > 200
    with pytest.raises(Exception, match="the model works at 32px"):
        prepare_image(buffer.getvalue(), 32, "toy image", exact=True)


@pytest.mark.slow
def test_changing_one_scorer_rescores_with_that_scorer_only(smoke_run, tmp_path):
    overlay = tmp_path / "pickscore.yaml"
    overlay.write_text("scorers: {pickscore: {processor: resources/smoke/scorers/clip-l}}\n")
    dry = snakemake("-n", "-p", "--configfile", str(SMOKE), str(overlay), "--directory", str(smoke_run)).stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.split("Job stats:")[1].split("\n\n")[0], re.M))
    assert counts["score_model"] == str(4 * 1)  # 4 models x 1 sampled prompt set, pickscore alone
    assert "train" not in counts and "sample" not in counts and "prepare_scorer" not in counts
    assert re.findall(r"--scorer (\w+)", dry) == ["pickscore"] * 4
