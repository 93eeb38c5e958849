"""Each training pair's two images scored by a label scorer: the input of SmPO's smoothed preference labels.

`data/pair_scores/<scorer>.parquet` has pair_id, score_w, score_l in the row order of pairs.parquet. At paper
scale the scorer is PickScore's raw cosine (`pickscore_cosine`, as SmPO's preprocessing scores Pick-a-Pic); in the
toy world it is the learned toy reward model (`toy_reward`), never the hidden oracle.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from PIL import Image

from ..errors import DataError
from ..runtime import Progress

COLUMNS = ["pair_id", "score_w", "score_l"]


def score_pairs(pairs: str | Path, scorer: Any, batch_size: int = 32) -> pd.DataFrame:
    """Score winner and loser of every pair against its caption, streaming pairs.parquet batch by batch."""
    parquet = pq.ParquetFile(pairs)
    progress = Progress(f"score pairs ({scorer.name})", parquet.metadata.num_rows, "pairs")
    parts = []
    for batch in parquet.iter_batches(batch_size=batch_size, columns=["pair_id", "caption", "image_w", "image_l"]):
        frame = batch.to_pandas()
        captions = [str(c) for c in frame.caption]
        scores = {}
        for side, column in (("w", "image_w"), ("l", "image_l")):
            images = [Image.open(io.BytesIO(b)).convert("RGB") for b in frame[column]]
            scores[side] = scorer.score(images, captions)
        parts.append(pd.DataFrame({"pair_id": frame.pair_id, "score_w": scores["w"], "score_l": scores["l"]}))
        progress.update(len(frame))
    progress.close()
    return pd.concat(parts, ignore_index=True)


class PairScores:
    """Pair scores aligned with pairs.parquet rows (checked by pair_id), as float64 arrays."""

    def __init__(self, path: str | Path, pairs: str | Path) -> None:
        frame = pd.read_parquet(path, columns=COLUMNS)
        ids = pd.read_parquet(pairs, columns=["pair_id"]).pair_id
        if len(frame) != len(ids) or not np.array_equal(frame.pair_id.to_numpy(), ids.to_numpy()):
            raise DataError(f"{path}: its pairs are not those of {pairs} (rerun the score_pairs rule)")
        self.w = frame.score_w.to_numpy(np.float64)
        self.l = frame.score_l.to_numpy(np.float64)

    def __len__(self) -> int:
        return len(self.w)

    def range(self) -> tuple[float, float]:
        both = np.concatenate([self.w, self.l])
        return float(both.min()), float(both.max())
