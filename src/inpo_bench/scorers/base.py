"""What every neural scorer shares: the interface, where weights come from, dtypes, and batched scoring."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import DataError, ModelError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Scorer(Protocol):
    """A batch of images and their prompts in, one score per image out (float64 numpy)."""

    name: str

    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray: ...


def location(value: str | None, what: str) -> str:
    """A local file or directory if it exists, otherwise a hub id (downloaded on first use, never in tests)."""
    if not value:
        raise ModelError(f"{what}: no location configured")
    path = Path(value).expanduser()
    if path.exists():
        return str(path)
    if value.startswith((".", "/", "~")) or value.count("/") != 1:
        raise ModelError(f"{what}: {value} does not exist (give a local path or an 'org/name' hub id)")
    return value


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """Half precision only on CUDA; on CPU it is slow and not needed."""
    if name not in DTYPES:
        raise ModelError(f"unknown dtype {name!r}; use one of {sorted(DTYPES)}")
    return DTYPES[name] if str(device).startswith("cuda") else torch.float32


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return x.float() / x.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)


def open_images(paths: Iterable[Path]) -> list[Image.Image]:
    """Decoded images in the file's own mode (RGBA, palette, grey, ...): each scorer converts to RGB where its
    upstream does, before or after resizing (scorers/preprocess.py)."""
    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image)
        except Exception as error:  # PIL raises several types for unreadable files
            raise DataError(f"{path}: not a readable image ({error})") from None
    return images


def score_index(scorer: Scorer, index: pd.DataFrame, folder: str | Path, batch_size: int) -> pd.DataFrame:
    """Score the images of a samples index (prompt_id, seed, prompt, file) in batches: (prompt_id, seed, score)."""
    folder = Path(folder)
    missing = [f for f in index.file if not (folder / f).is_file()]
    if missing:
        raise DataError(f"{folder}: {len(missing)} image(s) of index.csv are missing, e.g. {missing[:3]}")
    from ..runtime import Progress

    columns: dict[str, list[float]] = {}
    progress = Progress(f"score ({scorer.name})", len(index), "images")
    for start in range(0, len(index), batch_size):
        block = index.iloc[start : start + batch_size]
        images = open_images(folder / f for f in block.file)
        prompts = list(block.prompt)
        try:  # a scorer with more than one output per image (HPSv3's sigma) gives them as columns beside `score`
            out = (
                scorer.score_columns(images, prompts)
                if hasattr(scorer, "score_columns")
                else {"score": scorer.score(images, prompts)}
            )
        except DataError as error:
            raise DataError(f"{folder}: one of {list(block.file)}: {error}") from None
        if "score" not in out or any(len(v) != len(block) for v in out.values()):
            raise ValueError(f"scorer {scorer.name}: not one value per image in every column of {sorted(out)}")
        for name, values in out.items():
            columns.setdefault(name, []).extend(np.asarray(values, dtype=np.float64).tolist())
        progress.update(len(block))
    progress.close()
    return pd.DataFrame(
        {"prompt_id": index.prompt_id.to_numpy(), "seed": index.seed.to_numpy(), "score": columns.get("score", [])}
        | {k: v for k, v in columns.items() if k != "score"}
    )
