"""Policy against reference at step 0 under mixed precision: with equal weights every pair method's logits are 0,
so model_mse == ref_mse and the loss is log 2 exactly, unless the two forwards are computed differently.

The CUDA smoke (bench/cuda_smoke.sh, bench/README.md) saw DDIM-InPO's first step differ on an H200 under bf16 and
fp16 while Diffusion-DPO's did not; on a CPU (torch.autocast bf16) both agree. This probe builds the toy model
(no assets needed), the real objectives with the reference in half precision as training keeps it, and prints the
gap per method and dtype. Run from the repository root:

    python bench/precision_probe.py --device cuda

Seen on an H200 (2026-12-04): every gap 0, both methods, all three dtypes. So the smoke's InPO gap comes from what
this probe leaves out: the SD UNet and its conditioning, the trainer's accelerate wrapper and micro-batches.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.data.order import example_generators  # noqa: E402
from inpo_bench.data.pairs import PairData  # noqa: E402
from inpo_bench.methods import Context, get  # noqa: E402
from inpo_bench.models.tiny import build_toy_model  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", nargs="+", default=["dpo", "inpo"])
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()

    cfg = load_config(REPO / "config" / "config.yaml")
    world = World.from_config(cfg["world"], cfg["seed"])
    torch.manual_seed(0)
    model = build_toy_model(cfg["toy_model"], world.words, world.resolution)
    n = args.pairs
    g = torch.Generator().manual_seed(0)
    captions = [c.prompt for c in world.seen[:2]]
    with torch.no_grad():
        context, empty = model.encode_prompts(captions), model.encode_prompts([""])[0]
    data = PairData(
        x0_w=torch.rand(n, 1, 3, world.resolution, world.resolution, generator=g) * 2 - 1,
        x0_l=torch.rand(n, 1, 3, world.resolution, world.resolution, generator=g) * 2 - 1,
        context=context,
        caption_index=torch.arange(n) % 2,
        empty=empty,
    )
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for name in args.methods:
            section = {**cfg[name], "batch_size": n, "caption_dropout": 0.0}
            half = None if dtype == torch.float32 else dtype
            objective = get(name).build(Context(model.unet, data, section, model, reference_dtype=half))
            objective.to(args.device)
            index = torch.arange(n)
            drawn = objective.draw(
                objective.source.fetch(index.numpy()), example_generators(7, range(n)), index.numpy()
            )
            batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in drawn.items()}
            with torch.autocast(args.device, dtype=dtype, enabled=dtype != torch.float32):
                loss, metrics = objective(**batch)
            gap = metrics["model_mse"] / metrics["ref_mse"] - 1
            print(
                f"{name:5s} {dtype!s:15s} loss - log 2 = {loss.item() - math.log(2):+.3e}   "
                f"model_mse / ref_mse - 1 = {gap:+.3e}"
            )


if __name__ == "__main__":
    main()
