"""Diffusion-DPO, and the shared skeleton of the methods built on it (DDIM-InPO, SmPO, DSPO).

Follows SalesforceAIResearch/DiffusionDPO train.py ("START LOSS COMPUTATION"): winner and loser share the timestep
and the noise, x_t = add_noise(x0, eps, t), per-sample MSEs of policy and frozen reference against eps, and
loss = -logsigmoid(-0.5 * beta * ((m_w - m_l) - (r_w - r_l))), implicit accuracy = mean(inside > 0).

`safeguard_mu` switches on Diffusion-SDPO's winner-preserving rescale of the loser's gradient (AIDC-AI/Diffusion-SDPO
train.py, `--use_winner_preserving`; losses.sdpo_loser_scale), with its mu; null: plain Diffusion-DPO.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..diffusion import add_noise
from .base import Context, Method
from .losses import implicit_accuracy, preference_logits, scale_gradient, sdpo_loser_scale
from .objectives import Generators, PairObjective, normal, pair_mse

BETA = {
    "description": "Beta in the official convention: -logsigmoid(-0.5 * beta * ((m_w - m_l) - (r_w - r_l))).",
    "type": "number",
    "exclusiveMinimum": 0,
}
SAFEGUARD = {
    "description": "Diffusion-SDPO's safeguard: mu of the loser-gradient rescale (official 0.9 for SD1.5 DPO, 0.6 for "
    "SDXL); null: off.",
    "oneOf": [{"type": "null"}, {"type": "number", "minimum": 0, "maximum": 1}],
}


def dpo_loss(
    model_w: torch.Tensor, model_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Diffusion-DPO's loss per pair, -logsigmoid(inside), and the logits `inside` (for implicit accuracy)."""
    inside = preference_logits(model_w, model_l, ref_w, ref_l, beta)
    return -F.logsigmoid(inside), inside


class DPO(PairObjective):
    """Pairs noised forward with a shared (t, eps); subclasses change how x_t and its target come about
    (`latents`), the per-pair beta (`pair_beta`) or the loss on the predictions (`loss`)."""

    name = "dpo"

    def __init__(
        self,
        unet: torch.nn.Module,
        beta: float,
        safeguard_mu: float | None = None,
        reference_dtype: torch.dtype | None = None,
        **common: Any,
    ) -> None:
        super().__init__(unet, reference=True, reference_dtype=reference_dtype, **common)
        self.beta = beta
        self.safeguard_mu = safeguard_mu

    def draw(self, fetched: Any, generators: Generators, indices: Any = None) -> dict[str, Any]:
        x0_w, x0_l, batch = self.draw_common(fetched, generators)
        return {**batch, "x0_w": x0_w, "x0_l": x0_l, **self.draw_latent_noise(x0_w, generators)}

    def draw_latent_noise(self, x0_w: torch.Tensor, generators: Generators) -> dict[str, torch.Tensor]:
        return {"noise": normal(generators, tuple(x0_w.shape[1:]))}  # shared by winner and loser

    def latents(
        self, x0: torch.Tensor, context2: torch.Tensor, t2: torch.Tensor, noise: torch.Tensor, **_: Any
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(x_t, regression target, extra metrics) of the (winners then losers) batch."""
        target = torch.cat([noise, noise])
        return add_noise(x0, target, self.abar[t2]), target, {}

    def pair_beta(self, batch: dict[str, Any]) -> float | torch.Tensor:
        return self.beta

    def loss(
        self,
        pred: torch.Tensor,
        ref: torch.Tensor,
        target: torch.Tensor,
        model_mse: torch.Tensor,
        ref_mse: torch.Tensor,
        beta: float | torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        """(loss, per-pair logits, extra metrics)."""
        b = len(pred) // 2
        model_l, extra = self.safeguarded_loser(pred, target, model_mse)
        losses, inside = dpo_loss(model_mse[:b], model_l, ref_mse[:b], ref_mse[b:], beta)
        return losses.mean(), inside, extra

    def safeguarded_loser(
        self, pred: torch.Tensor, target: torch.Tensor, model_mse: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """The losers' MSEs, with SDPO's rescaled gradient when the safeguard is on."""
        b = len(pred) // 2
        if self.safeguard_mu is None:
            return model_mse[b:], {}
        scale = sdpo_loser_scale(pred[:b], pred[b:], target[:b], target[b:], self.safeguard_mu)
        return scale_gradient(model_mse[b:], scale), {"loser_scale": scale}

    def forward(
        self, x0_w: torch.Tensor, x0_l: torch.Tensor, context: torch.Tensor, t: torch.Tensor, **batch: Any
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        x0, context2, t2 = torch.cat([x0_w, x0_l]), torch.cat([context, context]), torch.cat([t, t])
        x_t, target, extra = self.latents(x0, context2, t2, **batch)
        pred, ref, model_mse, ref_mse = pair_mse(self, x_t, t2, context2, target)
        loss, inside, more = self.loss(pred, ref, target, model_mse, ref_mse, self.pair_beta(batch))
        return loss, {**pair_metrics(model_mse, ref_mse, inside), **extra, **more}


def pair_metrics(model_mse: torch.Tensor, ref_mse: torch.Tensor, inside: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a pair method logs per micro-batch, as 0-dim tensors: the implicit accuracy, both UNets' mean MSE, each
    side's policy-minus-reference MSE gap (negative: the policy fits that side better than the reference does)
    and the mean logit `inside` (TRL's rewards/margins: -0.5 beta (winner gap - loser gap) per pair)."""
    b = len(model_mse) // 2
    gap = (model_mse - ref_mse).detach()
    return {
        "implicit_acc": implicit_accuracy(inside),
        "model_mse": model_mse.detach().mean(),
        "ref_mse": ref_mse.mean(),
        "winner_mse_gap": gap[:b].mean(),
        "loser_mse_gap": gap[b:].mean(),
        "reward_margin": inside.detach().mean(),
    }


def build(ctx: Context) -> DPO:
    cfg = ctx.config
    return DPO(ctx.unet, cfg["beta"], cfg["safeguard_mu"], ctx.reference_dtype, **ctx.common())


METHOD = Method(
    name="dpo",
    order=1,
    title="Diffusion-DPO",
    source="SalesforceAIResearch/DiffusionDPO train.py; safeguard: AIDC-AI/Diffusion-SDPO train.py",
    build=build,
    schema={"beta": BETA, "safeguard_mu": SAFEGUARD},
)
