"""Procedural renderer: one flat shape on a flat background, with optional nuisances (noise, blur, off-centre).

Geometry is in pixel units with pixel centres at i + 0.5. A shape is given by its box (centre cx, cy and
half-sizes hx, hy); integer centres and half-sizes make the rendered mask's bounding box equal that box, which
lets the oracle refit a template to a clean render exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grammar import PALETTE, Composition


def shape_mask(shape: str, resolution: int, cx: float, cy: float, hx: float, hy: float) -> np.ndarray:
    """Boolean (resolution, resolution) mask of a shape filling the box centred at (cx, cy)."""
    ys, xs = np.mgrid[0:resolution, 0:resolution] + 0.5
    if shape == "circle":
        return ((xs - cx) / hx) ** 2 + ((ys - cy) / hy) ** 2 <= 1.0
    if shape == "square":
        return (np.abs(xs - cx) <= hx) & (np.abs(ys - cy) <= hy)
    if shape == "triangle":
        top, height = cy - hy, 2 * hy
        # apex at the top centre, base along the bottom edge; +0.5 keeps the apex row (2 px wide) in the box
        half_width = hx * (ys - top + 0.5) / height
        return (ys >= top) & (ys <= cy + hy) & (np.abs(xs - cx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}")


@dataclass(frozen=True)
class Nuisance:
    """How one render departs from the clean canonical image."""

    dx: int = 0
    dy: int = 0
    half_size: int | None = None  # None: the default size for the resolution
    noise_std: float = 0.0  # Gaussian pixel noise, in [0, 1] intensity units
    blur_sigma: float = 0.0  # Gaussian blur, in pixels


def default_half_size(resolution: int) -> int:
    return max(2, round(0.25 * resolution))


def render(comp: Composition, resolution: int, nuisance: Nuisance = Nuisance(), seed: int = 0) -> np.ndarray:
    """Render a composition as uint8 (resolution, resolution, 3). `seed` drives the pixel noise only."""
    h = nuisance.half_size or default_half_size(resolution)
    cx, cy = resolution // 2 + nuisance.dx, resolution // 2 + nuisance.dy
    if not (h <= cx <= resolution - h and h <= cy <= resolution - h):
        raise ValueError(f"shape box centre ({cx}, {cy}) with half-size {h} leaves the {resolution}px image")
    image = np.empty((resolution, resolution, 3), dtype=np.float64)
    image[:] = np.asarray(PALETTE[comp.bg]) / 255.0
    image[shape_mask(comp.shape, resolution, cx, cy, h, h)] = np.asarray(PALETTE[comp.fg]) / 255.0
    if nuisance.blur_sigma > 0:
        image = gaussian_blur(image, nuisance.blur_sigma)
    if nuisance.noise_std > 0:
        image = image + np.random.default_rng(seed).normal(0.0, nuisance.noise_std, image.shape)
    return to_uint8(image)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (H, W, C) float image with edge-replicating borders."""
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(3)], mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(n) + radius + o, axis=axis) for w, o in zip(kernel, offsets))
    return out


def sample_nuisance(rng: np.random.Generator, resolution: int, rates: dict[str, float]) -> Nuisance:
    """Draw the nuisances of one pretraining image.

    Clean renders jitter by at most one pixel and use one of two sizes; each of `noisy`, `blurred` and
    `off_centre` then applies independently with its rate, so the pretraining set contains the defects the
    oracle's aesthetic term penalises, and the base model learns to produce them sometimes.
    """
    h = default_half_size(resolution) + int(rng.integers(0, 2))
    max_shift = resolution // 2 - h
    dx, dy = (int(v) for v in rng.integers(-1, 2, size=2))
    if rng.random() < rates.get("off_centre", 0.0) and max_shift >= 2:
        # push at least one axis close to the border
        far = int(rng.integers(max(2, max_shift - 1), max_shift + 1)) * int(rng.choice([-1, 1]))
        near = int(rng.integers(-max_shift, max_shift + 1))
        dx, dy = (far, near) if rng.random() < 0.5 else (near, far)
    noise = float(rng.uniform(0.08, 0.2)) if rng.random() < rates.get("noisy", 0.0) else 0.0
    blur = float(rng.uniform(0.6, 1.2)) if rng.random() < rates.get("blurred", 0.0) else 0.0
    return Nuisance(dx=dx, dy=dy, half_size=h, noise_std=noise, blur_sigma=blur)
