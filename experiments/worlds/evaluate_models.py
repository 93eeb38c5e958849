"""Probe: each model's true reward and learned-flaw share on a run's toy prompts, many seeds, paired with the base
(the same initial noise per prompt and seed), so small moves of a mode are measured without the progress
evaluation's 32-image noise.

    python experiments/worlds/evaluate_models.py --run results/w-l1 --models base dpo/lr~3e-05 --seeds 16
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.models.bundle import load_model  # noqa: E402
from inpo_bench.sample import SamplerSettings, generate  # noqa: E402
from inpo_bench.tables.study import seeded_difference  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402

FIELDS = ("reward", "fidelity", "aesthetic", "sharp", "fg_correct", "shape_correct", "colours_swapped")


def measure(run: Path, model: str, world: World, prompts, seeds, settings) -> dict[str, np.ndarray]:
    loaded = load_model(run / "models" / model)
    rows = {f: np.zeros((len(prompts), len(seeds))) for f in FIELDS}
    where = {pid: i for i, (pid, _) in enumerate(prompts)}
    for pid, seed, prompt, image in generate(loaded, prompts, seeds, settings):
        score = world.score(image, prompt)
        for f in FIELDS:
            rows[f][where[pid], seeds.index(seed)] = float(getattr(score, f))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=3000)
    parser.add_argument("--promptset", default="toy_seen")
    args = parser.parse_args()
    torch.set_num_threads(2)
    run = Path(args.run)
    world = World.load(run / "world.json")
    table = world.prompt_set(args.promptset)
    prompts = list(zip(table.prompt_id, table.prompt))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    settings = SamplerSettings(steps=20, guidance=4.0, batch_size=128)
    base = measure(run, "base", world, prompts, seeds, settings)
    print(f"{'model':24s} " + " ".join(f"{f:>16s}" for f in FIELDS))
    print(f"{'base':24s} " + " ".join(f"{base[f].mean():16.4f}" for f in FIELDS))
    for model in args.models:
        got = measure(run, model, world, prompts, seeds, settings)
        cells = []
        for f in FIELDS:
            # prompts x seeds, paired with the base: a bootstrap over prompts of the seed-mean difference
            point, low, high = seeded_difference(got[f].mean(1)[None], base[f].mean(1)[None])
            cells.append(f"{point:+.4f}[{low:+.3f},{high:+.3f}]")
        print(f"{model:24s} " + " ".join(f"{c:>16s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
