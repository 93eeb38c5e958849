"""Turn a scorer's config section into local, ready-to-load files, once per machine (`resources/scorers/`).

- hpsv2 / hpsv21: the open_clip checkpoint (local, or downloaded from the hub repo xswu/HPSv2) converted to a
  transformers CLIPModel directory;
- imagereward: ImageReward.pt and med_config.json (local, or from THUDM/ImageReward) converted to BLIP + head;
- hpsv3: HPSv3.safetensors (local, or from MizzenAI/HPSv3) beside the configuration, tokenizer and chat template
  of Qwen2-VL-7B-Instruct (a local directory, or only those files of the hub repository, no weights);
- aesthetic: the LAION head (local, or downloaded from the improved-aesthetic-predictor repository, checked
  against its published SHA-256) copied next to a record.

`inpo_bench.scorers.runtime_config` then gives what `load_scorer` needs. PickScore and the CLIP score load
transformers directories (or hub ids) directly and need no preparation.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import ModelError
from ..runtime import sha256
from . import PREPARED
from .base import location
from .heads import RewardHead, load_strict, torch_load

AESTHETIC_URL = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth"
)
AESTHETIC_SHA256 = "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"


def _hub_file(repo: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo, filename)


def prepare(name: str, cfg: dict[str, Any], out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if name in ("hpsv2", "hpsv21"):
        from . import hps

        checkpoint = cfg.get("checkpoint") or _hub_file("xswu/HPSv2", hps.VERSIONS[name])
        return hps.convert(checkpoint, location(cfg["clip"], f"scorers.{name}.clip"), out_dir, name)
    if name == "imagereward":
        from . import imagereward

        checkpoint = cfg.get("checkpoint") or _hub_file("THUDM/ImageReward", "ImageReward.pt")
        med = cfg.get("med_config") or _hub_file("THUDM/ImageReward", "med_config.json")
        return imagereward.convert(
            checkpoint, med, location(cfg["bert"], "scorers.imagereward.bert"), out_dir, cfg.get("vision_heads", 16)
        )
    if name == "hpsv3":
        from . import hpsv3

        checkpoint = cfg.get("checkpoint") or _hub_file("MizzenAI/HPSv3", "HPSv3.safetensors")
        return hpsv3.prepare(checkpoint, _hub_configs(location(cfg["base"], "scorers.hpsv3.base")), out_dir)
    if name == "aesthetic":
        head = Path(cfg["head"]) if cfg.get("head") else _download(AESTHETIC_URL, out_dir / "download.pth")
        state = torch_load(head)
        width = state["layers.0.weight"].shape[1] if "layers.0.weight" in state else 0
        load_strict(RewardHead(width), state, f"aesthetic head {head}")  # fail here, not in every score job
        digest = sha256(head)
        if not cfg.get("head") and digest != AESTHETIC_SHA256:
            raise ModelError(f"{AESTHETIC_URL}: SHA-256 {digest} differs from the published {AESTHETIC_SHA256}")
        shutil.copyfile(head, out_dir / "head.pth")
        (out_dir / "scorer.json").write_text(
            json.dumps({"scorer": "aesthetic", "source": str(head), "sha256": digest, "clip": cfg["clip"]}, indent=2)
            + "\n"
        )
        return out_dir
    raise ValueError(f"scorer {name!r} needs no preparation; prepared scorers are {PREPARED}")


def _hub_configs(value: str) -> Path:
    """A local directory as it is; of a hub repository only its configuration, tokenizer and template files."""
    if Path(value).is_dir():
        return Path(value)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(value, allow_patterns=["*.json", "*.txt", "*.jinja", "*.model"]))


def _download(url: str, target: Path) -> Path:
    tmp = target.with_suffix(".tmp")
    urllib.request.urlretrieve(url, tmp)  # a fixed https URL
    tmp.replace(target)
    return target
