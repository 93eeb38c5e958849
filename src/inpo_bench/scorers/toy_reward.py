"""The toy world's learned reward model (models/toy_reward.py) as a scorer: logit_scale.exp() * cos."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..models import toy_reward


class ToyRewardScorer:
    name = "toy_reward"

    def __init__(self, folder: str, device: str) -> None:
        self.model, self.tokenizer = toy_reward.load(folder)
        self.model.to(device)
        self.device = device
        self.resolution = self.model.config.vision_config.image_size

    @torch.no_grad()
    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
        arrays = [np.asarray(image.convert("RGB")) for image in images]
        if any(a.shape[:2] != (self.resolution, self.resolution) for a in arrays):
            raise DataError(f"the toy reward model scores {self.resolution}x{self.resolution} toy images only")
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)
        out = toy_reward.scores(self.model, tokens, toy_reward.pixels(arrays).to(self.device))
        return out.cpu().double().numpy()


def load(cfg: dict[str, Any], device: str, dtype: str) -> ToyRewardScorer:
    return ToyRewardScorer(cfg["model"], device)
