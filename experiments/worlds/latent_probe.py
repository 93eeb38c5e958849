"""Probe: can a latent toy world (a tiny VAE trained once on the pretraining renders, a UNet on its latents) give a
base whose samples look like its data, learned flaws included, within minutes on 2 CPU cores?

    python experiments/worlds/latent_probe.py --configfile experiments/worlds/p1-swap.yaml --out /tmp/latent

Stage 1 trains an AutoencoderKL on the world's pretraining set and scores its reconstructions with the oracle.
Stage 2 pretrains a latent UNet (and the text encoder) with the project's Pretrain objective and trainer on the VAE's
latents (posterior means times a scaling factor that gives them unit variance, as SD's 0.18215), then samples every
seen prompt with the project's sampler and scores the decoded images: reward, colours, shape, the swap mode,
clean / sharp, against the same numbers for the pretraining data itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.methods.objectives import Pretrain  # noqa: E402
from inpo_bench.models.bundle import T2IModel  # noqa: E402
from inpo_bench.models.tiny import build_scheduler, build_text_encoder  # noqa: E402
from inpo_bench.models.tokenizer import build_clip_tokenizer  # noqa: E402
from inpo_bench.sample import SamplerSettings, generate  # noqa: E402
from inpo_bench.toyworld.grammar import parse_prompt  # noqa: E402
from inpo_bench.toyworld.oracle import _nearest_palette, read_object  # noqa: E402
from inpo_bench.toyworld.world import World  # noqa: E402
from inpo_bench.train import TrainSettings, train  # noqa: E402


def terms(world: World, images: np.ndarray, prompts: list[str]) -> dict[str, float]:
    scores = [world.score(im, p) for im, p in zip(images, prompts)]
    swapped = 0
    for im, p in zip(images, prompts):
        c = parse_prompt(p)
        bg, fg, _ = read_object(im.astype(np.float64) / 255)
        swapped += fg is not None and _nearest_palette(fg) == c.bg and _nearest_palette(bg) == c.fg
    mean = {k: float(np.mean([getattr(s, k) for s in scores])) for k in ("reward", "fidelity", "aesthetic", "clean")}
    mean |= {k: float(np.mean([getattr(s, k) for s in scores])) for k in ("sharp", "fg_correct", "bg_correct")}
    mean["shape_correct"] = float(np.mean([s.shape_correct for s in scores]))
    mean["swapped"] = swapped / len(images)
    return {k: round(v, 4) for k, v in mean.items()}


def build_vae(factor: int, widths: list[int]) -> AutoencoderKL:
    levels = {2: 2, 4: 3}[factor]
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(widths[:levels]),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=16,
    )


def train_vae(
    vae: AutoencoderKL, x: torch.Tensor, steps: int, batch: int, lr: float, kl: float, noise: float
) -> list[float]:
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        posterior = vae.encode(x[idx]).latent_dist
        z = posterior.sample(generator=g)
        if noise > 0:  # the decoder learns to map latents near the data's onto clean renders
            z = z + noise * z.detach().std() * torch.randn(z.shape, generator=g)
        recon = vae.decode(z).sample
        loss = (recon - x[idx]).pow(2).mean() + kl * posterior.kl().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(1, steps // 10) == 0:
            print(f"vae step {step + 1}/{steps} loss {np.mean(losses[-50:]):.5f}", flush=True)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configfile", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--factor", type=int, default=2, choices=[2, 4])
    parser.add_argument("--vae-widths", type=int, nargs="+", default=[32, 64, 64])
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--vae-kl", type=float, default=1e-6)
    parser.add_argument("--latent-noise", type=float, default=0.0, help="decoder input noise, times the latent std")
    parser.add_argument("--unet-widths", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(REPO / "config" / "config.yaml", args.configfile)
    world = World.from_config(cfg["world"], cfg["seed"])
    pre = cfg["pretrain"]
    images, captions = world.pretraining_set(
        pre["images"], pre["nuisance"], pre["wrong_caption_rate"], cfg["seed"], pre.get("learned_flaws")
    )
    report: dict = {"data": terms(world, images[:1024], captions[:1024])}
    print("data", report["data"], flush=True)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1

    torch.manual_seed(0)
    vae = build_vae(args.factor, args.vae_widths)
    clock = time.perf_counter()
    train_vae(vae, x, args.vae_steps, 64, 1e-3, args.vae_kl, args.latent_noise)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i : i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
        recon = torch.cat([vae.decode(latents[i : i + 256]).sample for i in range(0, 1024, 256)])
    rec_images = ((recon.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    report["vae_seconds"] = round(time.perf_counter() - clock, 1)
    report["reconstructions"] = terms(world, rec_images, captions[:1024])
    scale = float(1 / latents.std())
    print("reconstructions", report["reconstructions"], "scaling", scale, flush=True)
    vae.register_to_config(scaling_factor=scale)

    arch = {**cfg["toy_model"]}
    tokenizer = build_clip_tokenizer(world.words, arch["text_max_length"])
    n = len(args.unet_widths)
    unet = UNet2DConditionModel(
        sample_size=16 // args.factor,
        in_channels=4,
        out_channels=4,
        block_out_channels=tuple(args.unet_widths),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=arch["text_hidden_size"],
        attention_head_dim=arch["attention_heads"],
        norm_num_groups=8,
    )
    model = T2IModel(
        kind="sd",
        resolution=16,
        unet=unet,
        text_encoder=build_text_encoder(arch, tokenizer),
        tokenizer=tokenizer,
        scheduler=build_scheduler({**arch, "clip_sample": False}, 16),
        vae=vae,
    )
    print("unet parameters", sum(p.numel() for p in unet.parameters()), flush=True)
    objective = Pretrain(model, images, captions, pre["caption_dropout"], args.batch)
    settings = TrainSettings(
        steps=args.steps, lr=args.lr, warmup_steps=50, weight_decay=0.01, adam_beta2=0.99, ema_decay=0.999, seed=0
    )
    clock = time.perf_counter()
    log, _ = train(objective, settings, out / "scratch")
    report["unet_seconds"] = round(time.perf_counter() - clock, 1)
    prompts = [(c.id, c.prompt) for c in world.seen]
    clock = time.perf_counter()
    items = list(generate(model, prompts, list(range(args.seeds)), SamplerSettings(20, 4.0, 64)))
    report["sample_seconds"] = round(time.perf_counter() - clock, 1)
    report["base"] = terms(world, np.stack([i[3] for i in items]), [i[2] for i in items])
    report["final_loss"] = float(log.loss.tail(50).mean())
    print("base", report["base"], flush=True)
    rows = [
        np.concatenate(
            [np.kron(items[j][3], np.ones((4, 4, 1), np.uint8)) for j in range(i * args.seeds, (i + 1) * args.seeds)], 1
        )
        for i in range(min(12, len(prompts)))
    ]
    from PIL import Image

    Image.fromarray(np.concatenate(rows, 0)).save(out / "grid.png")
    (out / "report.json").write_text(json.dumps({**report, "args": vars(args)}, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
