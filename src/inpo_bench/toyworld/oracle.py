"""The hidden ground-truth reward of the toy world, computed from pixels alone.

reward = w * fidelity + (1 - w) * aesthetic, every term in [0, 1]:
- fidelity (does the image show the prompt?): mean of foreground-colour, background-colour and shape scores;
- aesthetic (prompt-independent): mean of clean (no pixel noise), sharp (no soft edges) and centred.

How the image is read: the background colour is the median of the border pixels; the object is the largest
4-connected region of pixels nearer to the foreground colour than to the background colour (two rounds of a
two-cluster assignment seeded with the pixels far from the background); its colour is their median; its shape
is the template (circle, square, triangle) fitted to its bounding box with the best IoU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .grammar import PALETTE, SHAPES, Composition
from .render import shape_mask

_PALETTE_NAMES = list(PALETTE)
_PALETTE_RGB = np.asarray([PALETTE[n] for n in _PALETTE_NAMES], dtype=np.float64) / 255.0

# Scales of the soft scores; fixed, because the oracle is the world's ground truth, not a tunable.
COLOUR_SCALE = 0.2  # colour distance (RGB in [0, 1]) at which the colour score falls to 1/e
NOISE_SCALE = 0.04  # median neighbour difference at which the clean score falls to 1/e
SEED_THRESHOLD = 0.25  # distance from the background colour that seeds the object region
CENTRE_TOLERANCE = 0.1  # offsets up to this fraction of the image size count as centred ...
CENTRE_ZERO = 0.3  # ... and offsets from this fraction on score 0
NOISY_BELOW = 0.05  # an image whose clean term is below this is pixel noise (a model's `noisy` share)


@dataclass(frozen=True)
class OracleScore:
    fg_colour: float
    bg_colour: float
    shape: float
    clean: float
    sharp: float
    centred: float
    fidelity: float
    aesthetic: float
    reward: float
    fg_correct: bool
    bg_correct: bool
    shape_correct: bool
    colours_swapped: bool = False  # the object shows the prompt's background colour and the background its object's

    @property
    def all_correct(self) -> bool:
        return self.fg_correct and self.bg_correct and self.shape_correct

    @property
    def noisy(self) -> bool:
        return self.clean < NOISY_BELOW

    def as_dict(self) -> dict[str, float | bool]:
        flags = {"all_correct": self.all_correct, "noisy": self.noisy, "not_noise": not self.noisy}
        return {**asdict(self), **flags, "not_swapped": not self.colours_swapped}


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a boolean mask (ties: the first in row-major order)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best, best_size, current = 0, 0, 0
    h, w = mask.shape
    for y0, x0 in zip(*np.nonzero(mask)):
        if labels[y0, x0]:
            continue
        current += 1
        labels[y0, x0] = current
        stack, size = [(y0, x0)], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = current
                    stack.append((ny, nx))
        if size > best_size:
            best, best_size = current, size
    return labels == best if best else np.zeros_like(mask)


def _nearest_palette(colour: np.ndarray) -> str:
    return _PALETTE_NAMES[int(np.argmin(np.linalg.norm(_PALETTE_RGB - colour, axis=1)))]


def _colour_score(estimate: np.ndarray, name: str) -> float:
    distance = float(np.linalg.norm(estimate - np.asarray(PALETTE[name]) / 255.0))
    return float(np.exp(-((distance / COLOUR_SCALE) ** 2)))


def _noise_level(x: np.ndarray) -> float:
    """Median absolute difference of neighbouring pixels: ~0 for flat regions with sharp edges, grows with noise."""
    diffs = np.concatenate([np.abs(np.diff(x, axis=0)).ravel(), np.abs(np.diff(x, axis=1)).ravel()])
    return float(np.median(diffs))


def _boundary_count(mask: np.ndarray) -> int:
    padded = np.pad(mask, 1, mode="edge")
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return int((mask & ~interior).sum())


def read_object(x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(background colour, object colour or None, object mask) of a float (H, W, 3) image in [0, 1], read as the
    module docstring says; the reading does not depend on the prompt."""
    border = np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])
    bg = np.median(border, axis=0)
    d_bg = np.linalg.norm(x - bg, axis=-1)

    mask = largest_component(d_bg > SEED_THRESHOLD)
    fg = None
    for _ in range(2):
        if mask.sum() < 2:
            break
        fg = np.median(x[mask], axis=0)
        mask = largest_component(np.linalg.norm(x - fg, axis=-1) < d_bg)
    if fg is not None and mask.sum() < 2:
        fg = None
    return bg, fg, mask


