"""CLIP score: 100 x cos(image embedding, text embedding) per image, no clipping at zero.

The number equals torchmetrics' `CLIPScore` (torchmetrics/functional/multimodal/clip_score.py: the Hugging Face
CLIP processor, so the same centre crop with a floored offset, and 100 x cosine) image by image, for prompts of up
to 77 tokens. Two differences, both deliberate: a longer prompt is truncated keeping its end token, as OpenAI's
`clip.tokenize(truncate=True)` does, where torchmetrics slices the token ids and loses the end token that CLIP
pools; and torchmetrics reports max(mean, 0) of a batch, where the suite keeps every image's score and averages in
the tables. Which CLIP is part of the result, so the model is configured explicitly (default and paper-scale
configs: OpenAI ViT-L/14, torchmetrics' default; the paper does not name its CLIP, Diffusion-DPO's utilities use
OpenCLIP ViT-H/14) and recorded next to the scores.
"""

from __future__ import annotations

from typing import Any

from .base import location
from .pickscore import CLIPPairScorer


def load(cfg: dict[str, Any], device: str, dtype: str) -> CLIPPairScorer:
    model = location(cfg["model"], "scorers.clip.model")
    return CLIPPairScorer("clip", model, model, device, dtype, logit_scale=False, multiplier=100.0)
