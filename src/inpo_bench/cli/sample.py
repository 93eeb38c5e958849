"""The sampling stage's command."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Add, json_object


def cmd_sample(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import torch

    from ..models.bundle import load_model, read_spec
    from ..runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from ..sample import SamplerSettings, generate, read_prompts, save_samples

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
            batch_size=settings.batch_size,  # the batches can change the float sums: what a re-draw needs
            dtype=dtype,
            model=str(args.model),
            prompts=str(args.prompts),
            prompt_source=prompt_source(args.prompts),
            resolution=model.resolution,
            clip_sample=bool(model.scheduler.config.get("clip_sample", False)),  # the scheduler's x0 clamp
            images=len(index),
            checkpoint=read_spec(args.model).get("checkpoint"),  # a released checkpoint: what and which commit
            wall_seconds=clock.seconds(),
        ),
    )
    write_csv(out / "index.csv", index)  # last: its presence marks a complete sample folder
    print(f"sampled {len(index)} images in {clock.seconds():.1f} s -> {out}")


def prompt_source(prompts_csv: str | Path) -> dict | None:
    """Where a prompt set came from (the prompts rule's JSON beside its CSV): file, origin and SHA-256."""
    import json

    record = Path(prompts_csv).with_suffix(".json")
    if not record.is_file():
        return None
    found = json.loads(record.read_text())
    return {k: found[k] for k in ("promptset", "source", "origin", "sha256", "count", "used") if k in found}


def register(add: Add) -> None:
    p = add("sample", cmd_sample, "generate images for a prompt set")
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--spec", type=json_object, required=True, help='{"steps", "guidance", "batch_size", "seeds", "device"}'
    )
    p.add_argument("--threads", type=int, default=1)
