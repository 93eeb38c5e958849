"""Every term of the toy oracle, averaged over a model's scored samples. A toy-world probe for issue 13.

The score tables hold the oracle's reward, fidelity, aesthetic and the correct-attribute shares, not the three terms
the aesthetic averages (clean: no residual pixel noise; sharp: no soft edges; centred). This script scores the
samples a run already made again, image by image with the world's oracle, and prints the mean of every term per
model, so a loss of aesthetic can be traced to the term that moved. `--pairs` adds the preference set's winners and
losers (the images SFT and the preference methods train on). `--guidance` samples the models afresh at those
guidance scales instead, otherwise as the run's sample rule did on the CPU (its prompts, steps, seeds, batches and
thread count; at the stored samples' own scale it makes the same images, which a test checks), to see whether a
model's loss grows with guidance; runs sampled in half precision on a GPU are refused. Nothing is written. Run from
the repository root after `snakemake --cores 2 study` (or the default run, for the main models):

    python bench/oracle_terms.py --models base sft kto dpo inpo --pairs
    python bench/oracle_terms.py --models base sft --guidance 1 2 4

Seen on 2 cores (2026-12-07; rescoring takes a few seconds per model, sampling 720 images minutes per model and
scale): config/probes/README.md.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.scorers.oracle import oracle_quality  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402

TERMS = ("clean", "sharp", "centred", "aesthetic", "fg_colour", "bg_colour", "shape", "fidelity", "reward")


def mean_terms(world: World, images: list[np.ndarray], prompts: list[str]) -> dict[str, float]:
    """The mean of each oracle term over `images`, each scored against its prompt, and the noisy share."""
    return oracle_quality(images, prompts, world, TERMS)


def rgb(source) -> np.ndarray:
    return np.asarray(Image.open(source).convert("RGB"))


def stored(run: Path, model: str, promptset: str) -> tuple[list[np.ndarray], list[str]]:
    """The images the run's sample rule made, and their prompts."""
    folder = run / "samples" / model / promptset
    if not (folder / "index.csv").exists():
        raise SystemExit(f"{folder / 'index.csv'} is missing: sample {model} on {promptset} first")
    index = pd.read_csv(folder / "index.csv")
    return [rgb(folder / f) for f in index.file], list(index.prompt)


def sampled(
    run: Path, model: str, promptset: str, scales: list[float], batch_size: int
) -> dict[float, tuple[list[np.ndarray], list[str]]]:
    """The model's images sampled afresh at each guidance scale, otherwise as the run's sample rule made the stored
    ones: the prompts it read, and the steps, seeds and thread count its sample.json records, in float32 on the CPU.
    `batch_size` is used where sample.json does not record one (runs before it did)."""
    from inpo_bench.runtime import set_threads
    from inpo_bench.sample import SamplerSettings, generate, read_prompts

    record_path = run / "samples" / model / promptset / "sample.json"
    if not record_path.exists():
        raise SystemExit(f"{record_path} is missing: sample {model} on {promptset} first (its settings are read there)")
    record = json.loads(record_path.read_text())
    if record["dtype"] != "float32":
        raise SystemExit(
            f"{record_path}: sampled in {record['dtype']} on a GPU; this script samples in float32 on the CPU"
        )
    set_threads(record["threads"])
    from inpo_bench.models.bundle import load_model

    prompts = read_prompts(run / "prompts" / f"{promptset}.csv")  # what the sample rule read
    bundle = load_model(run / "models" / model)
    out = {}
    for scale in scales:
        settings = SamplerSettings(record["steps"], scale, record.get("batch_size", batch_size))
        items = list(generate(bundle, prompts, record["seeds"], settings))
        out[scale] = [i[3] for i in items], [i[2] for i in items]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="the run's results directory (default: results/<config run>)")
    parser.add_argument("--configfile", default=None, help="the overlay the run was made with")
    parser.add_argument("--models", nargs="+", default=["base", "sft", "dpo", "inpo"], help="as under samples/")
    parser.add_argument("--promptset", default="toy_seen")
    parser.add_argument("--pairs", action="store_true", help="also the preference set's winners and losers")
    parser.add_argument("--guidance", type=float, nargs="+", help="sample afresh at these guidance scales")
    args = parser.parse_args()

    config = load_config(REPO / "config" / "config.yaml", *([args.configfile] if args.configfile else []))
    run = Path(args.run) if args.run else REPO / "results" / config["run"]
    world = World.load(run / "world.json")
    scales = list(dict.fromkeys(args.guidance or []))
    rows = {}
    for model in args.models:
        if not scales:  # rescoring only: no model is loaded, the sampler's settings are not needed
            rows[model] = mean_terms(world, *stored(run, model, args.promptset))
            continue
        fresh = sampled(run, model, args.promptset, scales, config["sample"]["batch_size"])
        for scale, (images, prompts) in fresh.items():
            rows[f"{model}, guidance {scale:g}"] = mean_terms(world, images, prompts)
    if args.pairs:
        pairs = pd.read_parquet(run / "data" / "pairs.parquet")
        for side, column in (("winners", "image_w"), ("losers", "image_l")):
            images = [rgb(io.BytesIO(png)) for png in pairs[column]]
            rows[f"pairs: {side}"] = mean_terms(world, images, list(pairs.caption))
    print(f"{run.name}, {args.promptset}: mean oracle terms (noisy: share with clean < .05)")
    print(pd.DataFrame(rows).T.round(4).to_string())


if __name__ == "__main__":
    main()
