"""Scorers: name -> per-image scores of (image, prompt) pairs, behind one registry.

Toy oracle scorers read the toy world's hidden reward; each is one column of `OracleScore`, and one job computes
them all because the oracle costs microseconds per image. The model scorers each live in their own module and
load from local directories or files (hub ids only as a convenience); `describe` says what each number means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# scorer name -> OracleScore field (booleans score 1.0 or 0.0)
ORACLE_SCORERS: dict[str, str] = {
    "oracle_reward": "reward",
    "oracle_fidelity": "fidelity",
    "oracle_aesthetic": "aesthetic",
    "oracle_all_correct": "all_correct",
    "oracle_fg_correct": "fg_correct",
    "oracle_bg_correct": "bg_correct",
    "oracle_shape_correct": "shape_correct",
    # 1 unless the image is pixel noise (clean term < 0.05), so that higher is better like every score; 1 - its
    # mean is the model's noisy share
    "oracle_not_noise": "not_noise",
    # 1 unless the image shows the prompt's two colours swapped (pretrain.learned_flaws colour_swap); 1 - its mean
    # is the model's swapped share
    "oracle_not_swapped": "not_swapped",
}

# scorer name -> what the score is (recorded next to every score file)
MODEL_SCORERS: dict[str, str] = {
    "pickscore": "PickScore_v1 (CLIP-H/14): logit_scale.exp() * cos(image, text), ~100 x cosine as the papers print",
    "hpsv2": "HPS v2.0 (CLIP-H/14): cos(image, text), raw cosine as hpsv2.score returns",
    "hpsv21": "HPS v2.1 (CLIP-H/14): cos(image, text), raw cosine as hpsv2.score returns",
    "imagereward": "ImageReward v1.0 (BLIP): (MLP(text [CLS] x image) - 0.16717) / 1.03334",
    "aesthetic": "LAION aesthetic predictor v2 (sac+logos+ava1-l14-linearMSE on CLIP ViT-L/14), about 1-10",
    "clip": "CLIP score: 100 x cos(image, text) per image with the configured CLIP (scorers.clip.model), not "
    "clipped at 0; equals torchmetrics' CLIPScore per image for prompts of up to 77 tokens (longer ones keep "
    "their end token, as OpenAI clip.tokenize(truncate=True))",
    "pickscore_cosine": "PickScore_v1's raw cosine(image, text), as DiffusionDPO's and SmPO's Selector return it "
    "(SmPO's label scorer); settings of scorers.pickscore",
    "hpsv3": "HPSv3 (Qwen2-VL-7B reward model): mu of its Gaussian reward at the <|Reward|> token, raw as "
    "the HPDv3 benchmark prints it (SDXL 8.20 there); sigma = exp(log sigma) is written beside it (hpsv3 inference.py)",
    "toy_reward": "the toy world's learned reward model (a tiny CLIP trained on the toy pairs like PickScore): "
    "logit_scale.exp() * cos; toy world only",
}
# scorers whose settings live in another scorer's config section
SECTION = {"pickscore_cosine": "pickscore"}
TOY_MODEL_SCORERS = ("toy_reward",)  # trained in the toy world's DAG (models/toy_reward/)


# scorers whose upstream weights are fetched / converted once (`inpo-bench prepare-scorer`) before scoring
PREPARED = ("hpsv2", "hpsv21", "imagereward", "aesthetic", "hpsv3")


def section(name: str) -> str:
    """The key of the config's `scorers` section that holds this scorer's settings."""
    return SECTION.get(name, name)


def runtime_config(name: str, cfg: dict[str, Any], prepared: str | Path | None) -> dict[str, Any]:
    """The arguments of load_scorer: the config, with prepared files in place of the upstream ones."""
    if name in ("hpsv2", "hpsv21", "imagereward", "hpsv3", "toy_reward"):
        return {"model": str(prepared)}
    if name == "aesthetic":
        return {"clip": cfg["clip"], "head": str(Path(prepared) / "head.pth")}
    return dict(cfg)


def known_scorers() -> list[str]:
    return [*ORACLE_SCORERS, *MODEL_SCORERS]


def describe(name: str) -> str:
    if name in ORACLE_SCORERS:
        return f"toy oracle: the {ORACLE_SCORERS[name]} field of the hidden true reward"
    return MODEL_SCORERS[name]


def load_scorer(name: str, cfg: dict[str, Any], device: str = "cpu", dtype: str = "float32") -> Any:
    """Build a model scorer from its config section (see config.yaml `scorers`)."""
    if name in ("pickscore", "pickscore_cosine"):
        from . import pickscore

        return pickscore.load(cfg, device, dtype, logit_scale=name == "pickscore")
    if name == "toy_reward":
        from . import toy_reward

        return toy_reward.load(cfg, device, dtype)
    if name in ("hpsv2", "hpsv21"):
        from . import hps

        return hps.load(name, cfg, device, dtype)
    if name == "imagereward":
        from . import imagereward

        return imagereward.load(cfg, device, dtype)
    if name == "aesthetic":
        from . import aesthetic

        return aesthetic.load(cfg, device, dtype)
    if name == "hpsv3":
        from . import hpsv3

        return hpsv3.load(cfg, device, dtype)
    if name == "clip":
        from . import clipscore

        return clipscore.load(cfg, device, dtype)
    raise ValueError(f"unknown model scorer {name!r}; known: {sorted(MODEL_SCORERS)}")
