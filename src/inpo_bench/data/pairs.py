"""pairs.parquet -> PairData: decode every pair once, encode captions once (the text encoder is frozen)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ..errors import DataError
from ..methods.objectives import PairData
from ..models.bundle import T2IModel


def _decode(data: bytes, resolution: int, what: str) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if image.size != (resolution, resolution):
        raise DataError(f"{what}: image is {image.size[0]}x{image.size[1]}, the model works at {resolution}px")
    return np.asarray(image)


@torch.no_grad()
def load_pair_data(path: str | Path, model: T2IModel, batch_size: int = 256) -> PairData:
    frame = pd.read_parquet(path, columns=["pair_id", "caption", "image_w", "image_l"])
    if frame.empty:
        raise DataError(f"{path}: no pairs")
    res = model.resolution
    winners = np.stack([_decode(b, res, f"{path} pair {p} winner") for p, b in zip(frame.pair_id, frame.image_w)])
    losers = np.stack([_decode(b, res, f"{path} pair {p} loser") for p, b in zip(frame.pair_id, frame.image_l)])
    captions = sorted(set(frame.caption))
    index = {c: i for i, c in enumerate(captions)}
    context = torch.cat(
        [model.encode_prompts(captions[i : i + batch_size]).cpu() for i in range(0, len(captions), batch_size)]
    )
    return PairData(
        x0_w=model.images_to_x0(winners),
        x0_l=model.images_to_x0(losers),
        context=context,
        caption_index=torch.tensor([index[c] for c in frame.caption]),
        empty=model.encode_prompts([""])[0].cpu(),
    )
