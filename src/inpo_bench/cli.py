"""`inpo-bench <stage>`: what the Snakemake rules call, one subcommand per stage.

Rules pass their config section as a JSON string (`--spec`), so a stage reruns only when its own settings
change. Heavy imports (torch, diffusers) happen inside the handlers, so light stages start fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

# model ids may contain slashes (ablation cells such as inpo/beta~2000); prompt sets and scorers do not
SCORE_PATH = re.compile(r"(?:^|/)scores/(?P<model>.+)/(?P<promptset>[^/]+)/(?P<scorer>[^/]+)\.csv$")


def _spec(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--spec is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--spec must be a JSON object")
    return value


def cmd_world(args: argparse.Namespace) -> None:
    from .runtime import write_json
    from .toyworld.world import World

    world = World.from_config(args.spec["world"], args.spec["seed"])
    write_json(args.out, world.to_json())
    print(f"world: {len(world.seen)} seen and {len(world.unseen)} unseen compositions -> {args.out}")


def cmd_prompts(args: argparse.Namespace) -> None:
    from .data.prompts import build_promptset
    from .runtime import write_csv
    from .toyworld.world import World

    frame = build_promptset(args.name, World.load(args.world))
    write_csv(args.out, frame)
    print(f"prompt set {args.name}: {len(frame)} prompts -> {args.out}")


def cmd_pretrain(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    import torch

    from .methods.objectives import Pretrain
    from .models.bundle import T2IModel, save_full_model
    from .models.tiny import build_scheduler, build_text_encoder, build_unet
    from .models.tokenizer import build_clip_tokenizer
    from .runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from .scorers.oracle import OracleProgress
    from .toyworld.world import World
    from .train import TrainSettings, train

    spec, clock = args.spec, Stopwatch()
    world, arch, cfg, seed = World.load(args.world), spec["toy_model"], spec["pretrain"], spec["seed"]
    torch.manual_seed(seed)  # initial weights
    tokenizer = build_clip_tokenizer(world.words, arch["text_max_length"])
    model = T2IModel(
        kind="pixel",
        resolution=world.resolution,
        unet=build_unet(arch, world.resolution),
        text_encoder=build_text_encoder(arch, tokenizer),
        tokenizer=tokenizer,
        scheduler=build_scheduler(arch),
    )
    images, captions = world.pretraining_set(cfg["images"], cfg["nuisance"], cfg["wrong_caption_rate"], seed)
    device = pick_device(spec["device"])
    model.unet.to(device)
    model.text_encoder.to(device)
    objective = Pretrain(model, images, captions, cfg["caption_dropout"], cfg["batch_size"])
    progress = OracleProgress(model, world, seed=seed, **spec["progress_eval"])
    log, evals = train(
        objective, TrainSettings.from_dict(cfg, seed), args.scratch, evaluate=progress, eval_every=cfg["eval_every"]
    )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train_log.csv", log)
    write_csv(out / "eval_log.csv", evals)
    write_json(
        out / "train.json",
        provenance(
            method="pretrain",
            config=spec,
            seed=seed,
            device=device,
            wall_seconds=clock.seconds(),
            final_loss=float(log["loss"].iloc[-1]),
        ),
    )
    model.unet.to("cpu")
    model.text_encoder.to("cpu")
    save_full_model(out, model)  # last: model.json marks the directory complete
    final = evals.iloc[-1]
    print(
        f"pretrained base in {clock.seconds():.0f} s; oracle on {len(progress.prompts)} seen prompts: "
        + ", ".join(f"{k} {final[k]:.3f}" for k in ("reward", "fg_correct", "bg_correct", "shape_correct"))
    )


def cmd_toy_pairs(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .models.bundle import load_model
    from .runtime import pick_device
    from .sample import SamplerSettings, generate
    from .toyworld.preferences import TOY_SCHEMA, pickapic_rows
    from .toyworld.world import World

    spec = args.spec
    cfg, seed = spec["preferences"], spec["seed"]
    world = World.load(args.world)
    model = load_model(args.model, pick_device(spec["device"]))
    # two images per (composition, k): the pair's seeds 0 and 1 under a prompt id no evaluation set uses
    prompts = [(f"pair-{c.id}-{k}", c.prompt) for c in world.seen for k in range(cfg["pairs_per_prompt"])]
    settings = SamplerSettings(steps=cfg["steps"], guidance=cfg["guidance"], batch_size=spec["batch_size"])
    images: dict[tuple[str, int], Any] = {}
    for pid, s, prompt, image in generate(model, prompts, [seed * 2, seed * 2 + 1], settings):
        images[pid, s] = (prompt, image, world.score(image, prompt).reward)
    pairs = []
    for pid, _ in prompts:
        (caption, im0, r0), (_, im1, r1) = images[pid, seed * 2], images[pid, seed * 2 + 1]
        pairs.append((caption, im0, im1, r0, r1))
    frame = pickapic_rows(pairs, cfg, seed, model_name="toy-base")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=TOY_SCHEMA, preserve_index=False), out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    ties = int((frame.label_0 == 0.5).sum())
    print(f"toy Pick-a-Pic shard: {len(frame)} pairs ({ties} ties) -> {out}")


def cmd_prepare(args: argparse.Namespace) -> None:
    from .data.pickapic import prepare_pairs
    from .runtime import Stopwatch, provenance, write_json

    clock = Stopwatch()
    counts = prepare_pairs(args.shard, args.out, args.source)
    write_json(args.report, provenance(**counts, wall_seconds=clock.seconds()))
    print(
        f"prepared {counts['kept']} pairs from {counts['read']} rows "
        f"({counts['ties_removed']} ties, {counts['corrupt_dropped']} corrupt) -> {args.out}"
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    from .models.bundle import load_model
    from .runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from .sample import SamplerSettings, generate, read_prompts, save_samples

    spec, clock = args.spec, Stopwatch()
    prompts = read_prompts(args.prompts)
    model = load_model(args.model, pick_device(spec["device"]))
    settings = SamplerSettings(steps=spec["steps"], guidance=spec["guidance"], batch_size=spec["batch_size"])
    out = Path(args.out_dir)
    index = save_samples(generate(model, prompts, spec["seeds"], settings), out)
    write_json(
        out / "sample.json",
        provenance(
            **settings.describe(),
            seeds=spec["seeds"],
            model=str(args.model),
            prompts=str(args.prompts),
            resolution=model.resolution,
            images=len(index),
            wall_seconds=clock.seconds(),
        ),
    )
    write_csv(out / "index.csv", index)  # last: its presence marks a complete sample folder
    print(f"sampled {len(index)} images in {clock.seconds():.1f} s -> {out}")


def cmd_score_oracle(args: argparse.Namespace) -> None:
    import pandas as pd

    from .runtime import write_csv
    from .scorers.oracle import oracle_scores
    from .toyworld.world import World

    samples = Path(args.samples)
    index = pd.read_csv(samples / "index.csv", dtype={"prompt_id": str})
    for name, frame in oracle_scores(index, samples, World.load(args.world)).items():
        write_csv(Path(args.out_dir) / f"{name}.csv", frame)
    print(f"oracle scores of {len(index)} images -> {args.out_dir}")


def cmd_mean_table(args: argparse.Namespace) -> None:
    from .runtime import write_csv
    from .tables import mean_scores, mean_scores_markdown

    entries = []
    for path in args.scores:
        match = SCORE_PATH.search(path)
        if match is None:
            raise SystemExit(f"{path}: not a score file path .../scores/<model>/<promptset>/<scorer>.csv")
        entries.append((match["model"], match["promptset"], match["scorer"], path))
    table = mean_scores(entries, seed=args.seed)
    write_csv(args.out, table)
    Path(args.markdown).write_text(mean_scores_markdown(table))
    print(f"mean-score table ({len(table)} rows) -> {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpo-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add("world", cmd_world, "fix the toy world (grammar, seen/unseen split) -> world.json")
    p.add_argument("--spec", type=_spec, required=True, help='{"world": {...}, "seed": N}')
    p.add_argument("--out", required=True)

    p = add("prompts", cmd_prompts, "write an evaluation prompt set CSV")
    p.add_argument("--name", required=True)
    p.add_argument("--world", required=True)
    p.add_argument("--out", required=True)

    p = add("pretrain", cmd_pretrain, "pretrain the toy base model from scratch")
    p.add_argument("--world", required=True)
    p.add_argument(
        "--spec", type=_spec, required=True, help='{"toy_model", "pretrain", "progress_eval", "seed", "device"}'
    )
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--scratch", required=True, help="checkpoint directory (kept across failed attempts)")
    p.add_argument("--threads", type=int, default=1)

    p = add("toy-pairs", cmd_toy_pairs, "sample base pairs, label them with the oracle -> Pick-a-Pic shard")
    p.add_argument("--model", required=True)
    p.add_argument("--world", required=True)
    p.add_argument("--spec", type=_spec, required=True, help='{"preferences", "seed", "device", "batch_size"}')
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)

    p = add("prepare", cmd_prepare, "Pick-a-Pic shards -> pairs.parquet (ties removed, corrupt pairs dropped)")
    p.add_argument("--shard", action="append", required=True, help="parquet shard (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True, help="prepare.json with the counts")
    p.add_argument("--source", required=True, help="label source recorded in every pair")

    p = add("sample", cmd_sample, "generate images for a prompt set")
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--spec", type=_spec, required=True, help='{"steps", "guidance", "batch_size", "seeds", "device"}')
    p.add_argument("--threads", type=int, default=1)

    p = add("score-oracle", cmd_score_oracle, "score a samples folder with the toy oracle")
    p.add_argument("--samples", required=True)
    p.add_argument("--world", required=True)
    p.add_argument("--out-dir", required=True)

    p = add("mean-table", cmd_mean_table, "mean scores with bootstrap CIs")
    p.add_argument("--out", required=True)
    p.add_argument("--markdown", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("scores", nargs="+", help=".../scores/<model>/<promptset>/<scorer>.csv files")
    return parser


def main(argv: list[str] | None = None) -> int:
    # job logs should hold the stage's own lines, not hub progress bars and advisory warnings
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    args.handler(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
