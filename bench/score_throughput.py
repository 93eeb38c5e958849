"""Images per second of the PickScore scorer, batched vs one image at a time, for a tiny CLIP and a full-size
(random-weight) CLIP-H/14 as PickScore and HPS use; both saved and loaded through the scorer's real path.

    python bench/score_throughput.py                         # tiny and full size
    python bench/score_throughput.py --sizes tiny --images 64
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from inpo_bench.scorers import load_scorer  # noqa: E402
from inpo_bench.smoke.scorers import clip_dir  # noqa: E402

CLIP_H = {
    "text_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
    },
    "vision_config": {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
    },
    "projection_dim": 1024,
}


def full_size_dir(path: Path) -> Path:
    """A random CLIP-H/14 with the tiny tokenizer (the text tower's cost does not depend on the vocabulary)."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    tiny = clip_dir(path / "tokenizer")
    config = CLIPConfig.from_pretrained(tiny).to_dict()
    for tower in ("text_config", "vision_config"):
        config[tower].update(CLIP_H[tower])
    config["projection_dim"] = CLIP_H["projection_dim"]
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(**config)).save_pretrained(path)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny).save_pretrained(path)
    CLIPImageProcessorPil(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}, resample=3
    ).save_pretrained(path)
    return path


def measure(model_dir: Path, n: int, batch: int) -> float:
    scorer = load_scorer("pickscore", {"model": str(model_dir), "processor": str(model_dir)})
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(n)]
    prompts = ["a photo of a cat on a blue background"] * n
    scorer.score(images[:batch], prompts[:batch])  # warm-up
    start = time.perf_counter()
    for i in range(0, n, batch):
        scorer.score(images[i : i + batch], prompts[i : i + batch])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "full"], choices=["tiny", "full"])
    parser.add_argument("--images", type=int, default=0, help="images per measurement (default 64 tiny, 8 full)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            start = time.perf_counter()
            model_dir = clip_dir(Path(tmp) / size) if size == "tiny" else full_size_dir(Path(tmp) / size)
            build = time.perf_counter() - start
            n = args.images or (64 if size == "tiny" else 8)
            single, batched = measure(model_dir, n, 1), measure(model_dir, n, args.batch)
            rows.append(
                {
                    "size": size,
                    "images": n,
                    "batch": args.batch,
                    "threads": args.threads,
                    "images_per_s_single": single,
                    "images_per_s_batched": batched,
                    "speedup": batched / single,
                    "build_and_save_s": build,
                }
            )
            print(
                f"{size}: {single:.2f} images/s one at a time, {batched:.2f} images/s in batches of {args.batch} "
                f"({batched / single:.2f}x); model built and saved in {build:.0f} s",
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
