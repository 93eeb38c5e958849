"""Stage commands of training: the toy base, every registered method, the toy reward model."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import Add, json_object


def _write_training_record(out: str | Path, log: Any, evals: Any | None, **record: Any) -> Path:
    """A finished training's logs (eval_log.csv: only a header when nothing measured the model; none for the toy
    VAE) and train.json (provenance + final loss); the model itself is saved after."""
    import pandas as pd

    from ..runtime import provenance, write_csv, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "train_log.csv", log)
    if evals is not None:
        write_csv(out / "eval_log.csv", evals if len(evals.columns) else pd.DataFrame(columns=["step"]))
    write_json(out / "train.json", provenance(**record, final_loss=float(log["loss"].iloc[-1])))
    return out


def cmd_pretrain(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import torch

    from ..methods.objectives import Pretrain
    from ..models.bundle import save_full_model
    from ..models.tiny import build_toy_model
    from ..runtime import Stopwatch, file_identity, fingerprint, make_accelerator
    from ..scorers.oracle import OracleProgress
    from ..toyworld.world import World
    from ..train import TrainSettings, clear_checkpoints, train

    spec, clock = args.spec, Stopwatch()
    world, arch, cfg, seed = World.load(args.world), spec["toy_model"], spec["pretrain"], spec["seed"]
    vae = None
    if arch.get("vae"):  # the latent toy world: the frozen autoencoder of the toy_vae rule
        from diffusers import AutoencoderKL

        if not args.vae:
            raise SystemExit("toy_model.vae is set: pretrain needs --vae (the toy_vae rule's output)")
        vae = AutoencoderKL.from_pretrained(args.vae).eval().requires_grad_(False)
    torch.manual_seed(seed)  # initial weights
    model = build_toy_model(arch, world.words, world.resolution, vae)
    images, captions = pretraining_set(world, cfg, seed)
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


def pretraining_set(world: Any, cfg: dict[str, Any], seed: int) -> tuple[Any, list[str]]:
    """The toy base's pretraining renders and captions (config `pretrain`); the toy VAE trains on the same ones."""
    return world.pretraining_set(
        cfg["images"], cfg["nuisance"], cfg["wrong_caption_rate"], seed, cfg.get("learned_flaws")
    )


