"""Stage commands that measure the toy world itself: the base's headroom (best-of-n and the reward-tilted frontier
from its own samples) and each trained model's divergence from the base (the chain KL)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Add, json_object


def cmd_headroom(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import numpy as np
    import pandas as pd

    from ..models.bundle import load_model
    from ..runtime import Stopwatch, pick_device, provenance, write_csv, write_json
    from ..sample import SamplerSettings, generate, read_prompts
    from ..tables.headroom import headroom_table
    from ..toyworld.world import World

    spec, clock = args.spec, Stopwatch()
    world = World.load(args.world)
    prompts = read_prompts(args.prompts)
    model = load_model(args.model, pick_device(spec["device"]))
    seeds = [spec["seed"] + k for k in range(spec["samples_per_prompt"])]  # noise seeds of their own
    settings = SamplerSettings(steps=spec["steps"], guidance=spec["guidance"], batch_size=spec["batch_size"])
    rewards: dict[tuple[str, int], float] = {}
    for pid, seed, prompt, image in generate(model, prompts, seeds, settings):
        rewards[pid, seed] = world.score(image, prompt).reward
    matrix = np.array([[rewards[pid, s] for s in seeds] for pid, _ in prompts])
    table = headroom_table(args.name, matrix, spec["taus"])
    out = Path(args.out)
    write_csv(out, table)
    samples = pd.DataFrame([(pid, s, r) for (pid, s), r in rewards.items()], columns=["prompt_id", "seed", "reward"])
    write_csv(out.with_name(out.stem + "_rewards.csv"), samples)
    write_json(out.with_suffix(".json"), provenance(promptset=args.name, config=spec, wall_seconds=clock.seconds()))
    best = table[table.selection == "best_of_n"].set_index("n").gain
    print(
        f"headroom of the base on {args.name}: mean reward {matrix.mean():.4f}; best-of-2 / 4 / 8 "
        + " / ".join(f"{best.get(n, np.nan):+.4f}" for n in (2, 4, 8))
        + f" ({len(prompts)} prompts x {len(seeds)} samples) -> {out}"
    )


def cmd_divergence(args: argparse.Namespace) -> None:
    from ..runtime import set_threads

    set_threads(args.threads)
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    from ..divergence import divergence
    from ..models.bundle import load_model
    from ..runtime import Stopwatch, pick_device, provenance, write_json

    clock = Stopwatch()
    device = pick_device(args.device)
    model, base = load_model(args.model, device), load_model(args.base, device)
    folder = Path(args.samples)
    index = pd.read_csv(folder / "index.csv", dtype={"prompt_id": str}, keep_default_na=False)
    images = np.stack([np.asarray(Image.open(folder / f).convert("RGB")) for f in index.file])
    with torch.no_grad():
        x0 = model.images_to_x0(images).to(device)  # as training encodes images (the VAE's mean for a latent world)
        context = model.encode_prompts(list(index.prompt)).to(device)

    def eps(which):
        return lambda x, t, ctx: which.eps(which.unet, x, t, ctx)

    result = divergence(eps(model), eps(base), x0, context, model.alphas_cumprod.to(device), args.points, args.seed)
    record = provenance(**result, model=args.model, base=args.base, samples=str(folder), wall_seconds=clock.seconds())
    write_json(args.out, record)
    print(f"divergence of {args.model} from {args.base}: chain KL {result['chain_kl']:.4g} nats -> {args.out}")


def register(add: Add) -> None:
    p = add("headroom", cmd_headroom, "the base's best-of-n and reward-tilted frontier on a toy prompt set")
    p.add_argument("--model", required=True, help="the base model directory")
    p.add_argument("--world", required=True)
    p.add_argument("--prompts", required=True, help="the prompt set's CSV")
    p.add_argument("--name", required=True, help="the prompt set's name")
    p.add_argument(
        "--spec",
        type=json_object,
        required=True,
        help='{"samples_per_prompt", "seed", "taus", "steps", "guidance", "batch_size", "device"}',
    )
    p.add_argument("--out", required=True, help="headroom/<promptset>.csv (+ _rewards.csv and .json beside it)")
    p.add_argument("--threads", type=int, default=1)

    p = add("divergence", cmd_divergence, "a trained model's chain KL from its base, on its own samples")
    p.add_argument("--model", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--samples", required=True, help="the model's samples folder (index.csv)")
    p.add_argument("--points", type=int, default=100, help="noise levels of the quadrature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
