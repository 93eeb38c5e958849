"""pairs.parquet -> model inputs for the trainers.

Two sources behind one interface (`len`, `batch(indices) -> (x0_w, x0_l, context)`, `empty`):

- `PairData`: everything encoded once and held in memory (the toy world; small subsets of Pick-a-Pic);
- `LazyPairs`: rows read from the parquet file on demand (one row group at a time, a few kept in a cache),
  images decoded, resized and VAE-encoded and captions text-encoded per batch, as the official training scripts
  do; nothing is copied, so it works for the whole of Pick-a-Pic v2.

Stable Diffusion images are resized (shortest side to the model's resolution, bilinear as the official scripts)
and centre-cropped; no random flip, so a pair always encodes to the same latents. The VAE latent is the mean of
its posterior (the official scripts draw a sample each step); the text encoders are frozen.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from PIL import Image

from ..errors import DataError
from ..methods.objectives import PairData
from ..models.bundle import T2IModel


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


def _encode_captions(model: T2IModel, captions: list[str], batch_size: int = 256) -> torch.Tensor:
    return torch.cat(
        [model.encode_prompts(captions[i : i + batch_size]).cpu() for i in range(0, len(captions), batch_size)]
    )


@torch.no_grad()
def load_pair_data(path: str | Path, model: T2IModel) -> PairData:
    """Encode every pair of pairs.parquet once, in memory."""
    frame = pd.read_parquet(path, columns=["pair_id", "caption", "image_w", "image_l"])
    if frame.empty:
        raise DataError(f"{path}: no pairs")
    exact = model.kind == "pixel"
    res = model.resolution
    winners = np.stack(
        [prepare_image(b, res, f"{path} pair {p} winner", exact) for p, b in zip(frame.pair_id, frame.image_w)]
    )
    losers = np.stack(
        [prepare_image(b, res, f"{path} pair {p} loser", exact) for p, b in zip(frame.pair_id, frame.image_l)]
    )
    captions = sorted(set(frame.caption))
    index = {c: i for i, c in enumerate(captions)}
    return PairData(
        x0_w=model.images_to_x0(winners).cpu(),
        x0_l=model.images_to_x0(losers).cpu(),
        context=_encode_captions(model, captions),
        caption_index=torch.tensor([index[c] for c in frame.caption]),
        empty=model.encode_prompts([""])[0].cpu(),
    )


class LazyPairs:
    """Pairs read, decoded and encoded per batch from pairs.parquet."""

    def __init__(self, path: str | Path, model: T2IModel, cached_groups: int = 4) -> None:
        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        sizes = [self.file.metadata.row_group(i).num_rows for i in range(self.file.num_row_groups)]
        if not sum(sizes):
            raise DataError(f"{path}: no pairs")
        self.starts = np.cumsum([0, *sizes])
        self.model = model
        self.empty = model.encode_prompts([""])[0].cpu()
        self.cache: OrderedDict[int, pd.DataFrame] = OrderedDict()
        self.cached_groups = cached_groups

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _row(self, index: int) -> pd.Series:
        group = int(np.searchsorted(self.starts, index, side="right") - 1)
        if group not in self.cache:
            self.cache[group] = self.file.read_row_group(
                group, columns=["pair_id", "caption", "image_w", "image_l"]
            ).to_pandas()
            if len(self.cache) > self.cached_groups:
                self.cache.popitem(last=False)
        self.cache.move_to_end(group)
        return self.cache[group].iloc[index - int(self.starts[group])]

    @torch.no_grad()
    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = [self._row(int(i)) for i in indices]
        res, exact = self.model.resolution, self.model.kind == "pixel"
        winners = np.stack([prepare_image(r.image_w, res, f"{self.path} pair {r.pair_id}", exact) for r in rows])
        losers = np.stack([prepare_image(r.image_l, res, f"{self.path} pair {r.pair_id}", exact) for r in rows])
        return (
            self.model.images_to_x0(winners).cpu(),
            self.model.images_to_x0(losers).cpu(),
            self.model.encode_prompts([r.caption for r in rows]).cpu(),
        )
