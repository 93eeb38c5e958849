"""DSPO: direct score preference optimisation, the score-matching form of Diffusion-DPO.

Follows huaishengzhu/DSPO train.py (lines 1137-1169 at 8b4e09b): shared t and noise as Diffusion-DPO, z the
Diffusion-DPO logit -0.5 beta ((m_w - m_l) - (r_w - r_l)), NOT detached (its gradient flows into both halves),
and on the winners only:

    sd15:  mean_i mean_chw [ (eps_theta^w - eps) - beta (1 - sigmoid(z_i)) (eps_theta^w - eps_ref^w) ]^2
    sdxl:  d_i = mean_chw (eps_theta^w - eps_ref^w)^2;  mean_i (1 - sigmoid(z_i))^2 d_i   if mean_i d_i >= 0.1,
           else mean_i (1 - sigmoid(z_i))^2                       (one branch per micro-batch, as the official)

`variant` picks the form (the official script picks by --sdxl). `safeguard_mu` adds Diffusion-SDPO's loser-gradient
rescale (AIDC-AI/Diffusion-SDPO train.py applies it to the loser's MSE inside z only, as here).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Context, Method
from .dpo import BETA, DPO, SAFEGUARD
from .losses import preference_logits

SDXL_THRESHOLD = 0.1


def dspo_loss(
    pred_w: torch.Tensor, ref_w: torch.Tensor, eps: torch.Tensor, inside: torch.Tensor, beta: float, variant: str
) -> torch.Tensor:
    """DSPO's loss from the winners' predictions (policy, reference), their noise and the per-pair logits."""
    keep = (1 - torch.sigmoid(inside)).reshape(-1, *[1] * (pred_w.ndim - 1))
    if variant == "sd15":
        return ((pred_w - eps) - beta * keep * (pred_w - ref_w)).pow(2).flatten(1).mean(1).mean()
    gap = (pred_w - ref_w).pow(2).flatten(1).mean(1)
    if gap.mean() >= SDXL_THRESHOLD:
        return (keep.flatten() ** 2 * gap).mean()
    return (keep.flatten() ** 2).mean()


class DSPO(DPO):
    name = "dspo"

    def __init__(
        self,
        unet: torch.nn.Module,
        beta: float,
        variant: str,
        safeguard_mu: float | None = None,
        reference_dtype: torch.dtype | None = None,
        **common: Any,
    ) -> None:
        super().__init__(unet, beta, safeguard_mu, reference_dtype, **common)
        self.variant = variant

    def loss(self, pred, ref, target, model_mse, ref_mse, beta):
        b = len(pred) // 2
        model_l, extra = self.safeguarded_loser(pred, target, model_mse)
        inside = preference_logits(model_mse[:b], model_l, ref_mse[:b], ref_mse[b:], beta)
        return (
            dspo_loss(pred[:b].float(), ref[:b].float(), target[:b].float(), inside, beta, self.variant),
            inside,
            extra,
        )


def build(ctx: Context) -> DSPO:
    cfg = ctx.config
    return DSPO(ctx.unet, cfg["beta"], cfg["variant"], cfg["safeguard_mu"], ctx.reference_dtype, **ctx.common())


METHOD = Method(
    name="dspo",
    title="DSPO",
    order=6,
    source="huaishengzhu/DSPO train.py; safeguard: AIDC-AI/Diffusion-SDPO train.py",
    build=build,
    schema={
        "beta": {
            **BETA,
            "description": "DSPO beta (official SD1.5 0.001, SDXL 5000; it also scales the sd15 correction term).",
        },
        "variant": {"description": "sd15 or sdxl form of the official loss.", "enum": ["sd15", "sdxl"]},
        "safeguard_mu": SAFEGUARD,
    },
)
