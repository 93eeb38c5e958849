"""Tiny stand-ins, in the real file formats, for everything the paper-scale path downloads.

`build_all(root)` writes: Stable Diffusion 1.5 and SDXL pipelines (diffusers save_pretrained), a Pick-a-Pic v2
train shard with a tie and a corrupt image, the three prompt-set files, the upstream checkpoints of the six
scorers and one released-checkpoint stand-in per load kind. config/smoke-sd.yaml runs the whole paper DAG on them,
config/smoke-checkpoints.yaml evaluates the checkpoint stand-ins, each on a CPU in a couple of minutes.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import checkpoints, hpsv3, pipelines, prompts, scorers


def build_all(root: str | Path) -> dict[str, str]:
    root = Path(root)
    paths: dict[str, Path] = {
        "sd15": pipelines.build_sd15(root / "sd15"),
        "sdxl": pipelines.build_sdxl(root / "sdxl"),
        "pickapic": pipelines.build_pickapic_shard(root / "pickapic_v2" / "data" / "train-00000-of-00001.parquet"),
        "pickapic_test_unique": prompts.pickapic_file(root / "prompts" / "test_unique-00000-of-00001.parquet"),
        "parti": prompts.parti_file(root / "prompts" / "PartiPrompts.tsv"),
        "hpdv2": prompts.hpd_folder(root / "prompts" / "HPDv2"),
        **scorers.build_all(root / "scorers"),
        **hpsv3.build(root / "scorers"),
    }
    paths.update(checkpoints.build_checkpoints(paths["sd15"], root / "checkpoints"))
    manifest = {name: str(path) for name, path in paths.items()}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")  # written last: marks completion
    return manifest
