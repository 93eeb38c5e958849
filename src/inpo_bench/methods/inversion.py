"""DDIM inversion for DDIM-InPO, written on an explicit alpha-bar array (not diffusers' DDIMInverseScheduler,
whose grid changed meaning in diffusers 0.22).

Two grids:
- `official` reproduces the InPO training code, which ran on diffusers 0.20: with 10 steps the inverse grid is
  [-99, 1, 101, ..., 801]; every grid point s below the sampled t runs one deterministic DDIM step from level s to
  s + 100 (level -99 uses alpha-bar[0]), so the latent ends at the first level of {1, 101, ..., 901} at or above t
  while the loss still uses t (the "grid quirk"); the UNet sees timestep s, including -99.
- `exact` inverts from level 0 to exactly t in ceil(t * steps / T) equal steps.

After each step a jitter eta * sqrt(DDPM posterior variance between the two levels) * z is added (the official
code's `inversion_eta` = 0.1). With `renoise` (SmPO, JaydenLyh/SmPO train.py), each step evaluates the UNet twice
at the same timestep label, at the current latent and at the latent the first estimate steps to, and steps with
the mean of the two predictions from the current latent.

Samples in a batch may have different t: each runs its own schedule, and the UNet is called only on the samples
that still have a step to take.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import torch

from ..diffusion import ddim_step

GRIDS = ("official", "exact")
# eps_fn(x, timesteps, index): the noise prediction for the samples `index` of the batch at per-sample timesteps
EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class InversionSettings:
    steps: int = 10
    eta: float = 0.1
    guidance: float = 1.0
    grid: str = "official"
    model: str = "policy"  # which UNet inverts: the trained policy (official) or the frozen reference
    renoise: bool = False  # SmPO's ReNoise: average a second evaluation at the provisionally stepped latent

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise ValueError(f"inversion grid must be one of {GRIDS}, got {self.grid!r}")
        if self.model not in ("policy", "reference"):
            raise ValueError(f"inversion model must be 'policy' or 'reference', got {self.model!r}")


def official_grid(num_train_timesteps: int, steps: int, offset: int = 1) -> list[int]:
    """diffusers-0.20 DDIMInverseScheduler.timesteps for 'leading' spacing, ascending: the leading grid
    [offset, offset + r, ...] rolled by one with its first element replaced by offset - r (r = T // steps)."""
    ratio = num_train_timesteps // steps
    return [offset - ratio] + [offset + i * ratio for i in range(steps - 1)]


def schedule(t: int, num_train_timesteps: int, settings: InversionSettings, offset: int = 1) -> list[tuple[int, int]]:
    """The (from level, to level) steps that invert a clean sample to noise level t."""
    if settings.grid == "official":
        ratio = num_train_timesteps // settings.steps
        return [(s, s + ratio) for s in official_grid(num_train_timesteps, settings.steps, offset) if s < t]
    n = math.ceil(t * settings.steps / num_train_timesteps)
    levels = [round(t * i / n) for i in range(n + 1)] if n else []
    return list(pairwise(levels))


def max_steps(num_train_timesteps: int, settings: InversionSettings) -> int:
    """The most steps any t in [0, T) can need: the size of the eta-noise tensor to draw up front."""
    return len(schedule(num_train_timesteps - 1, num_train_timesteps, settings))


def posterior_variance(abar_lo: torch.Tensor, abar_hi: torch.Tensor) -> torch.Tensor:
    """DDPM variance between two levels, as DDIMScheduler._get_variance(hi, lo)."""
    return (1 - abar_lo) / (1 - abar_hi) * (1 - abar_hi / abar_lo)


@torch.no_grad()
def invert(
    eps_fn: EpsFn,
    x0: torch.Tensor,
    t: torch.Tensor,
    abar: torch.Tensor,
    settings: InversionSettings,
    eta_noise: torch.Tensor | None = None,
    offset: int = 1,
) -> tuple[torch.Tensor, int]:
    """Invert x0 (N, ...) to per-sample levels t (N,); returns (x_t, UNet sample-evaluations used).

    eta_noise (max_steps, N, ...) supplies the jitter of step k for sample i as eta_noise[k, i], so the caller
    controls all randomness; it may be None when eta is 0.
    """
    num_train = abar.shape[0]
    plans = [schedule(int(ti), num_train, settings, offset) for ti in t.tolist()]
    x = x0.clone()
    evaluations = 0
    for k in range(max((len(p) for p in plans), default=0)):
        index = torch.tensor([i for i, p in enumerate(plans) if k < len(p)], device=x.device)
        src = torch.tensor([plans[i][k][0] for i in index.tolist()], device=x.device)
        dst = torch.tensor([plans[i][k][1] for i in index.tolist()], device=x.device)
        abar_src = torch.where(src >= 0, abar[src.clamp(min=0)], abar[0])
        abar_dst = abar[dst]
        sub = x[index]
        eps = eps_fn(sub, src, index)
        if settings.renoise:
            eps = (eps + eps_fn(ddim_step(sub, eps, abar_src, abar_dst), src, index)) / 2
            evaluations += len(index)
        sub = ddim_step(sub, eps, abar_src, abar_dst)
        if settings.eta > 0:
            if eta_noise is None:
                raise ValueError("eta > 0 needs eta_noise")
            scale = settings.eta * posterior_variance(abar_src, abar_dst).sqrt()
            sub = sub + scale.reshape(-1, *([1] * (sub.ndim - 1))).to(sub.dtype) * eta_noise[k, index.cpu()].to(sub)
        x[index] = sub
        evaluations += len(index)
    return x, evaluations
