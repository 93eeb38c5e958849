"""The paper-scale code path: Stable Diffusion 1.5 / SDXL bases, Pick-a-Pic v2, the five scorers, SLURM, all on
tiny stand-ins in the real formats (config/smoke-sd.yaml)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import UNet2DConditionModel
from PIL import Image

from inpo_bench.data.pairs import EncodedPairs, LazyPairs, encode_to_disk, load_pair_data
from inpo_bench.data.pickapic import prepare_pairs
from inpo_bench.models.bundle import load_model, write_base_spec
from inpo_bench.smoke import pipelines
from tests.conftest import REPO, snakemake

SMOKE = REPO / "config" / "smoke-sd.yaml"
SDXL = REPO / "tests" / "configs" / "smoke-sdxl.yaml"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("smoke")
    snakemake("--cores", "2", "--configfile", str(SMOKE), "--directory", str(workdir))
    return workdir


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

    base = json.loads((out / "models" / "base" / "model.json").read_text())
    assert base["kind"] == "sd" and base["unet"] is None and base["components"].endswith("resources/smoke/sd15")
    for method in ("sft", "dpo", "inpo"):
        folder = out / "models" / method
        UNet2DConditionModel.from_pretrained(folder / "unet")  # the diffusers layout, loadable on its own
        record = json.loads((folder / "train.json").read_text())
        assert record["config"]["steps"] == 2 and record["training"]["mixed_precision"] == "bf16"
        assert not (folder / "eval_log.csv").exists()  # no oracle outside the toy world
    assert json.loads((out / "models" / "inpo" / "train.json").read_text())["init"].endswith("models/sft")
    encoded = json.loads((out / "data" / "encoded" / "encoded.json").read_text())
    assert encoded["pairs"] == 22 and encoded["x0_shape"] == [4, 16, 16] and encoded["dtype"] == "float16"

    for promptset in ("pickapic_test_unique", "parti", "hpdv2"):
        assert json.loads((out / "prompts" / f"{promptset}.json").read_text())["used"] == 2
        index = pd.read_csv(out / "samples" / "inpo" / promptset / "index.csv")
        assert all(Image.open(out / "samples" / "inpo" / promptset / f).size == (32, 32) for f in index.file)
        for scorer in ("pickscore", "hpsv21", "imagereward", "aesthetic", "clip"):
            scores = pd.read_csv(out / "scores" / "inpo" / promptset / f"{scorer}.csv")
            assert len(scores) == len(index) and scores.score.notna().all()
    wins = pd.read_csv(out / "tables" / "win_rates.csv")
    assert set(wins.scorer) == {"pickscore", "hpsv21", "imagereward", "aesthetic", "clip"}
    assert not (out / "tables" / "paper_claims.csv").exists()  # the toy-world claims need the oracle
    paper = pd.read_csv(out / "tables" / "paper_comparison.csv")
    assert len(paper) == 4 * 8  # the SD1.5 rows of the paper's table: 4 baselines x 2 prompt sets x 4 metrics
    covered = paper[paper.paper_baseline != "KTO-SD1.5"]  # this suite trains no KTO model
    assert covered.win_rate.between(0, 100).all() and paper[paper.paper_baseline == "KTO-SD1.5"].win_rate.isna().all()
    assert set(covered.scorer) == {"aesthetic", "pickscore", "hpsv21", "clip"}


@pytest.mark.slow
def test_sdxl_smoke_trains_and_scores(smoke_run):
    target = "results/smoke-sdxl/scores/inpo/parti/pickscore.csv"
    snakemake("--cores", "2", "--configfile", str(SMOKE), str(SDXL), "--directory", str(smoke_run), "--", target)
    out = smoke_run / "results" / "smoke-sdxl"
    assert json.loads((out / "models" / "base" / "model.json").read_text())["kind"] == "sdxl"
    record = json.loads((out / "models" / "inpo" / "train.json").read_text())
    assert record["config"]["optimizer"] == "adafactor" and record["training"]["gradient_checkpointing"]
    unet = UNet2DConditionModel.from_pretrained(out / "models" / "inpo" / "unet")
    assert unet.config.addition_embed_type == "text_time"
    assert len(pd.read_csv(smoke_run / target)) == 2


def test_paper_configs_plan_the_full_dag_on_slurm(tmp_path):
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
        str(REPO / "config" / "sd15.yaml"),
        "--directory",
        str(tmp_path),
    )
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout.split("Job stats:")[1].split("\n\n")[0], re.M))
    promptsets = 7  # pickapic_test_unique, parti, hpdv2 and its four styles
    assert counts["train"] == "3" and counts["base_model"] == "1" and counts["prepare_pairs"] == "1"
    assert counts["sample"] == str(4 * promptsets) and counts["score_models"] == str(4 * promptsets)
    assert counts["prepare_scorer"] == "4"  # hpsv2, hpsv21, imagereward, aesthetic
    assert "accelerate launch --multi_gpu --num_processes 8" in dry.stdout and "gpu=8" in dry.stdout
    assert "--method inpo --init results/sd15/models/sft" in dry.stdout  # SD1.5 InPO starts from SFT
    sdxl = snakemake("-n", "-p", "--configfile", str(REPO / "config" / "sdxl.yaml"), "--directory", str(tmp_path))
    assert "--method inpo --init results/sdxl/models/base" in sdxl.stdout and '"optimizer": "adafactor"' in sdxl.stdout


def test_lazy_and_disk_pairs_match_the_in_memory_encoding(tmp_path):
    shard = pipelines.build_pickapic_shard(tmp_path / "train.parquet")
    prepare_pairs([shard], tmp_path / "pairs.parquet", source="pickapic_v2", batch_rows=5)
    write_base_spec(tmp_path / "base", "sd", 32, str(pipelines.build_sd15(tmp_path / "sd15")))
    model = load_model(tmp_path / "base")
    memory, lazy = (
        load_pair_data(tmp_path / "pairs.parquet", model),
        LazyPairs(tmp_path / "pairs.parquet", model, cached_groups=1),
    )
    assert len(memory) == len(lazy) == 22
    indices = torch.tensor([21, 0, 5, 13, 0])  # across row groups, out of order, repeated
    for a, b in zip(memory.batch(indices), lazy.batch(indices)):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(memory.empty, lazy.empty)
    summary = encode_to_disk(tmp_path / "pairs.parquet", model, tmp_path / "encoded", batch_size=5)
    assert summary["pairs"] == 22 and summary["captions"] == len(
        set(pd.read_parquet(tmp_path / "pairs.parquet").caption)
    )
    disk = EncodedPairs(tmp_path / "encoded")
    assert len(disk) == 22
    for a, b in zip(memory.batch(indices), disk.batch(indices)):
        assert torch.allclose(a, b, atol=2e-3 * max(1.0, float(a.abs().max())))  # float16 on disk


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
