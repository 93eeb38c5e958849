"""Streaming training pairs from pairs.parquet (`data.encoding: per_batch`, the SDXL setting): bytes read per pair
and pairs per second, before and after row-level reads.

Builds a synthetic Pick-a-Pic shard with realistic images (512 x 512 JPEGs of ~170 kB, as Pick-a-Pic's average),
prepares it with the suite's own `prepare_pairs` (row groups of 256 pairs), then reads pairs in a random epoch
order two ways:

- before (the suite until this change): each pair's whole row group read with pyarrow's `read_row_group`, its
  images decoded; a 4-group cache, which on Pick-a-Pic's ~3,300 row groups hits ~0.1% of the time, so it is
  left out here;
- after: each image read by byte offset (`data/offsets.py`), decoded and resized in DataLoader workers
  (`data.pairs.PairImages`), one pair per micro-batch as the official scripts.

Bytes are counted at the file API (a counting file object under pyarrow, `ImageFile.bytes_read` with pread);
the file is in the page cache, so pairs/s measures the CPU cost of reading and decoding, not the disk.

    python bench/streaming.py [--pairs 1024] [--resolution 1024] [--out bench/out/streaming.json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.data.order import ExampleOrder  # noqa: E402
from inpo_bench.data.pairs import PairImages, prepare_image  # noqa: E402
from inpo_bench.data.pickapic import prepare_pairs  # noqa: E402
from inpo_bench.toyworld.preferences import PICKAPIC_SCHEMA  # noqa: E402


def realistic_jpeg(rng: np.random.Generator) -> bytes:
    """512 x 512, smooth structure plus noise, quality 92: about 170 kB."""
    base = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).resize((512, 512), Image.BICUBIC)
    pixels = np.asarray(base).astype(np.float32) + rng.normal(0, 18, (512, 512, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def build_shard(path: Path, pairs: int) -> None:
    rng = np.random.default_rng(0)
    images = [realistic_jpeg(rng) for _ in range(64)]  # reused: decoding cost is what matters, not uniqueness
    rows = [
        {
            "are_different": True,
            "best_image_uid": "",
            "caption": f"caption {i % 97}",
            "created_at": pd.Timestamp("2023-05-01"),
            "has_label": True,
            "image_0_uid": f"{i}a",
            "image_0_url": "",
            "image_1_uid": f"{i}b",
            "image_1_url": "",
            "jpg_0": images[(2 * i) % 64],
            "jpg_1": images[(2 * i + 1) % 64],
            "label_0": float(i % 2),
            "label_1": float(1 - i % 2),
            "model_0": "a",
            "model_1": "b",
            "ranking_id": i,
            "user_id": 0,
            "num_example_per_prompt": 1,
        }
        for i in range(pairs)
    ]
    table = pa.Table.from_pandas(pd.DataFrame(rows), schema=PICKAPIC_SCHEMA, preserve_index=False)
    pq.write_table(table, path, row_group_size=1000)


class CountingFile(io.RawIOBase):
    def __init__(self, path: Path) -> None:
        self.handle = open(path, "rb")  # noqa: SIM115
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def readinto(self, buffer) -> int:
        n = self.handle.readinto(buffer)
        self.bytes_read += n
        return n


def before(pairs_file: Path, order: np.ndarray, resolution: int) -> dict[str, float]:
    """Row group per pair, as LazyPairs did."""
    counting = CountingFile(pairs_file)
    parquet = pq.ParquetFile(counting)
    starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    clock = time.perf_counter()
    for index in order:
        group = int(np.searchsorted(starts, index, side="right") - 1)
        rows = parquet.read_row_group(group, columns=["pair_id", "caption", "image_w", "image_l"])
        row = int(index - starts[group])
        for column in ("image_w", "image_l"):
            prepare_image(rows[column][row].as_py(), resolution, "bench", exact=False)
    seconds = time.perf_counter() - clock
    return {"pairs": len(order), "seconds": seconds, "pairs_per_s": len(order) / seconds, "bytes": counting.bytes_read}


def after(pairs_file: Path, order: np.ndarray, resolution: int, workers: int) -> dict[str, float]:
    """Row-level reads in DataLoader workers, one pair per micro-batch."""
    from torch.utils.data import DataLoader

    images = PairImages(pairs_file, resolution, exact=False)
    batches = [order[i : i + 1] for i in range(len(order))]
    clock = time.perf_counter()
    if workers:
        loader = DataLoader(batches, batch_size=None, num_workers=workers, collate_fn=images, prefetch_factor=4)
        fetched = sum(len(item["w"]) for item in loader)
        bytes_read = float("nan")  # counted in the workers; the 0-worker run counts the same reads
    else:
        fetched = sum(len(images(b)["w"]) for b in batches)
        bytes_read = images.images.bytes_read
    seconds = time.perf_counter() - clock
    return {"pairs": fetched, "seconds": seconds, "pairs_per_s": fetched / seconds, "bytes": bytes_read}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1024)
    parser.add_argument("--before-pairs", type=int, default=24, help="pairs read the old way (87 MB each)")
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shard, pairs_file = Path(tmp) / "train-00000.parquet", Path(tmp) / "pairs.parquet"
        build_shard(shard, args.pairs)
        prepare_pairs([shard], pairs_file, source="bench")
        offsets = np.load(pairs_file.with_suffix(".offsets.npy"))
        pair_bytes = float(offsets[:, 1].mean() + offsets[:, 3].mean())
        order = ExampleOrder(args.pairs, seed=0).examples(np.arange(args.pairs))
        groups = pq.ParquetFile(pairs_file).num_row_groups
        results = {"pairs_in_file": args.pairs, "row_groups": groups, "mean_pair_bytes": pair_bytes}
        results["before"] = before(pairs_file, order[: args.before_pairs], args.resolution)
        for workers in args.workers:
            results[f"after_{workers}_workers"] = after(pairs_file, order, args.resolution, workers)
    print(
        f"{args.pairs} pairs in {groups} row groups, {pair_bytes / 1e3:.0f} kB of images per pair; decoded at "
        f"{args.resolution} px"
    )
    for name, r in results.items():
        if isinstance(r, dict):
            per_pair = r["bytes"] / r["pairs"]
            print(
                f"{name:16s} {r['pairs_per_s']:7.1f} pairs/s  "
                + (
                    f"{per_pair / 1e6:8.2f} MB read per pair = {per_pair / pair_bytes:6.1f} x the pair's bytes"
                    if np.isfinite(per_pair)
                    else "(bytes counted in the 0-worker run)"
                )
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
