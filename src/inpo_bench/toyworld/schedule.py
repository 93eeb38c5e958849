"""Noise schedules of the toy world, as log-SNR curves (float64 numpy), and the betas diffusers stores.

`sd_matched`: Stable Diffusion's scaled-linear schedule (beta 0.00085 .. 0.012, 1000 steps; SD1.5's and SDXL's
`scheduler/scheduler_config.json`) moved to the toy resolution by the resolution argument of "simple diffusion"
(Hoogeboom et al. 2023, section 3.1): an image of side d at the same per-pixel SNR as one of side D carries about
(D / d)^2 times less signal after averaging to the coarser grid, so matching SD's 64 x 64 latents at 16 x 16
pixels raises the log-SNR by 2 ln(64 / 16) = 2.77 at every t. Near t = T that would leave much signal in x_T
(SNR 0.075 instead of SD's 0.0047), and sampling starts from pure noise, so the shift tapers linearly to zero over
the last steps (from `taper_from` x (T - 1)): the terminal SNR is SD's own, whose small train-test gap SD samples
with. log-SNR stays strictly decreasing, so every beta lies in (0, 1).
"""

from __future__ import annotations

import numpy as np

SD_BETAS = (0.00085, 0.012)  # Stable Diffusion 1.5 / SDXL scaled_linear
SD_LATENT_SIDE = 64  # 512 px / VAE factor 8


def log_snr(alphas_cumprod: np.ndarray) -> np.ndarray:
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    return np.log(abar) - np.log1p(-abar)


def scaled_linear(steps: int = 1000, beta_start: float = SD_BETAS[0], beta_end: float = SD_BETAS[1]) -> np.ndarray:
    """alpha-bar of diffusers' scaled_linear: betas linear in sqrt(beta)."""
    betas = np.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=np.float64) ** 2
    return np.cumprod(1 - betas)


def linear(steps: int, beta_start: float, beta_end: float) -> np.ndarray:
    return np.cumprod(1 - np.linspace(beta_start, beta_end, steps, dtype=np.float64))


def sd_matched(resolution: int, steps: int = 1000, taper_from: float = 0.8) -> np.ndarray:
    """alpha-bar whose log-SNR is SD's + 2 ln(64 / resolution) up to taper_from x (T - 1), then tapering to SD's."""
    if not 0 < taper_from < 1:
        raise ValueError(f"taper_from must be in (0, 1), got {taper_from}")
    base = log_snr(scaled_linear(steps))
    t = np.arange(steps, dtype=np.float64)
    start = taper_from * (steps - 1)
    weight = np.clip((steps - 1 - t) / (steps - 1 - start), 0.0, 1.0)
    shifted = base + 2 * np.log(SD_LATENT_SIDE / resolution) * weight
    return 1 / (1 + np.exp(-shifted))


def betas(alphas_cumprod: np.ndarray) -> np.ndarray:
    """The betas whose cumulative product of (1 - beta) is alphas_cumprod (diffusers' `trained_betas`)."""
    abar = np.asarray(alphas_cumprod, dtype=np.float64)
    out = 1 - abar / np.concatenate([[1.0], abar[:-1]])
    if not ((out > 0) & (out < 1)).all():
        raise ValueError("alpha-bar must decrease strictly from below 1 to above 0")
    return out


def sd_equivalent_timesteps(alphas_cumprod: np.ndarray, resolution: int) -> np.ndarray:
    """For each of Stable Diffusion's timesteps s, the toy timestep with the nearest log-SNR to SD's at s plus the
    resolution shift 2 ln(64 / resolution) (module docstring): the noise level, in the toy model's own schedule,
    that holds as much of the image as SD's latents hold at s. Non-decreasing in s (both log-SNRs decrease).

    Drawing s uniformly and training at this map's t gives a toy method the noise levels SD's recipes train on.
    On the default linear toy schedule at 16 px, SD's t = 500 maps to 118 and t = 999 to 511: the toy timesteps
    above ~510 hold less signal than SD's noisiest latents and are never drawn.
    """
    own = log_snr(alphas_cumprod)
    if len(own) != 1000:  # SD's schedule has 1000 steps; the table maps each of them to one of the toy's
        raise ValueError(f"the toy schedule has {len(own)} timesteps; mapping SD's 1000 needs 1000 (train_timesteps)")
    if not (np.diff(own) < 0).all():
        raise ValueError("the toy schedule's log-SNR must decrease strictly with t")
    target = log_snr(scaled_linear(len(own))) + 2 * np.log(SD_LATENT_SIDE / resolution)
    # own decreases: search the increasing -own; compare the neighbours on either side of each insertion point
    right = np.clip(np.searchsorted(-own, -target), 1, len(own) - 1)
    left = right - 1
    nearer_left = np.abs(own[left] - target) <= np.abs(own[right] - target)
    return np.where(nearer_left, left, right).astype(np.int64)
