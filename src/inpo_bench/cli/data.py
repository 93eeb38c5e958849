"""Stage commands of the data: the toy world, prompt sets, Pick-a-Pic preparation and encoding, base models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import Add, json_object


def cmd_world(args: argparse.Namespace) -> None:
    from ..runtime import write_json
    from ..toyworld.world import World

    world = World.from_config(args.spec["world"], args.spec["seed"])
    write_json(args.out, world.to_json())
    print(f"world: {len(world.seen)} seen and {len(world.unseen)} unseen compositions -> {args.out}")


def cmd_prompts(args: argparse.Namespace) -> None:
    from ..data.prompts import build_promptset
    from ..runtime import write_csv, write_json
    from ..toyworld.world import World

    world = World.load(args.world) if args.world else None
    frame, record = build_promptset(args.name, world, args.spec)
    write_json(Path(args.out).with_suffix(".json"), record)
    write_csv(args.out, frame)
    print(f"prompt set {args.name}: {len(frame)} prompts from {record['source']} -> {args.out}")


def cmd_smoke_assets(args: argparse.Namespace) -> None:
    from ..smoke import build_all

    manifest = build_all(args.out)
    print(f"smoke assets: {len(manifest)} stand-ins -> {args.out}")


def cmd_base_model(args: argparse.Namespace) -> None:
    from ..models.bundle import MODEL_FILE, check_model, write_base_spec
    from ..models.checkpoints import is_hub_id

    write_base_spec(args.out, args.kind, args.resolution, args.pretrained, args.vae)
    try:  # fail here, naming the missing component, rather than in every later job; no weights are loaded
        summary = check_model(args.out)
    except Exception:
        (Path(args.out) / MODEL_FILE).unlink(missing_ok=True)  # no half-checked model for later jobs
        raise
    if is_hub_id(args.pretrained):  # pinned: every later job (and each checkpoint on it) reads this commit
        commit = Path(summary["components_folder"]).name
        write_base_spec(args.out, args.kind, args.resolution, args.pretrained, args.vae, revision=commit)
    print(
        f"base model: {args.kind} from {args.pretrained} ({summary['unet_parameters'] / 1e6:.1f} M UNet "
        f"parameters, text width {summary['cross_attention_dim']}) -> {args.out}"
    )


def cmd_checkpoint(args: argparse.Namespace) -> None:
    import shutil

    from ..models.checkpoints import resolve_checkpoint

    out = Path(args.out)
    if out.exists():  # a fresh directory: no UNet or model.json of an earlier attempt answers for this one
        shutil.rmtree(out)
    try:
        record = resolve_checkpoint(args.name, args.spec, args.base, out)
    except Exception:
        shutil.rmtree(out, ignore_errors=True)  # no half-written model for later jobs
        raise
    ckpt = record["checkpoint"]
    at = f" at {ckpt['revision']}" if ckpt["revision"] else ""
    print(
        f"checkpoint {args.name}: {ckpt['load']} from {ckpt['source']}{at}, "
        f"{record['unet_parameters'] / 1e6:.1f} M UNet parameters -> {out}"
    )


def cmd_toy_pairs(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..models.bundle import load_model
    from ..runtime import pick_device
    from ..sample import SamplerSettings, generate
    from ..toyworld.preferences import TOY_SCHEMA, pickapic_rows
    from ..toyworld.world import World

    spec = args.spec
    cfg, seed = spec["preferences"], spec["seed"]
    world = World.load(args.world)
    model = load_model(args.model, pick_device(spec["device"]))
    # two images per (composition, k): the pair's seeds 0 and 1 under a prompt id no evaluation set uses
    prompts = [(f"pair-{c.id}-{k}", c.prompt) for c in world.seen for k in range(cfg["pairs_per_prompt"])]
    settings = SamplerSettings(steps=cfg["steps"], guidance=cfg["guidance"], batch_size=spec["batch_size"])
    images: dict[tuple[str, int], Any] = {}
    for pid, s, prompt, image in generate(model, prompts, [seed * 2, seed * 2 + 1], settings):
        images[pid, s] = (prompt, image, world.score(image, prompt))
    pairs = []
    for pid, _ in prompts:
        (caption, im0, s0), (_, im1, s1) = images[pid, seed * 2], images[pid, seed * 2 + 1]
        pairs.append((caption, im0, im1, s0, s1))
    frame = pickapic_rows(pairs, cfg, seed, model_name="toy-base")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, schema=TOY_SCHEMA, preserve_index=False), out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    ties = int((frame.label_0 == 0.5).sum())
    print(f"toy Pick-a-Pic shard: {len(frame)} pairs ({ties} ties) -> {out}")


def cmd_prepare(args: argparse.Namespace) -> None:
    from ..data.pickapic import check_shards, prepare_pairs
    from ..data.source import LOCK_NAME, hub_source, local_source
    from ..runtime import Stopwatch, provenance, write_json

    clock = Stopwatch()
    if args.shard:
        check_shards(args.shard)  # every local shard's columns and types before any work
        source = local_source(args.shard, args.split, Path(args.cache) / LOCK_NAME if args.lock else None)
    else:  # resolved (or read from the lock) before any download; a shard is fetched when the previous one is done
        source = hub_source(args.repo, args.revision, args.split, args.max_shards, args.cache)
        print(f"Pick-a-Pic: {args.repo}@{args.revision} -> commit {source.commit}, {len(source.shards)} shard(s)")
    counts = prepare_pairs(source.paths(), args.out, args.label_source, check=False)
    record = source.record()
    if not args.max_shards and not args.shard and record["card_rows"] not in (None, counts["read"]):
        print(f"warning: read {counts['read']} rows of split {args.split}; its dataset card says {record['card_rows']}")
    write_json(args.report, provenance(**counts, source=record, wall_seconds=clock.seconds()))
    print(
        f"prepared {counts['kept']} pairs from {counts['read']} rows "
        f"({counts['ties_removed']} ties, {counts['corrupt_dropped']} corrupt) -> {args.out}"
    )


def cmd_encode_pairs(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    from ..data.encode import encode_to_disk
    from ..models.bundle import load_model
    from ..runtime import Stopwatch, pick_device, provenance, write_json

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


def register(add: Add) -> None:
    p = add("world", cmd_world, "fix the toy world (grammar, seen/unseen split) -> world.json")
    p.add_argument("--spec", type=json_object, required=True, help='{"world": {...}, "seed": N}')
    p.add_argument("--out", required=True)

    p = add("prompts", cmd_prompts, "write an evaluation prompt set CSV (and a JSON record of its source)")
    p.add_argument("--name", required=True)
    p.add_argument("--world", help="world.json (toy prompt sets)")
    p.add_argument(
        "--spec", type=json_object, default={"cache": "resources/prompts"}, help="the config's prompts section"
    )
    p.add_argument("--out", required=True)

    p = add("smoke-assets", cmd_smoke_assets, "tiny SD/SDXL pipelines, Pick-a-Pic shard, prompt files, scorers")
    p.add_argument("--out", required=True)

    p = add("base-model", cmd_base_model, "describe a pretrained Stable Diffusion base as a model directory")
    p.add_argument("--kind", required=True, choices=["sd", "sdxl"])
    p.add_argument("--pretrained", required=True, help="diffusers pipeline directory or hub id")
    p.add_argument("--vae", help="another VAE directory or hub id")
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--out", required=True)

    p = add("checkpoint", cmd_checkpoint, "resolve a released checkpoint on top of the base (config `checkpoints`)")
    p.add_argument("--name", required=True)
    p.add_argument("--spec", type=json_object, required=True, help="its checkpoints.<name> section")
    p.add_argument("--base", required=True, help="the run's base model directory")
    p.add_argument("--out", required=True)

    p = add("toy-pairs", cmd_toy_pairs, "sample base pairs, label them with the oracle -> Pick-a-Pic shard")
    p.add_argument("--model", required=True)
    p.add_argument("--world", required=True)
    p.add_argument("--spec", type=json_object, required=True, help='{"preferences", "seed", "device", "batch_size"}')
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)

    p = add("prepare", cmd_prepare, "Pick-a-Pic shards -> pairs.parquet (ties removed, corrupt pairs dropped)")
    p.add_argument("--shard", action="append", help="local parquet shard (repeatable); none: stream from the hub")
    p.add_argument(
        "--lock", action="store_true", help="local shards: record their hashes in the lock and check them on later runs"
    )
    p.add_argument("--repo", default="liuhuohuo2/pick-a-pic-v2", help="hub dataset to stream shards from")
    p.add_argument("--revision", default="main", help="branch, tag or commit of --repo (pinned in the lock)")
    p.add_argument("--split", default="train")
    p.add_argument("--max-shards", type=int, default=0, help="first N shards of the split (0: all)")
    p.add_argument(
        "--cache", default="resources/pickapic_v2", help="where downloaded shards and pickapic.lock.json are kept"
    )
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True, help="prepare.json with the counts and the source's record")
    p.add_argument("--label-source", required=True, help="who labelled the pairs, recorded in every pair")

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
