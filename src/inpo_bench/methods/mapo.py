"""MaPO: margin-aware preference optimisation, reference-free (no reference UNet in memory).

Follows mapo-t2i/mapo utils.py `compute_loss`: winner and loser share the noise and the timestep; with per-sample
MSEs m_w, m_l and f(x) = s x / (exp(s x) - 1) (s = `snr_value`, official 0.5),

    loss = mean(m_w) - beta * mean(logsigmoid(T * (f(m_w) - f(m_l))))        (T = num_train_timesteps, beta 0.1)

f falls as the error grows, so the margin term rewards m_w < m_l. Deviation: f is computed with expm1 (the same
function, accurate for small s x). The official script has no caption dropout; the configs set it to 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..diffusion import add_noise
from .base import Context, Method
from .losses import per_sample_mse
from .objectives import Generators, PairObjective, normal


def mapo_margin(x: torch.Tensor, snr_value: float) -> torch.Tensor:
    """f(x) = s x / (exp(s x) - 1)."""
    return snr_value * x / torch.expm1(snr_value * x)


def mapo_loss(
    model_w: torch.Tensor, model_l: torch.Tensor, beta: float, snr_value: float, num_timesteps: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-pair log-odds T * (f(m_w) - f(m_l)))."""
    log_odds = num_timesteps * (mapo_margin(model_w, snr_value) - mapo_margin(model_l, snr_value))
    return model_w.mean() - beta * F.logsigmoid(log_odds).mean(), log_odds


class MaPO(PairObjective):
    name = "mapo"

    def __init__(self, unet: torch.nn.Module, beta: float, snr_value: float, **common: Any) -> None:
        super().__init__(unet, **common)  # no reference
        self.beta, self.snr_value = beta, snr_value

    def draw(self, fetched: Any, generators: Generators, indices: Any = None) -> dict[str, Any]:
        x0_w, x0_l, batch = self.draw_common(fetched, generators)
        return {**batch, "x0_w": x0_w, "x0_l": x0_l, "noise": normal(generators, tuple(x0_w.shape[1:]))}

    def forward(
        self, x0_w: torch.Tensor, x0_l: torch.Tensor, context: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        b = len(x0_w)
        t2, context2, target = torch.cat([t, t]), torch.cat([context, context]), torch.cat([noise, noise])
        x_t = add_noise(torch.cat([x0_w, x0_l]), target, self.abar[t2])
        model_mse = per_sample_mse(self.eps_fn(self.policy, x_t, t2, context2), target)
        loss, log_odds = mapo_loss(model_mse[:b], model_mse[b:], self.beta, self.snr_value, len(self.abar))
        return loss, {
            "implicit_acc": (log_odds.detach() > 0).float().mean(),  # the winner's error below the loser's
            "model_mse": model_mse.detach().mean(),
            "margin": log_odds.detach().mean(),
        }


def build(ctx: Context) -> MaPO:
    cfg = ctx.config
    return MaPO(ctx.unet, cfg["beta"], cfg["snr_value"], **ctx.common())


METHOD = Method(
    name="mapo",
    title="MaPO",
    order=5,
    source="mapo-t2i/mapo utils.py (compute_loss)",
    build=build,
    schema={
        "beta": {
            "description": "Weight of the margin term (official beta_mapo 0.1).",
            "type": "number",
            "exclusiveMinimum": 0,
        },
        "snr_value": {
            "description": "s of f(x) = s x / (exp(s x) - 1) (official 0.5).",
            "type": "number",
            "exclusiveMinimum": 0,
        },
    },
)
