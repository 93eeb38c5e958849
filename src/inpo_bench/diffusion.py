"""Diffusion arithmetic as pure functions of tensors and an explicit alpha-bar array.

Conventions (epsilon prediction, DDPM noise levels t = 0 .. T-1):
    x_t = sqrt(abar_t) * x0 + sqrt(1 - abar_t) * eps
Sampling, inversion and the losses all use these functions, so the tests can check them once against
diffusers' schedulers and a float64 hand computation.
"""

from __future__ import annotations

import hashlib

import torch


def add_noise(x0: torch.Tensor, noise: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """Forward process q(x_t | x0); abar_t broadcasts per sample (shape (N,) or scalar)."""
    abar_t = _per_sample(abar_t, x0)
    return abar_t.sqrt() * x0 + (1 - abar_t).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    abar_t = _per_sample(abar_t, x_t)
    return (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    abar_t: torch.Tensor,
    abar_next: torch.Tensor,
    clip_x0: float | None = None,
) -> torch.Tensor:
    """Deterministic DDIM move from level abar_t to level abar_next, in either direction (eta = 0).

    Sampling moves to a lower noise level; inversion uses the same formula to move to a higher one (never with
    clip_x0, which would make it irreversible). clip_x0: clamp the predicted x0 to [-clip_x0, clip_x0] and keep
    the model's eps for the direction, as diffusers' DDIMScheduler.step with clip_sample=True (and
    use_clipped_model_output=False) does; pixel-space sampling needs it (toy_model.clip_sample).
    """
    abar_next = _per_sample(abar_next, x_t)
    x0 = predict_x0(x_t, eps, abar_t)
    if clip_x0 is not None:
        x0 = x0.clamp(-clip_x0, clip_x0)
    return abar_next.sqrt() * x0 + (1 - abar_next).sqrt() * eps


def ddim_timesteps(num_train_timesteps: int, steps: int, offset: int = 1) -> list[int]:
    """Descending 'leading' grid, as diffusers' DDIMScheduler builds it: [T/s*(s-1)+offset, ..., offset]."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in [1, {num_train_timesteps}], got {steps}")
    ratio = num_train_timesteps // steps
    return [i * ratio + offset for i in reversed(range(steps))]


def noise_seed(prompt_id: str, seed: int) -> int:
    """A 63-bit generator seed from (prompt_id, seed): the same everywhere, whatever else is in the batch."""
    digest = hashlib.sha256(f"{prompt_id}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def initial_noise(prompt_id: str, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The initial noise of one image, drawn on the CPU so that every device and model sees the same values."""
    generator = torch.Generator(device="cpu").manual_seed(noise_seed(prompt_id, seed))
    return torch.randn(shape, generator=generator)


def _per_sample(a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    a = torch.as_tensor(a, dtype=like.dtype, device=like.device)
    return a.reshape(-1, *([1] * (like.ndim - 1))) if a.ndim == 1 else a
