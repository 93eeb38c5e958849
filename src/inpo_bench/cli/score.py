"""Stage commands of scoring: the toy oracle, model scorers, pair scores (SmPO), prompt-set subsets, converters."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Add, json_object


def cmd_score_oracle(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..runtime import write_csv
    from ..scorers.oracle import oracle_scores
    from ..toyworld.world import World

    samples = Path(args.samples)
    index = pd.read_csv(samples / "index.csv", dtype={"prompt_id": str})
    for name, frame in oracle_scores(index, samples, World.load(args.world)).items():
        write_csv(Path(args.out_dir) / f"{name}.csv", frame)
    print(f"oracle scores of {len(index)} images -> {args.out_dir}")


def cmd_score(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import gc

    import pandas as pd

    from ..runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from ..scorers import describe, load_scorer
    from ..scorers.base import score_index

    if args.out and len(args.scorer) != 1:
        raise SystemExit("--out takes one scorer; give --out-dir for several")
    missing = [name for name in args.scorer if name not in args.spec]
    if missing:
        raise SystemExit(f"--spec has no entry for {missing}; it maps each scorer to its settings")
    if args.samples:
        folder = Path(args.samples)
        index = pd.read_csv(folder / "index.csv", dtype={"prompt_id": str})
    else:
        folder = Path(args.images)
        files = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"})
        index = pd.DataFrame(
            {"prompt_id": [Path(f).stem for f in files], "seed": 0, "prompt": args.prompt, "file": files}
        )
    device = pick_device(args.device)
    for name in args.scorer:  # one scorer at a time: each model is loaded once and freed before the next
        clock = Stopwatch()
        scorer = load_scorer(name, args.spec[name], device, args.dtype)
        scores = score_index(scorer, index, folder, args.batch_size)
        used = str(getattr(scorer, "dtype", args.dtype)).removeprefix("torch.")  # CPU runs float32; HPSv3 bf16
        del scorer
        gc.collect()
        if not args.samples:
            scores = scores.assign(file=index.file.to_numpy())
        out = Path(args.out) if args.out else Path(args.out_dir) / f"{name}.csv"
        write_json(
            out.with_suffix(".json"),
            provenance(
                scorer=name,
                meaning=describe(name),
                config=args.spec[name],
                device=device,
                dtype=used,
                images=len(scores),
                source=str(folder),
                prompt_source=_sampled_prompts(folder) if args.samples else None,
                wall_seconds=clock.seconds(),
            ),
        )
        write_csv(out, scores)
        print(f"{name}: {len(scores)} images, mean {scores.score.mean():.4f} in {clock.seconds():.1f} s -> {out}")


def _sampled_prompts(folder: Path) -> dict | None:
    """The prompt source recorded in a sample folder's sample.json (which prompt file, which SHA-256)."""
    import json

    record = folder / "sample.json"
    return json.loads(record.read_text()).get("prompt_source") if record.is_file() else None


def cmd_subset_scores(args: argparse.Namespace) -> None:
    import pandas as pd

    from ..data.prompts import REAL_SETS, subset_rows
    from ..runtime import provenance, write_csv, write_json

    for source in map(Path, args.scores):
        scores = pd.read_csv(source, dtype={"prompt_id": str})
        subset = subset_rows(scores, args.name)
        if subset.empty:
            raise SystemExit(f"{source}: no prompt id starts with {REAL_SETS[args.name].id_prefix!r}")
        out = Path(args.out_dir) / source.name
        write_json(
            out.with_suffix(".json"), provenance(derived_from=str(source), promptset=args.name, images=len(subset))
        )
        write_csv(out, subset)
        print(f"{args.name}: {len(subset)} of {len(scores)} scores of {source} -> {out}")


