"""Tiny diffusers / transformers models for the toy world, built from the `toy_model` config section.

The architecture is Stable Diffusion's (UNet2DConditionModel with cross-attention on a CLIPTextModel), shrunk to
about 1 M UNet parameters and run in pixel space, which is what 2 CPU cores can train in minutes.
"""

from __future__ import annotations

from typing import Any

from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .bundle import T2IModel
from .tokenizer import build_clip_tokenizer


def build_unet(cfg: dict[str, Any], resolution: int, channels: int = 3) -> UNet2DConditionModel:
    """The denoiser on `resolution` x `resolution` x `channels` inputs (pixels, or a VAE's latents)."""
    n = len(cfg["block_out_channels"])
    return UNet2DConditionModel(
        sample_size=resolution,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(cfg["block_out_channels"]),
        layers_per_block=cfg["layers_per_block"],
        # the highest resolution level stays convolutional; cross-attention from the second level down
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=cfg["text_hidden_size"],
        attention_head_dim=cfg["attention_heads"],  # diffusers' legacy name: this is the number of heads
        norm_num_groups=cfg["norm_num_groups"],
    )


def build_text_encoder(cfg: dict[str, Any], tokenizer: CLIPTokenizer) -> CLIPTextModel:
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg["text_hidden_size"],
        intermediate_size=cfg["text_intermediate_size"],
        num_hidden_layers=cfg["text_layers"],
        num_attention_heads=cfg["text_heads"],
        max_position_embeddings=cfg["text_max_length"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def build_scheduler(cfg: dict[str, Any], resolution: int) -> DDIMScheduler:
    """The noise schedule, stored in DDIM form like Stable Diffusion's `scheduler/` folder; `sd_matched` is
    stored as its betas (toyworld/schedule.py)."""
    named: dict[str, Any] = {"beta_schedule": cfg["beta_schedule"]}
    if cfg["beta_schedule"] == "sd_matched":
        from ..toyworld import schedule

        abar = schedule.sd_matched(resolution, cfg["train_timesteps"], cfg.get("snr_taper_from", 0.8))
        named = {"trained_betas": schedule.betas(abar).tolist()}
    return DDIMScheduler(
        num_train_timesteps=cfg["train_timesteps"],
        beta_start=cfg["beta_start"],
        beta_end=cfg["beta_end"],
        **named,
        clip_sample=cfg.get("clip_sample", False),  # pixel space: x0 predictions clamped to [-1, 1] in sampling
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def build_toy_model(cfg: dict[str, Any], words: list[str], resolution: int, vae: Any = None) -> T2IModel:
    """A freshly initialised toy model (uses the global torch seed): offline tokenizer, text encoder, UNet, schedule;
    with a (trained, frozen) `vae` the UNet works on its latents (kind `latent`), never clamping them."""
    tokenizer = build_clip_tokenizer(words, cfg["text_max_length"])
    if vae is None:
        unet, kind, schedule = build_unet(cfg, resolution), "pixel", cfg
    else:
        side = resolution // 2 ** (len(vae.config.block_out_channels) - 1)
        unet, kind = build_unet(cfg, side, vae.config.latent_channels), "latent"
        schedule = {**cfg, "clip_sample": False}
    return T2IModel(
        kind=kind,
        resolution=resolution,
        unet=unet,
        text_encoder=build_text_encoder(cfg, tokenizer),
        tokenizer=tokenizer,
        scheduler=build_scheduler(schedule, resolution),
        vae=vae,
    )
