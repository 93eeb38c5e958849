"""PickScore (Kirstain et al. 2023): a CLIP-H model fine-tuned on Pick-a-Pic preferences.

score = logit_scale.exp() * cos(image embedding, text embedding), about 100 x cosine (logit_scale.exp() is ~100
for CLIP-H), the scale the papers report (e.g. 21.9). Images go through the CLIP-H repository's Hugging Face image
processor (PIL backend), as PickScore was trained with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

from .base import l2_normalise, location, resolve_dtype


class CLIPPairScorer:
    """Shared by PickScore and the CLIP score: scale * cos(image_i, text_i) for each pair."""

    def __init__(
        self, name: str, model: str, processor: str, device: str, dtype: str, logit_scale: bool, multiplier: float = 1.0
    ) -> None:
        self.name = name
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.model = CLIPModel.from_pretrained(model, dtype=self.dtype).to(device).eval()
        self.images = AutoImageProcessor.from_pretrained(processor, backend="pil")
        self.tokenizer = AutoTokenizer.from_pretrained(processor)
        self.logit_scale = logit_scale
        self.multiplier = multiplier

    @torch.no_grad()
    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
        # RGB first, by PIL's plain convert, as the CLIP image processor of transformers 4.x does (the version
        # PickScore's reference code and torchmetrics were written against; transformers 5 composites transparency
        # onto white instead)
        rgb = [image.convert("RGB") for image in images]
        pixels = self.images(images=rgb, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        text = self.tokenizer(prompts, padding=True, truncation=True, max_length=77, return_tensors="pt").to(
            self.device
        )
        image_emb = l2_normalise(self.model.get_image_features(pixel_values=pixels).pooler_output)
        text_emb = l2_normalise(self.model.get_text_features(**text).pooler_output)
        cosine = (image_emb * text_emb).sum(-1)
        scale = self.model.logit_scale.float().exp() if self.logit_scale else torch.tensor(1.0)
        return (self.multiplier * scale * cosine).cpu().double().numpy()


def load(cfg: dict[str, Any], device: str, dtype: str, logit_scale: bool = True) -> CLIPPairScorer:
    """PickScore (x logit_scale.exp()), or with logit_scale=False its raw cosine (SmPO's labels)."""
    return CLIPPairScorer(
        "pickscore" if logit_scale else "pickscore_cosine",
        location(cfg["model"], "scorers.pickscore.model"),
        location(cfg["processor"], "scorers.pickscore.processor"),
        device,
        dtype,
        logit_scale=logit_scale,
    )