def cmd_toy_vae(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import numpy as np
    import torch

    from ..models.toy_vae import VAEPretrain, build_vae, scaling_factor
    from ..runtime import Stopwatch, fingerprint, make_accelerator
    from ..scorers.oracle import oracle_quality
    from ..toyworld.world import World
    from ..train import TrainSettings, clear_checkpoints, train

    spec, clock = args.spec, Stopwatch()
    world, seed, cfg = World.load(args.world), spec["seed"], spec["toy_model"]["vae"]
    images, captions = pretraining_set(world, spec["pretrain"], seed)
    torch.manual_seed(seed)
    vae = build_vae(cfg, world.resolution)
    objective = VAEPretrain(vae, images, cfg["kl_weight"], cfg["latent_noise"], cfg["batch_size"])
    settings = TrainSettings(steps=cfg["steps"], lr=cfg["lr"], weight_decay=0.0, seed=seed)
    log, _ = train(objective, settings, args.scratch, make_accelerator(spec["device"]), fingerprint=fingerprint(**spec))
    vae.to("cpu").eval()
    vae.register_to_config(scaling_factor=scaling_factor(vae, images))
    with torch.no_grad():  # how well it reconstructs: the oracle on a slice of the data and on its reconstruction
        x = torch.from_numpy(images[:512]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        decoded = vae.decode(vae.encode(x).latent_dist.mean).sample
    rebuilt = ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    quality = {
        "data": oracle_quality(list(images[:512]), captions[:512], world),
        "reconstructed": oracle_quality(list(rebuilt), captions[:512], world),
        "pixel_rmse": float(np.sqrt(((rebuilt.astype(np.float64) - images[:512]) ** 2).mean()) / 255),
    }
    out = _write_training_record(
        args.out, log, None, method="toy_vae", config=spec, quality=quality, wall_seconds=clock.seconds()
    )
    vae.save_pretrained(out)
    clear_checkpoints(args.scratch)
    print(
        f"toy VAE in {clock.seconds():.0f} s: oracle reward data {quality['data']['reward']:.3f}, reconstructed "
        f"{quality['reconstructed']['reward']:.3f}; scaling factor {vae.config.scaling_factor:.4f} -> {out}"
    )


def _pair_source(spec: dict[str, Any], args: argparse.Namespace, model: Any, losers: bool) -> Any:
    """The training pairs as the config's data.encoding asks: in memory, memory-mapped from disk, or per batch."""
    from ..data.pairs import EncodedPairs, LazyPairs, load_pair_data

    data = spec["data"]
    if data["encoding"] == "disk":
        return EncodedPairs(args.encoded, data["flip"], losers, args.workers)
    if data["encoding"] == "per_batch":
        return LazyPairs(args.pairs, model, data["flip"], losers, args.workers)
    return load_pair_data(args.pairs, model, data["flip"], losers)


def cmd_train(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    from dataclasses import replace

    import torch

    from ..data.source import data_identity
    from ..methods import Context, get
    from ..models.bundle import load_model, save_derived_model
    from ..runtime import Stopwatch, file_identity, fingerprint, make_accelerator
    from ..train import TrainSettings, clear_checkpoints, train

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
        from ..data.pair_scores import PairScores

        if not args.pair_scores:
            raise SystemExit(f"--method {args.method} needs --pair-scores (the score_pairs rule's output)")
        pair_scores = PairScores(args.pair_scores, args.pairs)
    objective = method.build(Context(model.unet, data, cfg, model, reference_dtype=half, pair_scores=pair_scores))
    progress = _progress(args, spec, model) if accelerator.is_main_process else None  # it measures on rank 0
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
        eval_every=cfg.get("eval_every", 0) if args.eval_every is None else args.eval_every,
        fingerprint=stamp,
    )
    if not accelerator.is_main_process:
        return
    if "settings" in evals and hasattr(progress, "fingerprint"):  # resumed after the progress settings changed
        stale = evals.settings != progress.fingerprint
        if stale.any():
            print(f"eval_log: {int(stale.sum())} measurement(s) of earlier progress settings left out")
        evals = evals[~stale].reset_index(drop=True)
    out = _write_training_record(
        args.out,
        log,
        evals,
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
        data_source=data_identity(Path(args.pairs).with_name("prepare.json")),
        progress_eval=progress.describe() if hasattr(progress, "describe") else None,
        wall_seconds=clock.seconds(),
    )
    model.unet.to("cpu", torch.float32)
    save_derived_model(out, model.unet, args.init)  # last: model.json marks the directory complete
    clear_checkpoints(args.scratch)
    summary = f"trained {args.method} for {len(log)} steps in {clock.seconds():.0f} s"
    if progress is not None:
        first, last = evals.iloc[0], evals.iloc[-1]
        what = "oracle reward" if "reward" in evals else f"{last['scorer']} on the progress prompts"
        value = "reward" if "reward" in evals else "score"
        summary += f"; {what} {first[value]:.3f} -> {last[value]:.3f}"
    print(summary)


def _progress(args: argparse.Namespace, spec: dict[str, Any], model: Any) -> Any:
    """What measures the model during training: the toy world's oracle, paper scale's scorer, or nothing."""
    if args.world:
        from ..config import TOY_PROGRESS_KEYS
        from ..scorers.oracle import OracleProgress
        from ..toyworld.world import World

        progress = spec["progress_eval"]
        settings = {k: progress[k] for k in (*TOY_PROGRESS_KEYS, "seeds") if k in progress}
        return OracleProgress(model, World.load(args.world), **settings)
    if args.progress == "none":
        return None
    import base64
    import json

    from ..data.prompts import build_promptset
    from ..scorers.progress import ScoredProgress, spread

    p = json.loads(base64.b64decode(args.progress))
    frame, _ = build_promptset(p["promptset"], None, {**p["prompt_sources"], "limit": 0})
    return ScoredProgress(
        model,
        spread(frame, p["prompts"]),
        p["scorer"],
        p["scorer_spec"],
        seed=p["seed"],
        steps=p["steps"],
        guidance=p["guidance"],
        batch_size=p["batch_size"],
        dtype=p["dtype"],
        scorer_dtype=p["scorer_dtype"],
        score_batch_size=p["score_batch_size"],
    )


def cmd_toy_reward(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    from transformers import CLIPTokenizer

    from ..models import toy_reward
    from ..runtime import Stopwatch, provenance

    clock = Stopwatch()
    tokenizer = CLIPTokenizer.from_pretrained(Path(args.base) / "tokenizer")
    model, record = toy_reward.train(args.pairs, tokenizer, args.spec["toy_reward"], args.spec["seed"])
    final = record["log"][-1]
    toy_reward.save(args.out, model, tokenizer, provenance(**record, config=args.spec, wall_seconds=clock.seconds()))
    print(
        f"toy reward model: {record['pairs']} pairs, loss {final['loss']:.3f}, held-out pair accuracy "
        f"{final['held_out_accuracy']:.3f} ({record['held_out_pairs']} pairs) -> {args.out}"
    )


def register(add: Add) -> None:
    p = add("toy-vae", cmd_toy_vae, "train the latent toy world's autoencoder on the pretraining renders")
    p.add_argument("--world", required=True)
    p.add_argument("--spec", type=json_object, required=True, help='{"toy_model", "pretrain", "seed", "device"}')
    p.add_argument("--out", required=True, help="the VAE's folder (diffusers layout)")
    p.add_argument("--scratch", required=True, help="checkpoint directory (kept across failed attempts)")
    p.add_argument("--threads", type=int, default=1)

    p = add("pretrain", cmd_pretrain, "pretrain the toy base model from scratch")
    p.add_argument("--world", required=True)
    p.add_argument("--vae", help="the latent toy world's autoencoder (toy_model.vae; the toy_vae rule's output)")
    p.add_argument(
        "--spec", type=json_object, required=True, help='{"toy_model", "pretrain", "progress_eval", "seed", "device"}'
    )
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--scratch", required=True, help="checkpoint directory (kept across failed attempts)")
    p.add_argument("--threads", type=int, default=1)

    p = add("train", cmd_train, "train an aligned model with a registered method on preference pairs")
    p.add_argument("--method", required=True, help="a registered method (inpo_bench.methods): sft, dpo, inpo, ...")
    p.add_argument("--init", required=True, help="model directory the policy and reference start from")
    p.add_argument("--pairs", required=True, help="pairs.parquet")
    p.add_argument(
        "--spec",
        type=json_object,
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
    p.add_argument("--eval-every", type=int, help="steps between progress measurements (default: the method's)")
    p.add_argument(
        "--progress", default="none", help="paper scale: the progress measurements' settings, base64 JSON; none: off"
    )
    p.add_argument("--out", required=True, help="model directory")
    p.add_argument("--scratch", required=True, help="checkpoint directory (kept across failed attempts)")
    p.add_argument("--threads", type=int, default=1)

    p = add("toy-reward", cmd_toy_reward, "train the toy world's reward model (its PickScore) on the toy pairs")
    p.add_argument("--pairs", required=True)
    p.add_argument("--base", required=True, help="the toy base model directory (its tokenizer)")
    p.add_argument("--spec", type=json_object, required=True, help='{"toy_reward": {...}, "seed": N}')
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
