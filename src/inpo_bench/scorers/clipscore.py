"""CLIP score: 100 x cos(image embedding, text embedding) per image, no clipping at zero.

Which CLIP is part of the result, so the model is configured explicitly (default OpenAI ViT-L/14, as
torchmetrics; Diffusion-DPO's evaluation used OpenCLIP ViT-H/14) and recorded next to the scores.
"""

from __future__ import annotations

from typing import Any

from .base import location
from .pickscore import CLIPPairScorer


def load(cfg: dict[str, Any], device: str, dtype: str) -> CLIPPairScorer:
    model = location(cfg["model"], "scorers.clip.model")
    return CLIPPairScorer("clip", model, model, device, dtype, logit_scale=False, multiplier=100.0)