def _fit_templates(mask: np.ndarray) -> tuple[float, float, dict[str, float]]:
    """The centre (cx, cy) of the mask's bounding box and the IoU of each shape template fitted to that box."""
    size = mask.shape[0]
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    hy, hx = (rows[-1] - rows[0] + 1) / 2, (cols[-1] - cols[0] + 1) / 2
    ious = {}
    for name in SHAPES:
        template = shape_mask(name, size, cx, cy, hx, hy)
        ious[name] = float((mask & template).sum() / max(1, (mask | template).sum()))
    return cx, cy, ious


def shape_ious(image: np.ndarray) -> dict[str, float] | None:
    """The IoU of each shape template with the object of a uint8 (H, W, 3) image, as score_image fits them; None
    where nothing stands out from the background."""
    _, fg, mask = read_object(image.astype(np.float64) / 255.0)
    return None if fg is None else _fit_templates(mask)[2]


def score_image(image: np.ndarray, comp: Composition, fidelity_weight: float = 0.6) -> OracleScore:
    """Score one uint8 (H, W, 3) image against the composition its prompt asks for."""
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square RGB image, got shape {image.shape}")
    x = image.astype(np.float64) / 255.0
    size = x.shape[0]
    bg, fg, mask = read_object(x)

    bg_colour = _colour_score(bg, comp.bg)
    clean = float(np.exp(-((_noise_level(x) / NOISE_SCALE) ** 2)))
    swapped = False
    if fg is None:  # nothing stands out from the background: no object, no shape, nothing centred or sharp
        fg_colour = shape = sharp = centred = 0.0
        fg_correct = shape_correct = False
    else:
        fg_colour = _colour_score(fg, comp.fg)
        fg_correct = _nearest_palette(fg) == comp.fg
        swapped = _nearest_palette(fg) == comp.bg and _nearest_palette(bg) == comp.fg
        cx, cy, ious = _fit_templates(mask)
        shape = float(np.clip((ious[comp.shape] - 0.4) / 0.6, 0.0, 1.0))
        shape_correct = all(ious[comp.shape] > iou for name, iou in ious.items() if name != comp.shape)

        offset = np.hypot(cx - size / 2, cy - size / 2) / size
        centred = float(np.clip(1 - (offset - CENTRE_TOLERANCE) / (CENTRE_ZERO - CENTRE_TOLERANCE), 0.0, 1.0))

        axis = fg - bg
        t = ((x - bg) @ axis) / max(float(axis @ axis), 1e-6)
        soft = int(((t > 0.2) & (t < 0.8)).sum())
        sharp = float(np.clip(1 - soft / max(_boundary_count(mask), 1), 0.0, 1.0))

    fidelity = (fg_colour + bg_colour + shape) / 3
    aesthetic = (clean + sharp + centred) / 3
    return OracleScore(
        fg_colour=fg_colour,
        bg_colour=bg_colour,
        shape=shape,
        clean=clean,
        sharp=sharp,
        centred=centred,
        fidelity=fidelity,
        aesthetic=aesthetic,
        reward=fidelity_weight * fidelity + (1 - fidelity_weight) * aesthetic,
        fg_correct=bool(fg_correct),
        bg_correct=_nearest_palette(bg) == comp.bg,
        shape_correct=bool(shape_correct),
        colours_swapped=bool(swapped),
    )
