"""Supervised fine-tuning on the preferred image of each pair.

Follows SalesforceAIResearch/DiffusionDPO train.py `--sft` (the SFT branch: `F.mse_loss(model_pred, target)` on the
image with label 1, epsilon target, same data filter as DPO). No SFT recipe was published by either paper; the
configs give it Diffusion-DPO's budget and schedule. The reference UNet of the official script is loaded but
unused, so none is kept here.
"""

from __future__ import annotations

from typing import Any

import torch

from ..diffusion import add_noise
from .base import Context, Method
from .losses import epsilon_loss
from .objectives import Generators, PairObjective, normal


class SFT(PairObjective):
    name = "sft"

    def draw(self, fetched: Any, generators: Generators, indices: Any = None) -> dict[str, Any]:
        x0, _, batch = self.draw_common(fetched, generators)
        return {**batch, "x0": x0, "noise": normal(generators, tuple(x0.shape[1:]))}

    def forward(
        self, x0: torch.Tensor, context: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        eps = self.eps_fn(self.policy, add_noise(x0, noise, self.abar[t]), t, context)
        loss = epsilon_loss(eps, noise)
        return loss, {"model_mse": loss.detach()}


def build(ctx: Context) -> SFT:
    return SFT(ctx.unet, **ctx.common())


METHOD = Method(
    name="sft",
    order=0,
    title="SFT",
    source="SalesforceAIResearch/DiffusionDPO train.py (--sft)",
    build=build,
    losers=False,
)
