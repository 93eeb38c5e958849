"""Training objectives: one nn.Module per method whose forward returns (loss, metrics) for a drawn micro-batch.

The trainer owns the loop (optimiser, accumulation, checkpoints); an objective owns what differs between
methods: which modules train, how a micro-batch is drawn from the data with a seeded generator, and the loss.
Keeping the loss inside forward() lets DistributedDataParallel wrap the objective as one model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..diffusion import add_noise
from ..models.bundle import T2IModel
from .losses import epsilon_loss, per_sample_mse


class Pretrain(nn.Module):
    """Denoising pretraining from scratch on (image, caption) data; the text encoder trains jointly."""

    name = "pretrain"

    def __init__(
        self, model: T2IModel, images: np.ndarray, captions: list[str], caption_dropout: float, batch_size: int
    ) -> None:
        super().__init__()
        self.unet = model.unet
        self.text_encoder = model.text_encoder
        self.register_buffer("abar", model.alphas_cumprod.clone(), persistent=False)
        self.x0 = model.images_to_x0(images)
        unique = sorted(set(captions) | {""})
        self.tokens = model.tokenize(unique)
        index = {c: i for i, c in enumerate(unique)}
        self.caption_index = torch.tensor([index[c] for c in captions])
        self.empty_index = index[""]
        self.caption_dropout = caption_dropout
        self.batch_size = batch_size
        self.num_timesteps = model.num_train_timesteps

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "text_encoder": self.text_encoder}

    def draw(self, generator: torch.Generator) -> dict[str, Any]:
        b = self.batch_size
        idx = torch.randint(len(self.x0), (b,), generator=generator)
        captions = self.caption_index[idx].clone()
        captions[torch.rand(b, generator=generator) < self.caption_dropout] = self.empty_index
        return {
            "x0": self.x0[idx],
            "tokens": self.tokens[captions],
            "t": torch.randint(0, self.num_timesteps, (b,), generator=generator),
            "noise": torch.randn(self.x0[idx].shape, generator=generator),
        }

    def forward(
        self, x0: torch.Tensor, tokens: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        context = self.text_encoder(tokens).last_hidden_state
        x_t = add_noise(x0, noise, self.abar[t])
        eps = self.unet(x_t, t, encoder_hidden_states=context).sample
        loss = epsilon_loss(eps, noise)
        return loss, {"model_mse": float(per_sample_mse(eps.detach(), noise).mean())}
