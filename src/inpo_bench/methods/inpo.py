"""DDIM-InPO: Diffusion-DPO's loss on latents found by DDIM inversion of each image, regressed onto the
reparametrised noise tau.

Follows JaydenLyh/InPO train.py (and examples/sd15.sh, sdxl.sh): each image is inverted with DDIM under no_grad
by the current policy UNet on the diffusers-0.20 rolled 10-step grid, with eta jitter 0.1 and no CFG, to the pair's
shared t (the latent ends at the first grid level at or above t: the "grid quirk", methods/inversion.py);
tau = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) (`inpo_target`), a different target per image; then the
official -logsigmoid(-0.5 beta ((m_w - m_l) - (r_w - r_l))). Deviation: the official code uses the first pair's
t for its whole batch (it trains one pair per GPU); here every pair has its own.

Switches (config `inversion`): steps, eta, guidance, grid (official | exact), model (policy | reference).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Context, Method
from .dpo import BETA, DPO
from .inversion import InversionSettings, invert, max_steps
from .objectives import Generators, normal

INVERSION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["steps", "eta", "guidance", "grid", "model"],
    "properties": {
        "steps": {"description": "Inverse DDIM grid size.", "type": "integer", "minimum": 1},
        "eta": {
            "description": "Jitter after each inverse step, times the DDPM posterior std.",
            "type": "number",
            "minimum": 0,
        },
        "guidance": {
            "description": "CFG scale during inversion; 1.0 is conditional only (official).",
            "type": "number",
            "minimum": 0,
        },
        "grid": {
            "description": "official: the diffusers-0.20 rolled grid (ends at the grid level >= t); exact: ends at t.",
            "enum": ["official", "exact"],
        },
        "model": {"description": "Which UNet inverts.", "enum": ["policy", "reference"]},
    },
}


def inpo_target(x_t: torch.Tensor, x0: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """DDIM-InPO's reparametrised noise: tau = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), per sample.

    It is the epsilon for which a one-step x0 prediction from x_t at level t recovers the data x0 exactly, so the
    identity x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) tau holds by construction.
    """
    abar_t = abar_t.to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
    return (x_t - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()


class InPO(DPO):
    name = "inpo"

    def __init__(
        self,
        unet: torch.nn.Module,
        beta: float,
        inversion: InversionSettings,
        timestep_offset: int = 1,
        reference_dtype: torch.dtype | None = None,
        **common: Any,
    ) -> None:
        super().__init__(unet, beta, None, reference_dtype, **common)
        self.inversion = inversion
        self.timestep_offset = timestep_offset

    def draw_latent_noise(self, x0_w: torch.Tensor, generators: Generators) -> dict[str, torch.Tensor]:
        if self.inversion.eta == 0:
            return {}
        # (pairs, steps, 2, ...) -> (steps, winners then losers, ...), the order forward() inverts in
        shape = (max_steps(len(self.abar), self.inversion), 2, *x0_w.shape[1:])
        eta = normal(generators, shape).transpose(0, 1)
        return {"eta_noise": torch.cat([eta[:, :, 0], eta[:, :, 1]], dim=1)}

    def inversion_eps(self, context: torch.Tensor) -> Any:
        unet = self.policy if self.inversion.model == "policy" else self.reference
        guidance = self.inversion.guidance
        empty = self.data.empty.to(context)

        def eps_fn(x: torch.Tensor, timesteps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            ctx = context[index]
            if guidance == 1.0:
                return self.eps_fn(unet, x, timesteps, ctx)
            both = self.eps_fn(
                unet, torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([empty.expand_as(ctx), ctx])
            )
            eps_u, eps_c = both.chunk(2)
            return eps_u + guidance * (eps_c - eps_u)

        return eps_fn

    def latents(
        self,
        x0: torch.Tensor,
        context2: torch.Tensor,
        t2: torch.Tensor,
        eta_noise: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        with torch.no_grad():
            x_t, evaluations = invert(
                self.inversion_eps(context2), x0, t2, self.abar, self.inversion, eta_noise, self.timestep_offset
            )
        return x_t, inpo_target(x_t, x0, self.abar[t2]), {"inversion_evals": float(evaluations)}


def build(ctx: Context) -> InPO:
    cfg = ctx.config
    offset = int(ctx.model.scheduler.config.steps_offset)
    return InPO(
        ctx.unet, cfg["beta"], InversionSettings(**cfg["inversion"]), offset, ctx.reference_dtype, **ctx.common()
    )


METHOD = Method(
    name="inpo",
    order=2,
    title="DDIM-InPO",
    source="JaydenLyh/InPO train.py",
    build=build,
    schema={"beta": BETA, "inversion": INVERSION},
)
