"""Seconds per optimiser step and UNet passes per step of every registered method on the toy model.

UNet passes are counted in images: a forward pass over a batch of k images counts k. Backward passes are not
counted (one per policy forward). Run from the repository root:

    python bench/train_step.py                       # default config, 1 and 2 threads
    python bench/train_step.py --threads 1 --steps 30 --out bench/out/train_step.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.data.order import example_generators  # noqa: E402
from inpo_bench.data.pairs import PairData  # noqa: E402
from inpo_bench.methods import Context, get, names  # noqa: E402
from inpo_bench.models.tiny import build_toy_model  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402


class PassCounter:
    """Wraps a UNet's forward to count the images it sees."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.images = 0
        original = unet.forward

        def counted(sample: torch.Tensor, *args: object, **kwargs: object) -> object:
            self.images += sample.shape[0]
            return original(sample, *args, **kwargs)

        unet.forward = counted


class RandomPairScores:
    """Seeded stand-in for data.pair_scores.PairScores (what SmPO reads: w, l and their range)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.w = torch.rand(n, generator=generator).numpy()
        self.l = torch.rand(n, generator=generator).numpy()

    def range(self) -> tuple[float, float]:
        return float(min(self.w.min(), self.l.min())), float(max(self.w.max(), self.l.max()))


def build(config: dict, method: str, pairs: int) -> tuple[torch.nn.Module, list[PassCounter]]:
    world = World.from_config(config["world"], config["seed"])
    arch = config["toy_model"]
    torch.manual_seed(0)
    model = build_toy_model(arch, world.words, world.resolution)
    g = torch.Generator().manual_seed(0)
    n = 256
    prompts = [c.prompt for c in world.seen]
    data = PairData(
        x0_w=torch.rand(n, 1, 3, world.resolution, world.resolution, generator=g) * 2 - 1,
        x0_l=torch.rand(n, 1, 3, world.resolution, world.resolution, generator=g) * 2 - 1,
        context=model.encode_prompts(prompts),
        caption_index=torch.arange(n) % len(prompts),
        empty=model.encode_prompts([""])[0],
    )
    cfg = {**config[method], "batch_size": pairs}
    scores = RandomPairScores(n, g) if get(method).pair_scores else None  # SmPO's labels: values do not change cost
    objective = get(method).build(Context(model.unet, data, cfg, model, pair_scores=scores))
    counters = [PassCounter(objective.policy)]
    if hasattr(objective, "reference"):
        counters.append(PassCounter(objective.reference))
    return objective, counters


def measure(config: dict, method: str, pairs: int, steps: int, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    objective, counters = build(config, method, pairs)
    optimizer = torch.optim.AdamW(objective.policy.parameters(), lr=1e-5)
    times, passes = [], []
    n = len(objective.data)
    for step in range(steps + 3):
        positions = torch.arange(step * pairs, (step + 1) * pairs).numpy()
        indices = positions % n
        batch = objective.draw(objective.source.fetch(indices), example_generators(1, positions), indices)
        before = sum(c.images for c in counters)
        start = time.perf_counter()
        loss, _ = objective(**batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - start)
            passes.append(sum(c.images for c in counters) - before)
    return {
        "method": method,
        "threads": threads,
        "pairs_per_step": pairs,
        "seconds_per_step": statistics.median(times),
        "seconds_min": min(times),
        "seconds_max": max(times),
        "unet_images_per_step": statistics.mean(passes),
        "unet_images_per_pair": statistics.mean(passes) / pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="*", default=[str(REPO / "config" / "config.yaml")])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=names())
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    config = load_config(*args.config)
    rows = []
    for threads in args.threads:
        for method in args.methods:
            rows.append(measure(config, method, config[method]["batch_size"], args.steps, threads))
            r = rows[-1]
            print(
                f"{method:5s} threads {threads}: {r['seconds_per_step']:.3f} s/step "
                f"[{r['seconds_min']:.3f}-{r['seconds_max']:.3f}], {r['unet_images_per_pair']:.2f} UNet images/pair",
                flush=True,
            )
        by = {r["method"]: r for r in rows if r["threads"] == threads}
        if "inpo" in by and "dpo" in by:
            time_ratio = by["inpo"]["seconds_per_step"] / by["dpo"]["seconds_per_step"]
            pass_ratio = by["inpo"]["unet_images_per_step"] / by["dpo"]["unet_images_per_step"]
            print(f"threads {threads}: InPO/DPO step time {time_ratio:.2f}x, UNet images {pass_ratio:.2f}x")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"inpo_t_range": [config["inpo"]["t_min"], config["inpo"]["t_max"]], "rows": rows}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
