"""Preparation of Pick-a-Pic v2 style parquet shards into the training pairs file.

The same code reads the real dataset and the toy world's shards. Rows are streamed record batch by record batch
and written as they come, so a 335 GB dataset is never held in memory or copied whole. A tie (label_0 == 0.5) is
removed and counted; a pair whose image does not decode is dropped whole, never just one of its images (dropping
one image silently misaligns winners and losers in the official InPO loader), and its id is recorded.

pairs.parquet columns: pair_id, caption, image_w, image_l, source (+ reward_w, reward_l when the shards carry
true rewards, as the toy world's do). The image columns are stored verbatim (data/offsets.py) and
`pairs.offsets.npy` beside the file holds each image's byte range, so training can read a pair without its row group.

Where the shards come from, and the check that they are the bytes first read, is data/source.py.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..errors import DataError
from ..runtime import Progress
from .offsets import image_write_options, write_offsets
from .source import manifest

REQUIRED = tuple(manifest()["read_columns"])  # caption, jpg_0, jpg_1, label_0 and the types they may have
PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("caption", pa.string()),
        pa.field("image_w", pa.binary(), nullable=False),  # not nullable: no definition levels in the pages
        pa.field("image_l", pa.binary(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)
REWARD_FIELDS = [pa.field("reward_w", pa.float64()), pa.field("reward_l", pa.float64())]


def decodes(data: bytes | None) -> bool:
    """True when the bytes are a complete image PIL can decode."""
    if not data:
        return False
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
        return True
    except Exception:  # PIL raises many types for truncated or foreign data
        return False


def check_shards(shards: Iterable[str | Path]) -> list[Path]:
    """Open every shard's footer before any work, so a bad path or schema fails fast and names the file."""
    paths = [Path(s) for s in shards]
    if not paths:
        raise DataError("no Pick-a-Pic shards given")
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: shard not found")
        try:
            names = pq.ParquetFile(path).schema_arrow.names
        except Exception as error:
            raise DataError(f"{path}: not a readable parquet file ({error})") from error
        missing = [c for c in REQUIRED if c not in names]
        if missing:
            raise DataError(f"{path}: missing Pick-a-Pic column(s) {missing}")
        schema = pq.ParquetFile(path).schema_arrow
        allowed = manifest()["read_columns"]
        wrong = {c: str(schema.field(c).type) for c in REQUIRED if str(schema.field(c).type) not in allowed[c]}
        if wrong:
            raise DataError(f"{path}: Pick-a-Pic column(s) of the wrong type {wrong}; expected {allowed}")
    return paths


def prepare_pairs(
    shards: Iterable[str | Path], out_path: str | Path, source: str, batch_rows: int = 256, check: bool = True
) -> dict[str, Any]:
    """Stream shards into pairs.parquet; return the counts for prepare.json.

    With `check` every shard's footer is opened before any work (local files); otherwise `shards` may be a lazy
    iterable (hub downloads) and each shard is checked when it arrives.
    """
    paths = check_shards(shards) if check else shards
    first, paths = _peek(paths)
    with_rewards = "true_reward_0" in pq.ParquetFile(check_shards([first])[0]).schema_arrow.names
    schema = PAIRS_SCHEMA
    if with_rewards:
        for field in REWARD_FIELDS:
            schema = schema.append(field)
    counts: dict[str, Any] = {
        "read": 0,
        "ties_removed": 0,
        "unlabelled_removed": 0,
        "corrupt_dropped": 0,
        "kept": 0,
        "corrupt_pair_ids": [],
        "shards": [],
        "label_source": source,
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    columns = list(REQUIRED) + (["true_reward_0", "true_reward_1"] if with_rewards else [])
    try:
        _stream(paths, tmp, schema, columns, with_rewards, source, batch_rows, counts)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed run leaves no partial file and never touches an earlier pairs file
        raise
    if counts["kept"] == 0:
        tmp.unlink(missing_ok=True)
        raise DataError(f"no usable pairs in {counts['shards']}: {counts}")
    tmp.replace(out_path)
    write_offsets(out_path)
    return counts


def _stream(
    paths: Iterable[Any],
    tmp: Path,
    schema: pa.Schema,
    columns: list[str],
    with_rewards: bool,
    source: str,
    batch_rows: int,
    counts: dict[str, Any],
) -> None:
    """Write the kept pairs of every shard to `tmp`, counting as it goes."""
    with pq.ParquetWriter(tmp, schema, **image_write_options(schema.names)) as writer:
        for path in paths:
            path = check_shards([path])[0]
            if ("true_reward_0" in pq.ParquetFile(path).schema_arrow.names) != with_rewards:
                raise DataError(f"{path}: some shards carry true rewards and others do not")
            counts["shards"].append(str(path))
            row_index = 0
            parquet = pq.ParquetFile(path)
            progress = Progress(f"prepare {path.name}", parquet.metadata.num_rows, "pairs")
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
                out: dict[str, list[Any]] = {name: [] for name in schema.names}
                for row in batch.to_pylist():
                    pair_id = f"{path.stem}-{row_index}"
                    row_index += 1
                    counts["read"] += 1
                    label = row["label_0"]
                    if label == 0.5:
                        counts["ties_removed"] += 1
                        continue
                    if label not in (0.0, 1.0):
                        counts["unlabelled_removed"] += 1
                        continue
                    if not (decodes(row["jpg_0"]) and decodes(row["jpg_1"])):
                        counts["corrupt_dropped"] += 1
                        counts["corrupt_pair_ids"].append(pair_id)
                        continue
                    w, l = ("0", "1") if label == 1.0 else ("1", "0")
                    out["pair_id"].append(pair_id)
                    out["caption"].append(row["caption"])
                    out["image_w"].append(row["jpg_" + w])
                    out["image_l"].append(row["jpg_" + l])
                    out["source"].append(source)
                    if with_rewards:
                        out["reward_w"].append(row["true_reward_" + w])
                        out["reward_l"].append(row["true_reward_" + l])
                        _count_agreement(counts, row["true_reward_" + w], row["true_reward_" + l])
                    counts["kept"] += 1
                if out["pair_id"]:
                    writer.write_table(pa.table(out, schema=schema))
                progress.update(batch.num_rows)
            progress.close()


def _count_agreement(counts: dict[str, Any], reward_w: float, reward_l: float) -> None:
    """The toy world's annotator against the truth: is the kept pair's winner the image with the higher reward?
    (Pick-a-Pic's own label noise is measured by agreement too: Semi-DPO finds 21% of its pairs on which five
    reward models agree with the human.)"""
    key = "labels_right" if reward_w > reward_l else "labels_wrong" if reward_w < reward_l else "labels_equal_reward"
    counts[key] = counts.get(key, 0) + 1
    decided = counts.get("labels_right", 0) + counts.get("labels_wrong", 0)
    counts["labels_right_share"] = counts.get("labels_right", 0) / decided if decided else None


def _peek(items: Iterable[Any]) -> tuple[Any, Iterable[Any]]:
    """The first item of an iterable and an iterable that still yields it."""
    iterator = iter(items)
    try:
        first = next(iterator)
    except StopIteration:
        raise DataError("no Pick-a-Pic shards given") from None
    return first, itertools.chain([first], iterator)
