"""Which shape does a toy model draw for each shape its prompt asks for? A toy-world probe for issue 13.

The oracle's `shape_correct` share says how often a model draws the asked shape, not whether it listens to the
shape word at all: a model that draws circles for every prompt scores 1/3, as one that draws shapes at random. This
script samples a model on a prompt set (by default every toy_seen prompt, seeds 0 and 1, the evaluation's sampler)
and counts, for each asked shape, the shape the oracle reads in the image: the template with the strictly highest
IoU with the object (`oracle.shape_ious`, the fit behind the oracle's shape score and `shape_correct`), "tie" where
two templates fit equally (small blobs, for which circle and square templates coincide; `shape_correct` counts a tie
as wrong), or "none" where nothing stands out from the background. Run from the repository root:

    python bench/shape_confusion.py --model results/toy/models/base

Seen on 2 cores (2026-12-06, about 50 s per model): config/probes/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.models.bundle import load_model  # noqa: E402
from inpo_bench.sample import SamplerSettings, generate, read_prompts  # noqa: E402
from inpo_bench.toyworld.grammar import SHAPES, parse_prompt  # noqa: E402
from inpo_bench.toyworld.oracle import shape_ious  # noqa: E402


def drawn_shape(image: np.ndarray) -> str:
    """The shape the oracle reads in `image`: the template of strictly highest IoU, "tie", or "none" (no object)."""
    ious = shape_ious(image)
    if ious is None:
        return "none"
    best = max(ious.values())
    winners = [name for name, iou in ious.items() if iou == best]
    return winners[0] if len(winners) == 1 else "tie"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", required=True, help="model directories (models/<name>)")
    parser.add_argument("--prompts", default=str(REPO / "results" / "toy" / "prompts" / "toy_seen.csv"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(2)
    sample = load_config(REPO / "config" / "config.yaml")["sample"]
    settings = SamplerSettings(sample["steps"], sample["guidance"], sample["batch_size"])
    prompts = read_prompts(args.prompts)
    columns = [*SHAPES, "tie", "none"]
    for path in args.model:
        counts = {asked: dict.fromkeys(columns, 0) for asked in SHAPES}
        for _, _, prompt, image in generate(load_model(path), prompts, args.seeds, settings):
            asked = parse_prompt(prompt)
            counts[asked.shape][drawn_shape(image)] += 1
        print(f"\n{path}: rows the asked shape, columns the drawn one (share of the row's images)")
        print(f"{'asked':<10}" + "".join(f"{c:>10}" for c in columns))
        for asked, row in counts.items():
            total = sum(row.values())
            print(f"{asked:<10}" + "".join(f"{row[c] / total:>10.2f}" for c in columns))


if __name__ == "__main__":
    main()
