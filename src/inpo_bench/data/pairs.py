"""pairs.parquet -> model inputs for the trainers.

Three sources behind one interface, chosen by the config key `data.encoding`:

- `memory` -> `PairData`: everything encoded once in the training job and held in memory (the toy world, small
  subsets of Pick-a-Pic);
- `disk` -> `EncodedPairs`: everything encoded once by its own job (data/encode.py: float16 VAE latents of both
  flips, one text context per unique caption) and memory-mapped by every training job;
- `per_batch` -> `LazyPairs`: each pair's two images read by byte offset from pairs.parquet (data/offsets.py),
  decoded and resized in DataLoader workers, VAE- and text-encoded per batch in the training process, as the
  official training scripts do.

The interface (methods/objectives.py uses nothing else): `len(source)`; `source.empty`, the (L, D) context of the
empty prompt; `source.fetch(indices)`, the CPU part of a batch (reading, decoding), run in `source.workers`
DataLoader workers (0: in the training process); `source.encode(fetched, flips)` -> (x0_w, x0_l, context), with
x0_l None when the source was built with `losers=False` (SFT never looks at the losers).

Stable Diffusion images are resized (shortest side to the model's resolution, bilinear as the official scripts),
centre-cropped and, where flips[i, side] is set, flipped horizontally: the official scripts' RandomHorizontalFlip,
per image. A source built with `flip=False` (the toy world) ignores the flips. The VAE latent is the mean of its
posterior (the official scripts draw a sample each step); the text encoders are frozen.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import DataError
from ..models.bundle import TOY_KINDS, T2IModel
from .offsets import ImageFile


def prepare_image(data: bytes, resolution: int, what: str, exact: bool) -> np.ndarray:
    """Decode to RGB uint8 (resolution, resolution, 3); `exact` (the toy world) forbids any resizing."""
    try:
        image = Image.open(io.BytesIO(data)).convert("RGB")
    except Exception as error:  # PIL raises several types for undecodable data
        raise DataError(f"{what}: image does not decode ({error})") from None
    if image.size != (resolution, resolution):
        if exact:
            raise DataError(f"{what}: image is {image.size[0]}x{image.size[1]}, the model works at {resolution}px")
        w, h = image.size
        scale = resolution / min(w, h)
        image = image.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BILINEAR)
        left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
    return np.asarray(image)


def flip_images(images: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) with the images where flips is True mirrored left-right."""
    out = images.copy()
    out[flips] = out[flips][:, :, ::-1]
    return out


def encode_images(model: T2IModel, images: np.ndarray, flip: bool) -> torch.Tensor:
    """x0 of both flips (N, 2, C, H, W) when `flip`, else of the images as they are (N, 1, C, H, W)."""
    x0 = [model.images_to_x0(images).cpu()]
    if flip:
        x0.append(model.images_to_x0(np.ascontiguousarray(images[:, :, ::-1])).cpu())
    return torch.stack(x0, dim=1)


def encode_captions(model: T2IModel, captions: list[str], batch_size: int = 256) -> torch.Tensor:
    return torch.cat(
        [model.encode_prompts(captions[i : i + batch_size]).cpu() for i in range(0, len(captions), batch_size)]
    )


