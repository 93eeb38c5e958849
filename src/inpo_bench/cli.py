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
MODEL_PATH = re.compile(r"(?:^|/)models/(?P<model>.+?)/?$")


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
    from .runtime import write_csv, write_json
    from .toyworld.world import World

    world = World.load(args.world) if args.world else None
    frame, record = build_promptset(args.name, world, args.spec)
    write_json(Path(args.out).with_suffix(".json"), record)
    write_csv(args.out, frame)
    print(f"prompt set {args.name}: {len(frame)} prompts from {record['source']} -> {args.out}")


def _write_training_record(out: str | Path, log: Any, evals: Any, **record: Any) -> Path:
    """A finished training's logs and train.json (provenance + final loss); the model itself is saved after."""
    from .runtime import provenance, write_csv, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train_log.csv", log)
    if evals is not None:
        write_csv(out / "eval_log.csv", evals)
    write_json(out / "train.json", provenance(**record, final_loss=float(log["loss"].iloc[-1])))
    return out


def cmd_pretrain(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    import torch

    from .methods.objectives import Pretrain
    from .models.bundle import save_full_model
    from .models.tiny import build_toy_model
    from .runtime import Stopwatch, file_identity, fingerprint, make_accelerator
    from .scorers.oracle import OracleProgress
    from .toyworld.world import World
    from .train import TrainSettings, clear_checkpoints, train

    spec, clock = args.spec, Stopwatch()
    world, arch, cfg, seed = World.load(args.world), spec["toy_model"], spec["pretrain"], spec["seed"]
    torch.manual_seed(seed)  # initial weights
    model = build_toy_model(arch, world.words, world.resolution)
    images, captions = world.pretraining_set(cfg["images"], cfg["nuisance"], cfg["wrong_caption_rate"], seed)
    accelerator = make_accelerator(spec["device"])
    device = str(accelerator.device)
    model.unet.to(device)
    model.text_encoder.to(device)
    objective = Pretrain(model, images, captions, cfg["caption_dropout"], cfg["batch_size"])
    progress = OracleProgress(model, world, **spec["progress_eval"])
    settings = TrainSettings.from_dict(cfg, seed)
    stamp = fingerprint(spec=spec, world=file_identity(args.world))
    log, evals = train(
        objective,
        settings,
        args.scratch,
        accelerator,
        evaluate=progress,
        eval_every=cfg["eval_every"],
        fingerprint=stamp,
    )
    if not accelerator.is_main_process:
        return
    out = _write_training_record(
        args.out,
        log,
        evals,
        method="pretrain",
        processes=accelerator.num_processes,
        config=spec,
        seed=seed,
        device=device,
        wall_seconds=clock.seconds(),
    )
    model.unet.to("cpu")
    model.text_encoder.to("cpu")
    save_full_model(out, model)  # last: model.json marks the directory complete
    clear_checkpoints(args.scratch)
    final = evals.iloc[-1]
    print(
        f"pretrained base in {clock.seconds():.0f} s; oracle on {len(progress.prompts)} seen prompts: "
        + ", ".join(f"{k} {final[k]:.3f}" for k in ("reward", "fg_correct", "bg_correct", "shape_correct"))
    )


def cmd_smoke_assets(args: argparse.Namespace) -> None:
    from .smoke import build_all

    manifest = build_all(args.out)
    print(f"smoke assets: {len(manifest)} stand-ins -> {args.out}")


def cmd_base_model(args: argparse.Namespace) -> None:
    from .models.bundle import MODEL_FILE, check_model, write_base_spec

    write_base_spec(args.out, args.kind, args.resolution, args.pretrained, args.vae)
    try:  # fail here, naming the missing component, rather than in every later job; no weights are loaded
        summary = check_model(args.out)
    except Exception:
        (Path(args.out) / MODEL_FILE).unlink(missing_ok=True)  # no half-checked model for later jobs
        raise
    print(
        f"base model: {args.kind} from {args.pretrained} ({summary['unet_parameters'] / 1e6:.1f} M UNet "
        f"parameters, text width {summary['cross_attention_dim']}) -> {args.out}"
    )


def cmd_encode_pairs(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    from .data.encode import encode_to_disk
    from .models.bundle import load_model
    from .runtime import Stopwatch, pick_device, provenance, write_json

    clock = Stopwatch()
    model = load_model(args.model, pick_device(args.device), with_unet=False)  # the VAE and text encoders only
    summary = encode_to_disk(
        args.pairs,
        model,
        args.out,
        batch_size=args.batch_size,
        chunk=args.chunk,
        flip=args.flip,
        workers=args.workers,
        model_name=str(args.model),
    )
    write_json(
        Path(args.out) / "encoded.json",
        provenance(**summary, pairs_file=str(args.pairs), model=str(args.model), wall_seconds=clock.seconds()),
    )
    resumed = f", {summary['chunks_resumed']} of {summary['chunks']} chunks kept from an earlier attempt"
    print(
        f"encoded {summary['pairs']} pairs ({summary['flips']} flip(s)) and {summary['captions']} captions in "
        f"{clock.seconds():.0f} s{resumed if summary['chunks_resumed'] else ''} -> {args.out}"
    )


def _pair_source(spec: dict[str, Any], args: argparse.Namespace, model: Any, losers: bool) -> Any:
    """The training pairs as the config's data.encoding asks: in memory, memory-mapped from disk, or per batch."""
    from .data.pairs import EncodedPairs, LazyPairs, load_pair_data

    data = spec["data"]
    if data["encoding"] == "disk":
        return EncodedPairs(args.encoded, data["flip"], losers, args.workers)
    if data["encoding"] == "per_batch":
        return LazyPairs(args.pairs, model, data["flip"], losers, args.workers)
    return load_pair_data(args.pairs, model, data["flip"], losers)


def cmd_train(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    from dataclasses import replace

    import torch

    from .methods import Context, get
    from .models.bundle import load_model, save_derived_model
    from .runtime import Stopwatch, file_identity, fingerprint, make_accelerator
    from .train import TrainSettings, clear_checkpoints, train

    spec, clock = args.spec, Stopwatch()
    cfg, run = spec["method"], spec["training"]
    seed = spec["seed"] if cfg.get("train_seed") is None else cfg["train_seed"]
    accelerator = make_accelerator(spec["device"], run["mixed_precision"])
    device = str(accelerator.device)
    model = load_model(args.init, device)
    if args.gradient_checkpointing:
        model.unet.enable_gradient_checkpointing()
    method = get(args.method)
    data = _pair_source(spec, args, model, losers=method.losers)
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision)
    pair_scores = None
    if method.pair_scores:
        from .data.pair_scores import PairScores

        if not args.pair_scores:
            raise SystemExit(f"--method {args.method} needs --pair-scores (the score_pairs rule's output)")
        pair_scores = PairScores(args.pair_scores, args.pairs)
    objective = method.build(Context(model.unet, data, cfg, model, reference_dtype=half, pair_scores=pair_scores))
    progress = None
    if args.world:
        from .scorers.oracle import OracleProgress
        from .toyworld.world import World

        progress = OracleProgress(model, World.load(args.world), **spec["progress_eval"])
    torch.manual_seed(seed)
    inputs = {"init": file_identity(Path(args.init) / "model.json"), "pairs": file_identity(args.pairs)}
    stamp = fingerprint(method=args.method, spec=spec, **inputs)
    settings = replace(TrainSettings.from_dict(cfg, seed), checkpoint_every=args.checkpoint_every)
    layout = settings.layout(cfg["batch_size"], accelerator.num_processes)
    log, evals = train(
        objective,
        settings,
        args.scratch,
        accelerator,
        evaluate=progress,
        eval_every=cfg.get("eval_every", 0),
        fingerprint=stamp,
    )
    if not accelerator.is_main_process:
        return
    out = _write_training_record(
        args.out,
        log,
        evals if progress is not None else None,
        method=args.method,
        processes=accelerator.num_processes,
        pairs_per_step=layout.per_step,
        grad_accum=layout.grad_accum,
        skipped_steps=int(log["skipped"].sum()),
        config=cfg,
        training=run,
        data={**spec["data"], "workers": args.workers},
        init=str(args.init),
        seed=seed,
        device=device,
        mixed_precision=accelerator.mixed_precision,
        gradient_checkpointing=bool(args.gradient_checkpointing),
        pairs=len(data),
        wall_seconds=clock.seconds(),
    )
    model.unet.to("cpu", torch.float32)
    save_derived_model(out, model.unet, args.init)  # last: model.json marks the directory complete
    clear_checkpoints(args.scratch)
    summary = f"trained {args.method} for {len(log)} steps in {clock.seconds():.0f} s"
    if progress is not None:
        first, last = evals.iloc[0], evals.iloc[-1]
        summary += f"; oracle reward {first['reward']:.3f} -> {last['reward']:.3f}"
    print(summary)


def cmd_score_pairs(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    from .data.pair_scores import score_pairs
    from .runtime import Stopwatch, pick_device, provenance, write_json
    from .scorers import describe, load_scorer

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


def cmd_toy_reward(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    from transformers import CLIPTokenizer

    from .models import toy_reward
    from .runtime import Stopwatch, provenance

    clock = Stopwatch()
    tokenizer = CLIPTokenizer.from_pretrained(Path(args.base) / "tokenizer")
    model, record = toy_reward.train(args.pairs, tokenizer, args.spec["toy_reward"], args.spec["seed"])
    final = record["log"][-1]
    toy_reward.save(args.out, model, tokenizer, provenance(**record, config=args.spec, wall_seconds=clock.seconds()))
    print(
        f"toy reward model: {record['pairs']} pairs, loss {final['loss']:.3f}, held-out pair accuracy "
        f"{final['held_out_accuracy']:.3f} ({record['held_out_pairs']} pairs) -> {args.out}"
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
    from .data.pickapic import hub_shards, prepare_pairs
    from .runtime import Stopwatch, provenance, write_json

    clock = Stopwatch()
    if args.shard:
        counts = prepare_pairs(args.shard, args.out, args.source)
    else:  # stream the split from the hub: a shard is fetched when the previous one is done
        shards = hub_shards(args.repo, args.split, args.max_shards, args.cache)
        counts = prepare_pairs(shards, args.out, args.source, check=False)
    write_json(args.report, provenance(**counts, wall_seconds=clock.seconds()))
    print(
        f"prepared {counts['kept']} pairs from {counts['read']} rows "
        f"({counts['ties_removed']} ties, {counts['corrupt_dropped']} corrupt) -> {args.out}"
    )


def cmd_sample(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    import torch

    from .models.bundle import load_model
    from .runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from .sample import SamplerSettings, generate, read_prompts, save_samples

    spec, clock = args.spec, Stopwatch()
    prompts = read_prompts(args.prompts)
    device = pick_device(spec["device"])
    model = load_model(args.model, device)
    dtype = spec["dtype"] if device.startswith("cuda") else "float32"  # half precision never on a CPU
    model.to(device, {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(dtype))
    settings = SamplerSettings(steps=spec["steps"], guidance=spec["guidance"], batch_size=spec["batch_size"])
    out = Path(args.out_dir)
    index = save_samples(generate(model, prompts, spec["seeds"], settings), out)
    write_json(
        out / "sample.json",
        provenance(
            **settings.describe(),
            seeds=spec["seeds"],
            dtype=dtype,
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


def cmd_subset_scores(args: argparse.Namespace) -> None:
    import pandas as pd

    from .data.prompts import REAL_SETS, subset_rows
    from .runtime import provenance, write_csv, write_json

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


def _score_entries(paths: list[str]) -> dict[tuple[str, str, str], str]:
    entries = {}
    for path in paths:
        match = SCORE_PATH.search(path)
        if match is None:
            raise SystemExit(f"{path}: not a score file path .../scores/<model>/<promptset>/<scorer>.csv")
        entries[match["model"], match["promptset"], match["scorer"]] = path
    return entries


def _write_table(out_dir: Path, name: str, frame: Any, markdown: str) -> None:
    from .runtime import write_csv

    write_csv(out_dir / f"{name}.csv", frame)
    (out_dir / f"{name}.md").write_text(markdown)


def cmd_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import tables

    out, scores = Path(args.out_dir), _score_entries(args.scores)
    out.mkdir(parents=True, exist_ok=True)
    means = tables.mean_scores([(m, p, s, path) for (m, p, s), path in scores.items()], seed=args.seed)
    _write_table(out, "mean_scores", means, tables.mean_scores_markdown(means))
    comparisons = [tuple(c.split(":")) for c in args.comparisons]
    wins = tables.win_rates(scores, comparisons, seed=args.seed)
    _write_table(out, "win_rates", wins, tables.win_rates_markdown(wins))
    print(f"tables: {len(means)} mean scores, {len(wins)} win rates -> {out}")
    if args.paper:
        paper = tables.paper_comparison(
            pd.read_csv(args.paper), wins, args.run, dict(m.split(":") for m in args.paper_metrics)
        )
        _write_table(
            out,
            "paper_comparison",
            paper,
            tables.frame_markdown(
                "The paper's win rates beside this run's",
                f"Win rates in percent of InPO against each baseline; the "
                f"paper's from {args.paper}, this run's ({args.run}) with a 95% bootstrap interval. Empty: a cell this "
                "run does not cover.",
                paper,
                floats="{:.1f}",
            ),
        )
    if not args.models:
        return
    logs = {}
    for folder in map(Path, args.models):
        model = MODEL_PATH.search(str(folder))["model"]
        logs[model] = (folder / "eval_log.csv", folder / "train_log.csv")
    curves = tables.training_curves(logs)
    _write_table(
        out,
        "training_curves",
        curves,
        tables.frame_markdown(
            "Training curves",
            "Oracle measurements during training (progress prompts, one seed of their own); loss "
            "and implicit accuracy averaged over the 10 steps up to each measurement.",
            curves,
        ),
    )
    per_step = {m: pd.read_csv(train).seconds.iloc[-1] / len(pd.read_csv(train)) for m, (_, train) in logs.items()}
    steps = tables.steps_to_reach(curves, reference=args.reference, seconds=per_step)
    _write_table(
        out,
        "steps_to_reward",
        steps,
        tables.frame_markdown(
            "Steps to reach a reward",
            f"First measured step at which each model's oracle reward reaches its start plus "
            f"the given fraction of {args.reference}'s final gain; empty: never within its run.",
            steps,
        ),
    )
    claims = tables.toy_claims(wins, steps, per_step, method=args.method, reference=args.reference)
    _write_table(
        out,
        "paper_claims",
        claims,
        tables.frame_markdown(
            "The paper's claims in the toy world",
            "Judged on the true (oracle) reward. A win-rate claim holds when the whole 95% interval is above 50%.",
            claims,
        ),
    )


def cmd_ablation_table(args: argparse.Namespace) -> None:
    from . import tables

    scores = _score_entries(args.scores)
    table = tables.ablation_table(args.method, args.cells, args.method_config, scores, seed=args.seed)
    _write_table(
        Path(args.out_dir), f"ablation_{args.method}", table, tables.ablation_markdown(args.method, table, args.scorer)
    )
    print(f"ablation table of {args.method}: {len(args.cells)} cells -> {args.out_dir}")


def cmd_figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import plots

    out = Path(args.out_dir)
    wins = pd.read_csv(args.win_rates, dtype={"model": str, "baseline": str})
    plots.win_rate_bars(wins, out / "win_rates.png")
    if args.curves:
        plots.training_curves(pd.read_csv(args.curves), out / "training_curves.png")
    for promptset in args.promptsets:
        columns = {m: Path(args.samples_root) / m / promptset for m in args.grid_models}
        index = pd.read_csv(columns[args.grid_models[0]] / "index.csv", dtype={"prompt_id": str})
        picks = index.iloc[:: max(1, len(index) // args.grid_images)].head(args.grid_images)
        plots.image_grid(
            columns,
            list(zip(picks.prompt_id, picks.seed)),
            out / f"grid_{promptset}.png",
            prompts=dict(zip(index.prompt_id, index.prompt)),
        )
    print(f"figures -> {out}")


def cmd_ablation_figure(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import plots
    from .tables import ablation_parameters

    table = pd.read_csv(args.table)
    block = table[(table.scorer == args.scorer) & (table.promptset == args.promptset)]
    if block.empty:
        raise SystemExit(f"{args.table}: no rows for scorer {args.scorer} on {args.promptset}")
    parameters = ablation_parameters(block)
    default = block[block.cell == "default"]["mean"]
    plots.ablation_panels(
        block,
        parameters,
        args.out,
        reference=float(default.iloc[0]) if len(default) else None,
        label=f"mean {args.scorer} ({args.promptset})",
    )
    print(f"ablation figure -> {args.out}")


def cmd_prepare_scorer(args: argparse.Namespace) -> None:
    from .scorers.prepare import prepare

    out = prepare(args.scorer, args.spec, args.out)
    print(f"{args.scorer} ready -> {out}")


def cmd_convert_hps(args: argparse.Namespace) -> None:
    from .scorers.hps import convert

    print(f"converted -> {convert(args.checkpoint, args.clip, args.out, args.version)}")


def cmd_convert_imagereward(args: argparse.Namespace) -> None:
    from .scorers.imagereward import convert

    print(f"converted -> {convert(args.checkpoint, args.med_config, args.bert, args.out, args.vision_heads)}")


def cmd_score(args: argparse.Namespace) -> None:
    from .runtime import set_threads

    set_threads(args.threads)
    import gc

    import pandas as pd

    from .runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from .scorers import describe, load_scorer
    from .scorers.base import score_index

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
                dtype=args.dtype,
                images=len(scores),
                source=str(folder),
                wall_seconds=clock.seconds(),
            ),
        )
        write_csv(out, scores)
        print(f"{name}: {len(scores)} images, mean {scores.score.mean():.4f} in {clock.seconds():.1f} s -> {out}")


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

    p = add("prompts", cmd_prompts, "write an evaluation prompt set CSV (and a JSON record of its source)")
    p.add_argument("--name", required=True)
    p.add_argument("--world", help="world.json (toy prompt sets)")
    p.add_argument("--spec", type=_spec, default={"cache": "resources/prompts"}, help="the config's prompts section")
    p.add_argument("--out", required=True)

    p = add("pretrain", cmd_pretrain, "pretrain the toy base model from scratch")
    p.add_argument("--world", required=True)
    p.add_argument(
        "--spec", type=_spec, required=True, help='{"toy_model", "pretrain", "progress_eval", "seed", "device"}'
    )
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--scratch", required=True, help="checkpoint directory (kept across failed attempts)")
    p.add_argument("--threads", type=int, default=1)

    p = add("smoke-assets", cmd_smoke_assets, "tiny SD/SDXL pipelines, Pick-a-Pic shard, prompt files, scorers")
    p.add_argument("--out", required=True)

    p = add("base-model", cmd_base_model, "describe a pretrained Stable Diffusion base as a model directory")
    p.add_argument("--kind", required=True, choices=["sd", "sdxl"])
    p.add_argument("--pretrained", required=True, help="diffusers pipeline directory or hub id")
    p.add_argument("--vae", help="another VAE directory or hub id")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--out", required=True)

    p = add("encode-pairs", cmd_encode_pairs, "encode pairs.parquet once: float16 latents and text contexts on disk")
    p.add_argument("--pairs", required=True)
    p.add_argument("--model", required=True, help="the base model directory (its VAE and text encoders)")
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=int, default=32, help="images per VAE batch")
    p.add_argument("--chunk", type=int, default=4096, help="pairs per chunk file (the unit a rerun resumes at)")
    p.add_argument("--flip", action="store_true", help="also encode every image flipped (data.flip)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers decoding JPEGs")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)

    p = add("train", cmd_train, "train an aligned model with a registered method on preference pairs")
    p.add_argument("--method", required=True, help="a registered method (inpo_bench.methods): sft, dpo, inpo, ...")
    p.add_argument("--init", required=True, help="model directory the policy and reference start from")
    p.add_argument("--pairs", required=True, help="pairs.parquet")
    p.add_argument(
        "--spec",
        type=_spec,
        required=True,
        help='{"method": {...}, "training", "data", "seed", "device"} (+ "progress_eval" in the toy world)',
    )
    p.add_argument(
        "--gradient-checkpointing", type=int, choices=[0, 1], default=0, help="1: recompute activations in backward"
    )
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers reading pairs (per_batch, disk)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        help="steps between resumable checkpoints (0: none); not in --spec, because it does not change the weights",
    )
    p.add_argument("--encoded", help="folder of pairs encoded by `encode-pairs` (data.encoding: disk)")
    p.add_argument("--pair-scores", help="the pairs scored by the method's label scorer (`score-pairs`; SmPO)")
    p.add_argument("--world", help="world.json: measure the model with the toy oracle during training")
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--scratch", required=True, help="checkpoint directory (kept across failed attempts)")
    p.add_argument("--threads", type=int, default=1)

    p = add("score-pairs", cmd_score_pairs, "score both images of every training pair (SmPO's label scorer)")
    p.add_argument("--pairs", required=True)
    p.add_argument("--scorer", required=True)
    p.add_argument("--spec", type=_spec, required=True, help="scorer -> what load_scorer needs")
    p.add_argument("--out", required=True, help="pair_scores/<scorer>.parquet")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=1)

    p = add("toy-reward", cmd_toy_reward, "train the toy world's reward model (its PickScore) on the toy pairs")
    p.add_argument("--pairs", required=True)
    p.add_argument("--base", required=True, help="the toy base model directory (its tokenizer)")
    p.add_argument("--spec", type=_spec, required=True, help='{"toy_reward": {...}, "seed": N}')
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)

    p = add("toy-pairs", cmd_toy_pairs, "sample base pairs, label them with the oracle -> Pick-a-Pic shard")
    p.add_argument("--model", required=True)
    p.add_argument("--world", required=True)
    p.add_argument("--spec", type=_spec, required=True, help='{"preferences", "seed", "device", "batch_size"}')
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)

    p = add("prepare", cmd_prepare, "Pick-a-Pic shards -> pairs.parquet (ties removed, corrupt pairs dropped)")
    p.add_argument("--shard", action="append", help="local parquet shard (repeatable); none: stream from the hub")
    p.add_argument("--repo", default="yuvalkirstain/pickapic_v2", help="hub dataset to stream shards from")
    p.add_argument("--split", default="train")
    p.add_argument("--max-shards", type=int, default=0, help="first N shards of the split (0: all)")
    p.add_argument("--cache", default="resources/pickapic_v2", help="where downloaded shards are kept")
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

    p = add("subset-scores", cmd_subset_scores, "a subset prompt set's scores (HPDv2 styles) from its superset's")
    p.add_argument("--name", required=True, help="the subset, e.g. hpdv2_anime")
    p.add_argument("--scores", nargs="+", required=True, help="the superset's score files (one per scorer)")
    p.add_argument("--out-dir", required=True, help="where each file of the same name goes")

    p = add("tables", cmd_tables, "mean scores, win rates, training curves and the toy claims table")
    p.add_argument("--scores", nargs="+", required=True, help=".../scores/<model>/<promptset>/<scorer>.csv files")
    p.add_argument("--comparisons", nargs="*", default=[], help="model:baseline pairs for win rates")
    p.add_argument("--models", nargs="*", default=[], help="trained model directories with eval_log.csv (toy)")
    p.add_argument("--method", default="inpo", help="the method the claims table is about")
    p.add_argument("--reference", default="dpo", help="the method whose gain defines the efficiency targets")
    p.add_argument("--paper", help="the paper's win rates (results/paper/inpo_cvpr2025_winrates.csv)")
    p.add_argument("--run", default="", help="this run's name, to pick the paper's rows it reproduces")
    p.add_argument("--paper-metrics", nargs="*", default=[], help="paper metric:scorer pairs")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    p = add("ablation-table", cmd_ablation_table, "one row per ablation cell: parameters, scores, win rates")
    p.add_argument("--method", required=True)
    p.add_argument("--method-config", type=_spec, required=True, help="the method's default config section")
    p.add_argument("--cells", nargs="+", required=True, help="cell ids such as beta~500 or t_max~500/inv_grid~exact")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--scorer", required=True, help="scorer shown in the Markdown table")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = add("figures", cmd_figures, "win-rate bars, training curves, ablation panels, image grids")
    p.add_argument("--win-rates", required=True)
    p.add_argument("--curves", help="training_curves.csv (toy world)")
    p.add_argument("--samples-root", required=True, help="the samples/ folder")
    p.add_argument("--grid-models", nargs="+", required=True)
    p.add_argument("--promptsets", nargs="+", required=True)
    p.add_argument("--grid-images", type=int, default=8)
    p.add_argument("--out-dir", required=True)

    p = add(
        "prepare-scorer", cmd_prepare_scorer, "fetch / convert a scorer's weights once (hps, imagereward, aesthetic)"
    )
    p.add_argument("--scorer", required=True, choices=["hpsv2", "hpsv21", "imagereward", "aesthetic"])
    p.add_argument("--spec", type=_spec, required=True, help="the scorer's config section")
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

    p = add("score", cmd_score, "score a samples folder (index.csv) or a folder of images with model scorers")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--samples", help="a samples folder with index.csv")
    where.add_argument("--images", help="a folder of images, all scored against --prompt")
    p.add_argument("--prompt", default="", help="prompt of every image of --images")
    p.add_argument("--scorer", action="append", required=True, help="scorer name (repeatable)")
    p.add_argument(
        "--spec",
        type=_spec,
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

    p = add("ablation-figure", cmd_ablation_figure, "one panel per swept parameter of an ablation table")
    p.add_argument("--table", required=True, help="ablation_<method>.csv")
    p.add_argument("--scorer", required=True)
    p.add_argument("--promptset", required=True)
    p.add_argument("--out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    # job logs should hold the stage's own lines, not hub progress bars and advisory warnings
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    args = build_parser().parse_args(argv)
    from .errors import InpoBenchError

    try:
        args.handler(args)
    except InpoBenchError as error:
        print(f"inpo-bench {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
