"""Diffusion-KTO: binary per-image feedback, the KTO utility against a batch KL reference point.

Follows jacklishufan/diffusion-kto train_kto_sd_v1.5.py (`--loss kto`, `--halo sigmoid`, `--bce_offset none`): per
image, m = MSE of the policy's eps prediction, r = the frozen reference's (same t, noise and prompt);
g = r - m; the reference point z = max(0, stopgrad(mean of g over the batch of all processes)); the loss is
mean_i lambda_y (1 - sigmoid(s_i beta (g_i - z))) with s = +1 for a desirable image and -1 for an undesirable one.

Deviations (stated in the README too): the official data is Pick-a-Pic with per-image labels aggregated over pairs
(`pick-a-pick-kto-processed`: exclusive wins desirable, exclusive losses undesirable, sampled with replacement by a
WeightedRandomSampler so that a share `positive_ratio` is desirable). Here, as the paper's comparison needs, the
feedback comes from the same pairs as the other methods: each pair, visited once per epoch, contributes one image,
its winner (desirable) with probability `desirable_ratio` and else its loser (undesirable); noise and timestep
are drawn per image, as the official script does.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from ..diffusion import add_noise
from .base import Context, Method
from .losses import per_sample_mse
from .objectives import Generators, PairObjective, normal, uniform


def kto_loss(
    model_mse: torch.Tensor,
    ref_mse: torch.Tensor,
    desirable: torch.Tensor,
    beta: float,
    reference_point: torch.Tensor,
    lambda_desirable: float = 1.0,
    lambda_undesirable: float = 1.0,
) -> torch.Tensor:
    """Per-image KTO loss: lambda_y (1 - sigmoid(sign_y * beta * ((r - m) - z)))."""
    sign = desirable.to(model_mse.dtype) * 2 - 1
    utility = torch.sigmoid(sign * beta * ((ref_mse - model_mse) - reference_point))
    weight = torch.where(desirable, lambda_desirable, lambda_undesirable).to(model_mse.dtype)
    return weight * (1 - utility)


def reference_point(model_mse: torch.Tensor, ref_mse: torch.Tensor) -> torch.Tensor:
    """z = max(0, mean(r - m)), detached, averaged over the processes' batches as the official code does."""
    local = (ref_mse - model_mse).detach().mean()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        local = local.clone()
        dist.all_reduce(local)
        local = local / dist.get_world_size()
    return local.clamp(min=0)


class KTO(PairObjective):
    name = "kto"

    def __init__(
        self,
        unet: torch.nn.Module,
        beta: float,
        desirable_ratio: float,
        lambda_desirable: float = 1.0,
        lambda_undesirable: float = 1.0,
        reference_dtype: torch.dtype | None = None,
        **common: Any,
    ) -> None:
        super().__init__(unet, reference=True, reference_dtype=reference_dtype, **common)
        self.beta, self.desirable_ratio = beta, desirable_ratio
        self.lambda_desirable, self.lambda_undesirable = lambda_desirable, lambda_undesirable

    def draw(self, fetched: Any, generators: Generators, indices: Any = None) -> dict[str, Any]:
        x0_w, x0_l, batch = self.draw_common(fetched, generators)
        desirable = uniform(generators) < self.desirable_ratio
        x0 = torch.where(desirable.reshape(-1, *[1] * (x0_w.ndim - 1)), x0_w, x0_l)
        return {**batch, "x0": x0, "desirable": desirable, "noise": normal(generators, tuple(x0.shape[1:]))}

    def forward(
        self, x0: torch.Tensor, desirable: torch.Tensor, context: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        x_t = add_noise(x0, noise, self.abar[t])
        pred = self.eps_fn(self.policy, x_t, t, context)
        with torch.no_grad():
            ref = self.eps_fn(self.reference, x_t, t, context)
        model_mse, ref_mse = per_sample_mse(pred, noise), per_sample_mse(ref, noise)
        z = reference_point(model_mse, ref_mse)
        losses = kto_loss(model_mse, ref_mse, desirable, self.beta, z, self.lambda_desirable, self.lambda_undesirable)
        improved = (ref_mse - model_mse).detach() > 0
        return losses.mean(), {
            # the share of images the policy moved the right way: lower error on desirable, higher on undesirable
            "implicit_acc": (improved == desirable).float().mean(),
            "model_mse": model_mse.detach().mean(),
            "ref_mse": ref_mse.mean(),
            "kl_point": z,
            "desirable_share": desirable.float().mean(),
        }


def build(ctx: Context) -> KTO:
    cfg = ctx.config
    return KTO(
        ctx.unet,
        cfg["beta"],
        cfg["desirable_ratio"],
        cfg["lambda_desirable"],
        cfg["lambda_undesirable"],
        ctx.reference_dtype,
        **ctx.common(),
    )


METHOD = Method(
    name="kto",
    title="Diffusion-KTO",
    order=3,
    source="jacklishufan/diffusion-kto train_kto_sd_v1.5.py (--loss kto)",
    build=build,
    schema={
        "beta": {
            "description": "KTO beta (official default 1000; no 0.5 factor).",
            "type": "number",
            "exclusiveMinimum": 0,
        },
        "desirable_ratio": {
            "description": "Probability that a pair gives its winner (desirable) rather than its "
            "loser (official positive_ratio 0.8).",
            "type": "number",
            "minimum": 0,
            "maximum": 1,
        },
        "lambda_desirable": {"description": "Weight of desirable images (official 1).", "type": "number", "minimum": 0},
        "lambda_undesirable": {
            "description": "Weight of undesirable images (official 1).",
            "type": "number",
            "minimum": 0,
        },
    },
)