def _pick(x0: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Rows of an (N, F, C, H, W) tensor at flip index flips (N,) (always 0 when F == 1)."""
    index = flips.long() if x0.shape[1] == 2 else torch.zeros(len(x0), dtype=torch.long)
    return x0[torch.arange(len(x0)), index]


@dataclass
class PairData:
    """Preference pairs as model inputs, computed once: x0 of winners and losers (both flips when the source
    flips) and the caption embeddings (the text encoder is frozen, so encoding captions every step is waste)."""

    x0_w: torch.Tensor  # (N, F, C, H, W), F = 2 (unflipped, flipped) or 1
    x0_l: torch.Tensor | None
    context: torch.Tensor  # (unique captions, L, D)
    caption_index: torch.Tensor  # (N,) row of `context` for each pair
    empty: torch.Tensor  # (L, D) the empty prompt, for caption dropout
    workers: int = 0

    def __len__(self) -> int:
        return len(self.x0_w)

    def fetch(self, indices: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(indices)

    def encode(self, indices: torch.Tensor, flips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        x0_l = _pick(self.x0_l[indices], flips[:, 1]) if self.x0_l is not None else None
        return _pick(self.x0_w[indices], flips[:, 0]), x0_l, self.context[self.caption_index[indices]]


@torch.no_grad()
def load_pair_data(path: str | Path, model: T2IModel, flip: bool = False, losers: bool = True) -> PairData:
    """Encode every pair of pairs.parquet once, in memory."""
    frame = pd.read_parquet(path, columns=["pair_id", "caption", "image_w", "image_l"])
    if frame.empty:
        raise DataError(f"{path}: no pairs")
    exact = model.kind in TOY_KINDS
    res = model.resolution

    def images(column: str, side: str) -> np.ndarray:
        return np.stack(
            [prepare_image(b, res, f"{path} pair {p} {side}", exact) for p, b in zip(frame.pair_id, frame[column])]
        )

    captions = sorted(set(frame.caption))
    index = {c: i for i, c in enumerate(captions)}
    return PairData(
        x0_w=encode_images(model, images("image_w", "winner"), flip),
        x0_l=encode_images(model, images("image_l", "loser"), flip) if losers else None,
        context=encode_captions(model, captions),
        caption_index=torch.tensor([index[c] for c in frame.caption]),
        empty=model.encode_prompts([""])[0].cpu(),
    )


class PairImages:
    """Row-level reads of pairs.parquet: a pair's decoded, resized images and its caption, nothing more.

    Picklable, so DataLoader workers can run it; bytes come from data/offsets.py's ImageFile."""

    def __init__(self, path: str | Path, resolution: int, exact: bool, losers: bool = True) -> None:
        self.path = Path(path)
        self.images = ImageFile(self.path)
        frame = pd.read_parquet(self.path, columns=["pair_id", "caption"])
        if frame.empty:
            raise DataError(f"{path}: no pairs")
        if len(frame) != len(self.images):
            raise DataError(f"{self.images.path}: offsets for {len(self.images)} rows, the file has {len(frame)}")
        self.pair_ids = frame.pair_id.to_numpy()
        self.captions = frame.caption.to_numpy()
        self.resolution, self.exact, self.losers = resolution, exact, losers

    def __len__(self) -> int:
        return len(self.pair_ids)

    def decode(self, row: int, side: int) -> np.ndarray:
        what = f"{self.path} pair {self.pair_ids[row]} {'winner' if side == 0 else 'loser'}"
        return prepare_image(self.images.read(row, side), self.resolution, what, self.exact)

    def __call__(self, indices: np.ndarray) -> dict[str, Any]:
        rows = [int(i) for i in indices]
        out = {"w": np.stack([self.decode(r, 0) for r in rows]), "captions": [str(self.captions[r]) for r in rows]}
        if self.losers:
            out["l"] = np.stack([self.decode(r, 1) for r in rows])
        return out


class LazyPairs:
    """Pairs read, decoded and encoded per batch from pairs.parquet."""

    def __init__(
        self, path: str | Path, model: T2IModel, flip: bool = False, losers: bool = True, workers: int = 0
    ) -> None:
        self.rows = PairImages(path, model.resolution, model.kind in TOY_KINDS, losers)
        self.model, self.flip, self.workers = model, flip, workers
        self.empty = model.encode_prompts([""])[0].cpu()

    def __len__(self) -> int:
        return len(self.rows)

    def fetch(self, indices: np.ndarray) -> dict[str, Any]:
        return self.rows(indices)

    @torch.no_grad()
    def encode(self, fetched: dict[str, Any], flips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        flips = flips.numpy() if self.flip else np.zeros(flips.shape, dtype=bool)
        x0_w = self.model.images_to_x0(flip_images(np.asarray(fetched["w"]), flips[:, 0])).cpu()
        x0_l = (
            self.model.images_to_x0(flip_images(np.asarray(fetched["l"]), flips[:, 1])).cpu()
            if "l" in fetched
            else None
        )
        return x0_w, x0_l, self.model.encode_prompts(fetched["captions"]).cpu()


class EncodedPairs:
    """Pairs encoded by data/encode.py, memory-mapped: batches are gathered from disk, nothing else is held."""

    def __init__(self, folder: str | Path, flip: bool = False, losers: bool = True, workers: int = 0) -> None:
        from .encode import EncodedStore

        self.store = EncodedStore(folder)
        if flip and self.store.flips != 2:
            raise DataError(f"{folder}: encoded without flips, but training flips; rerun the encode_pairs rule")
        self.flip, self.losers, self.workers = flip, losers, workers
        self.empty = torch.from_numpy(self.store.empty).float()

    def __len__(self) -> int:
        return len(self.store)

    def fetch(self, indices: np.ndarray) -> dict[str, Any]:
        return self.store.gather(np.asarray(indices), self.losers)

    def encode(self, fetched: dict[str, Any], flips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
        flips = flips if self.flip else torch.zeros_like(flips)
        x0_w = _pick(torch.as_tensor(fetched["w"]).float(), flips[:, 0])
        x0_l = _pick(torch.as_tensor(fetched["l"]).float(), flips[:, 1]) if "l" in fetched else None
        return x0_w, x0_l, torch.as_tensor(fetched["context"]).float()
