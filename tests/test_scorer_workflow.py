"""Every model scorer through the DAG on a real prompt set, with tiny models in the real formats."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from inpo_bench.smoke import hpsv3
from inpo_bench.smoke.prompts import hpd_folder, parti_file, pickapic_file
from inpo_bench.smoke.scorers import HEADS, build_all
from tests.conftest import TINY, snakemake

pytestmark = pytest.mark.slow

# every scorer on one prompt set (the smoke runs take Parti and HPDv2 through the DAG, with two scorers each)
SETS = ["pickapic_test_unique"]
SCORERS = ["pickscore", "hpsv2", "hpsv21", "imagereward", "aesthetic", "hpsv3", "clip"]


def test_scorers_and_prompt_sets_through_the_dag(tiny_run, tmp_path):
    workdir = tiny_run.parents[1]
    files = build_all(tmp_path / "upstream") | hpsv3.build(tmp_path / "upstream")
    overlay = tmp_path / "scorers.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "prompts": {
                    "cache": str(tmp_path / "cache"),
                    "limit": 4,
                    "pickapic_test_unique": str(pickapic_file(tmp_path / "test_unique.parquet")),
                    "parti": str(parti_file(tmp_path / "PartiPrompts.tsv")),
                    "hpdv2": str(hpd_folder(tmp_path / "HPDv2")),
                },
                "scorers": {
                    "pickscore": {"model": str(files["pickscore"]), "processor": str(files["clip"])},
                    "hpsv2": {"checkpoint": str(files["hpsv2_checkpoint"]), "clip": str(files["clip"])},
                    "hpsv21": {"checkpoint": str(files["hpsv21_checkpoint"]), "clip": str(files["clip"])},
                    "imagereward": {
                        "checkpoint": str(files["imagereward_checkpoint"]),
                        "med_config": str(files["med_config"]),
                        "bert": str(files["bert"]),
                        "vision_heads": HEADS,
                    },
                    "aesthetic": {"clip": str(files["clip_l"]), "head": str(files["aesthetic_head"])},
                    "hpsv3": {"checkpoint": str(files["hpsv3_checkpoint"]), "base": str(files["qwen2vl"])},
                    "clip": {"model": str(files["clip_l"])},
                },
                "eval": {"promptsets": SETS, "scorers": SCORERS},
            }
        )
    )
    targets = [f"results/tiny/scores/base/{p}/{s}.csv" for p in SETS for s in SCORERS]
    snakemake("--cores", "2", "--configfile", str(TINY), str(overlay), "--directory", str(workdir), "--", *targets)

    for promptset in SETS:
        prompts = pd.read_csv(tiny_run / "prompts" / f"{promptset}.csv")
        record = json.loads((tiny_run / "prompts" / f"{promptset}.json").read_text())
        assert len(prompts) == 4 and record["used"] == 4 and record["count"] == 500
        index = pd.read_csv(tiny_run / "samples" / "base" / promptset / "index.csv")
        for scorer in SCORERS:
            scores = pd.read_csv(tiny_run / "scores" / "base" / promptset / f"{scorer}.csv")
            spread = ["sigma"] if scorer == "hpsv3" else []  # HPSv3's second output, beside its score
            assert list(scores.columns) == ["prompt_id", "seed", "score", *spread] and len(scores) == len(index)
            assert scores.score.notna().all()
            meta = json.loads((tiny_run / "scores" / "base" / promptset / f"{scorer}.json").read_text())
            assert meta["scorer"] == scorer and meta["images"] == len(index) and meta["meaning"]
    for name in ("hpsv2", "hpsv21", "imagereward", "aesthetic", "hpsv3"):  # converted / fetched once, outside any run
        assert (workdir / "resources" / "scorers" / name / "scorer.json").is_file()
