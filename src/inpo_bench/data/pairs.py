"""pairs.parquet -> model inputs for the trainers.

Three sources behind one interface (`len`, `batch(indices) -> (x0_w, x0_l, context)`, `empty`), chosen by the
config key `data.encoding`:

- `memory` -> `PairData`: everything encoded once in the training job and held in memory (the toy world, small
  subsets of Pick-a-Pic);
- `disk` -> `EncodedPairs`: everything encoded once by its own job (`encode_to_disk`: float16 VAE latents, one text
  context per unique caption) and memory-mapped by every training job;
- `per_batch` -> `LazyPairs`: rows read from the parquet file on demand (one row group at a time, a few kept in a
  cache), images decoded, resized and VAE-encoded and captions text-encoded per batch, as the official training
  scripts do.

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


ENCODED_FILES = ("x0_w.npy", "x0_l.npy", "context.npy", "caption_index.npy", "empty.npy")


@torch.no_grad()
def encode_to_disk(path: str | Path, model: T2IModel, out_dir: str | Path, batch_size: int = 32) -> dict:
    """Encode every pair once into float16 .npy arrays (memory-mapped when read back): VAE latents of winners and
    losers, one text context per unique caption. The parquet file is streamed, so memory stays bounded."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    captions_per_pair = pd.read_parquet(path, columns=["caption"])["caption"].tolist()
    if not captions_per_pair:
        raise DataError(f"{path}: no pairs")
    captions = sorted(set(captions_per_pair))
    index = {c: i for i, c in enumerate(captions)}
    n, shape = len(captions_per_pair), model.x0_shape
    np.save(out_dir / "caption_index.npy", np.array([index[c] for c in captions_per_pair], dtype=np.int32))
    np.save(out_dir / "empty.npy", model.encode_prompts([""])[0].cpu().numpy().astype(np.float16))
    first = model.encode_prompts(captions[:1])
    context = np.lib.format.open_memmap(out_dir / "context.npy", "w+", np.float16, (len(captions), *first.shape[1:]))
    for start in range(0, len(captions), batch_size):
        context[start : start + batch_size] = model.encode_prompts(captions[start : start + batch_size]).cpu().numpy()
    context.flush()
    lazy = LazyPairs(path, model)
    x0 = {
        side: np.lib.format.open_memmap(out_dir / f"x0_{side}.npy", "w+", np.float16, (n, *shape))
        for side in ("w", "l")
    }
    for start in range(0, n, batch_size):
        winners, losers, _ = lazy.batch(torch.arange(start, min(n, start + batch_size)))
        x0["w"][start : start + len(winners)] = winners.numpy()
        x0["l"][start : start + len(losers)] = losers.numpy()
    for array in x0.values():
        array.flush()
    return {
        "pairs": n,
        "captions": len(captions),
        "x0_shape": list(shape),
        "context_shape": list(first.shape[1:]),
        "dtype": "float16",
    }


class EncodedPairs:
    """Pairs encoded by `encode_to_disk`, memory-mapped: batches are gathered from disk, nothing else is held."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        missing = [f for f in ENCODED_FILES if not (folder / f).is_file()]
        if missing:
            raise DataError(f"{folder}: missing {missing}; rerun the encode_pairs rule")
        self.x0_w, self.x0_l, self.context = (
            np.load(folder / f, mmap_mode="r") for f in ("x0_w.npy", "x0_l.npy", "context.npy")
        )
        self.caption_index = np.load(folder / "caption_index.npy")
        self.empty = torch.from_numpy(np.load(folder / "empty.npy")).float()

    def __len__(self) -> int:
        return len(self.caption_index)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = indices.numpy()
        return (
            torch.from_numpy(self.x0_w[idx].astype(np.float32)),
            torch.from_numpy(self.x0_l[idx].astype(np.float32)),
            torch.from_numpy(self.context[self.caption_index[idx]].astype(np.float32)),
        )
