"""Encode pairs.parquet once (`data.encoding: disk`): float16 VAE latents and text contexts, memory-mapped by training.

The job is resumable: latents are written in chunks of `chunk` pairs, each to a temporary file renamed into place,
so a killed or retried job keeps every finished chunk and continues with the next. `settings.json` records what
the chunks were made from (the pairs file, the model, flips, chunk size); a folder made under other settings is
cleared first. JPEGs are decoded and resized in DataLoader workers while the VAE runs in the main process, and
each caption is text-encoded once.

Folder layout:
    settings.json       what the chunks belong to
    caption_index.npy   (pairs,) int32 row of context.npy for each pair
    context.npy         (unique captions, L, D) float16
    empty.npy           (L, D) float16, the empty prompt
    x0-<start>.npy      (pairs in chunk, 2 [winner, loser], flips [unflipped, flipped], C, H, W) float16
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..errors import DataError
from ..models.bundle import TOY_KINDS, T2IModel
from ..runtime import Progress, file_identity
from .pairs import PairImages, encode_captions, encode_images

FORMAT = 2


def _chunk_file(folder: Path, start: int) -> Path:
    return folder / f"x0-{start:09d}.npy"


def _save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)  # a chunk appears whole or not at all


def _identity(item: Any) -> Any:
    return item


class _Rows(torch.utils.data.Dataset):
    """Batches of pair rows to decode, in order."""

    def __init__(self, images: PairImages, batches: list[np.ndarray]) -> None:
        self.images, self.batches = images, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> dict[str, Any]:
        return self.images(self.batches[k])


@torch.no_grad()
def encode_to_disk(
    pairs: str | Path,
    model: T2IModel,
    out_dir: str | Path,
    batch_size: int = 32,
    chunk: int = 4096,
    flip: bool = True,
    workers: int = 0,
    model_name: str = "",
) -> dict[str, Any]:
    """Encode every pair (both flips when `flip`) into `out_dir`, continuing a previous attempt's chunks."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    captions_per_pair = pd.read_parquet(pairs, columns=["caption"])["caption"].tolist()
    n = len(captions_per_pair)
    if not n:
        raise DataError(f"{pairs}: no pairs")
    settings = {
        "format": FORMAT,
        "pairs": file_identity(pairs),
        "model": model_name,
        "flips": 2 if flip else 1,
        "chunk": chunk,
        "x0_shape": list(model.x0_shape),
    }
    previous = out / "settings.json"
    if previous.is_file() and json.loads(previous.read_text()) != settings:
        for stale in [*out.glob("x0-*.npy"), *(out / f for f in ("context.npy", "caption_index.npy", "empty.npy"))]:
            stale.unlink(missing_ok=True)
    previous.write_text(json.dumps(settings, indent=2) + "\n")

    captions = sorted(set(captions_per_pair))
    if not (out / "context.npy").is_file():
        index = {c: i for i, c in enumerate(captions)}
        _save(out / "caption_index.npy", np.array([index[c] for c in captions_per_pair], dtype=np.int32))
        _save(out / "empty.npy", model.encode_prompts([""])[0].cpu().numpy().astype(np.float16))
        _save(out / "context.npy", encode_captions(model, captions).numpy().astype(np.float16))

    starts = [s for s in range(0, n, chunk) if not _chunk_file(out, s).is_file()]
    batches = [
        np.arange(b, min(b + batch_size, s + chunk, n)) for s in starts for b in range(s, min(s + chunk, n), batch_size)
    ]
    images = PairImages(pairs, model.resolution, model.kind in TOY_KINDS)
    loader = DataLoader(
        _Rows(images, batches),
        batch_size=None,
        num_workers=workers,
        collate_fn=_identity,
        prefetch_factor=4 if workers else None,
    )
    progress = Progress("encode pairs", n, "pairs", done=n - sum(len(b) for b in batches))
    pending: list[np.ndarray] = []
    for rows, fetched in zip(batches, loader):
        x0 = torch.stack([encode_images(model, fetched[side], flip) for side in ("w", "l")], dim=1)
        pending.append(x0.numpy().astype(np.float16))
        start = int(rows[0]) - int(rows[0]) % chunk
        if int(rows[-1]) + 1 == min(start + chunk, n):  # the chunk is complete
            _save(_chunk_file(out, start), np.concatenate(pending))
            pending = []
        progress.update(len(rows))
    progress.close()
    return {
        "pairs": n,
        "captions": len(captions),
        "x0_shape": list(model.x0_shape),
        "context_shape": list(np.load(out / "empty.npy", mmap_mode="r").shape),
        "flips": settings["flips"],
        "chunks": len(range(0, n, chunk)),
        "chunks_resumed": len(range(0, n, chunk)) - len(starts),
        "dtype": "float16",
    }


class EncodedStore:
    """Reads an encoded folder: chunk files memory-mapped on first use (in each process that reads them)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        settings_file = self.folder / "settings.json"
        if not settings_file.is_file():
            raise DataError(f"{self.folder}: no settings.json; rerun the encode_pairs rule")
        settings = json.loads(settings_file.read_text())
        if settings.get("format") != FORMAT:
            raise DataError(f"{self.folder}: encoded by an older version of this suite; rerun the encode_pairs rule")
        self.chunk, self.flips = int(settings["chunk"]), int(settings["flips"])
        self.caption_index = np.load(self.folder / "caption_index.npy")
        n = len(self.caption_index)
        missing = [p.name for p in (_chunk_file(self.folder, s) for s in range(0, n, self.chunk)) if not p.is_file()]
        missing += [f for f in ("context.npy", "empty.npy") if not (self.folder / f).is_file()]
        if missing:
            raise DataError(f"{self.folder}: missing {missing[:5]}; rerun the encode_pairs rule (it resumes)")
        self.empty = np.load(self.folder / "empty.npy")
        self._open: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.caption_index)

    def _array(self, name: str) -> np.ndarray:
        if name not in self._open:
            self._open[name] = np.load(self.folder / name, mmap_mode="r")
        return self._open[name]

    def gather(self, indices: np.ndarray, losers: bool = True) -> dict[str, np.ndarray]:
        """x0 of winners (and losers), (n, F, C, H, W), and the caption contexts of the pairs `indices`."""
        rows = [
            self._array(_chunk_file(self.folder, i - i % self.chunk).name)[i % self.chunk] for i in map(int, indices)
        ]
        out = {"w": np.stack([r[0] for r in rows]), "context": self._array("context.npy")[self.caption_index[indices]]}
        if losers:
            out["l"] = np.stack([r[1] for r in rows])
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}}  # memory maps are reopened in the receiving process