def cmd_score_pairs(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    from ..data.pair_scores import score_pairs
    from ..runtime import Stopwatch, pick_device, provenance, write_json
    from ..scorers import describe, load_scorer

    clock = Stopwatch()
    scorer = load_scorer(args.scorer, args.spec[args.scorer], pick_device(args.device), args.dtype)
    frame = score_pairs(args.pairs, scorer, args.batch_size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out.with_suffix(".tmp"), index=False)
    write_json(
        out.with_suffix(".json"),
        provenance(scorer=args.scorer, meaning=describe(args.scorer), pairs=len(frame), wall_seconds=clock.seconds()),
    )
    out.with_suffix(".tmp").replace(out)
    agree = float((frame.score_w > frame.score_l).mean())
    print(f"scored {len(frame)} pairs with {args.scorer}; it ranks {100 * agree:.1f}% as the labels do -> {out}")


def cmd_prepare_scorer(args: argparse.Namespace) -> None:
    from ..scorers.prepare import prepare

    out = prepare(args.scorer, args.spec, args.out)
    print(f"{args.scorer} ready -> {out}")


def cmd_convert_hps(args: argparse.Namespace) -> None:
    from ..scorers.hps import convert

    print(f"converted -> {convert(args.checkpoint, args.clip, args.out, args.version)}")


def cmd_convert_imagereward(args: argparse.Namespace) -> None:
    from ..scorers.imagereward import convert

    print(f"converted -> {convert(args.checkpoint, args.med_config, args.bert, args.out, args.vision_heads)}")


def register(add: Add) -> None:
    p = add("score-oracle", cmd_score_oracle, "score a samples folder with the toy oracle")
    p.add_argument("--samples", required=True)
    p.add_argument("--world", required=True)
    p.add_argument("--out-dir", required=True)

    p = add("score", cmd_score, "score a samples folder (index.csv) or a folder of images with model scorers")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--samples", help="a samples folder with index.csv")
    where.add_argument("--images", help="a folder of images, all scored against --prompt")
    p.add_argument("--prompt", default="", help="prompt of every image of --images")
    p.add_argument("--scorer", action="append", required=True, help="scorer name (repeatable)")
    p.add_argument(
        "--spec",
        type=json_object,
        required=True,
        help='scorer -> what load_scorer needs, e.g. {"pickscore": {"model": DIR, "processor": DIR}}',
    )
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", help="CSV of the one scorer: prompt_id, seed, score (+ file for --images)")
    out.add_argument("--out-dir", help="folder for <scorer>.csv of each scorer")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=1)

    p = add("subset-scores", cmd_subset_scores, "a subset prompt set's scores (HPDv2 styles) from its superset's")
    p.add_argument("--name", required=True, help="the subset, e.g. hpdv2_anime")
    p.add_argument("--scores", nargs="+", required=True, help="the superset's score files (one per scorer)")
    p.add_argument("--out-dir", required=True, help="where each file of the same name goes")

    p = add("score-pairs", cmd_score_pairs, "score both images of every training pair (SmPO's label scorer)")
    p.add_argument("--pairs", required=True)
    p.add_argument("--scorer", required=True)
    p.add_argument("--spec", type=json_object, required=True, help="scorer -> what load_scorer needs")
    p.add_argument("--out", required=True, help="pair_scores/<scorer>.parquet")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=1)

    p = add(
        "prepare-scorer",
        cmd_prepare_scorer,
        "fetch / convert a scorer's weights once (HPS, ImageReward, aesthetic, HPSv3)",
    )
    p.add_argument("--scorer", required=True, choices=["hpsv2", "hpsv21", "imagereward", "aesthetic", "hpsv3"])
    p.add_argument("--spec", type=json_object, required=True, help="the scorer's config section")
    p.add_argument("--out", required=True)

    p = add("convert-hps", cmd_convert_hps, "HPS v2 / v2.1 open_clip checkpoint -> transformers CLIPModel directory")
    p.add_argument("--checkpoint", required=True, help="HPS_v2_compressed.pt or HPS_v2.1_compressed.pt")
    p.add_argument("--clip", required=True, help="CLIP-H/14 directory or hub id (architecture and tokenizer)")
    p.add_argument("--version", required=True, choices=["hpsv2", "hpsv21"])
    p.add_argument("--out", required=True)

    p = add("convert-imagereward", cmd_convert_imagereward, "ImageReward.pt -> transformers BLIP + head directory")
    p.add_argument("--checkpoint", required=True, help="ImageReward.pt")
    p.add_argument("--med-config", required=True, help="med_config.json of the ImageReward release")
    p.add_argument("--bert", required=True, help="bert-base-uncased tokenizer directory or hub id")
    p.add_argument("--vision-heads", type=int, default=16, help="attention heads of the ViT (ViT-L/16: 16)")
    p.add_argument("--out", required=True)
