"""LAION aesthetic predictor v2 (improved-aesthetic-predictor, `sac+logos+ava1-l14-linearMSE.pth`).

score = head(e / ||e||) with e the CLIP ViT-L/14 image embedding and head the 5-layer linear MLP; about 1-10, higher
is prettier. Preprocessing is OpenAI CLIP's (shortest edge 224, bicubic, centre crop rounded as torchvision).
The head loads with torch.load(weights_only=True) and a strict state dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import CLIPModel

from .base import l2_normalise, location, resolve_dtype
from .heads import RewardHead, load_strict, torch_load
from .preprocess import clip_preprocess


class Aesthetic:
    name = "aesthetic"

    def __init__(self, clip: str, head: str, device: str, dtype: str) -> None:
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.model = CLIPModel.from_pretrained(clip, dtype=self.dtype).to(device).eval()
        self.size = self.model.config.vision_config.image_size
        self.head = RewardHead(self.model.config.projection_dim)
        load_strict(self.head, torch_load(head), f"aesthetic head {head}")
        self.head.to(device).eval()

    @torch.no_grad()
    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
        del prompts  # prompt-independent
        pixels = clip_preprocess(images, self.size, rounding="round").to(self.device, self.dtype)
        embedding = l2_normalise(self.model.get_image_features(pixel_values=pixels).pooler_output)
        return self.head(embedding).cpu().double().numpy()


def load(cfg: dict[str, Any], device: str, dtype: str) -> Aesthetic:
    return Aesthetic(
        location(cfg["clip"], "scorers.aesthetic.clip"), location(cfg["head"], "scorers.aesthetic.head"), device, dtype
    )
