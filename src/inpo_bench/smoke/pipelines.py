"""Tiny random Stable Diffusion 1.5 and SDXL pipelines and a tiny Pick-a-Pic v2 shard, in the real formats.

They let the paper-scale code path (VAE latents, one or two text encoders, SDXL's extra conditioning, Pick-a-Pic
preparation) run end to end on a CPU in seconds: `inpo-bench smoke-assets` writes them, config/smoke-sd.yaml uses
them. The pipelines are saved with diffusers' own `StableDiffusionPipeline` / `StableDiffusionXLPipeline`
`save_pretrained`, so they load exactly like downloaded checkpoints.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..models.tokenizer import build_clip_tokenizer
from ..toyworld.preferences import PICKAPIC_SCHEMA

WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "car", "on", "the", "street", "painting", "in", "style"]
SD_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}
RESOLUTION = 32  # pixels; the VAE halves it once


def _vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(16, 32),
        latent_channels=4,
        norm_num_groups=8,
        sample_size=RESOLUTION,
        scaling_factor=0.18215,
    )


def _text_encoder(vocab: int, tokenizer, cls=CLIPTextModel, projection: int | None = None):
    config = CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=projection or 32,
    )
    return cls(config)


def _unet(cross_attention_dim: int, sdxl: bool) -> UNet2DConditionModel:
    extra = (
        {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": 32 + 6 * 8,
        }
        if sdxl
        else {}
    )
    return UNet2DConditionModel(
        sample_size=RESOLUTION // 2,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=2,
        norm_num_groups=8,
        **extra,
    )


def build_sd15(out: str | Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(WORDS, 77)
    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer), tokenizer),
        tokenizer=tokenizer,
        unet=_unet(32, sdxl=False),
        scheduler=PNDMScheduler(**SD_SCHEDULE, skip_prk_steps=True),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out)
    return Path(out)


def build_sdxl(out: str | Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    tokenizer = build_clip_tokenizer(WORDS, 77)
    pipe = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=_text_encoder(len(tokenizer), tokenizer),
        text_encoder_2=_text_encoder(len(tokenizer), tokenizer, CLIPTextModelWithProjection, projection=32),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=_unet(64, sdxl=True),
        scheduler=EulerDiscreteScheduler(**SD_SCHEDULE, timestep_spacing="leading"),
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(out)
    return Path(out)


def _jpeg(rng: np.random.Generator, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def build_pickapic_shard(out: str | Path, rows: int = 24, seed: int = 0) -> Path:
    """A Pick-a-Pic v2 train shard: JPEGs of mixed sizes, a tie (row 1) and a truncated image (row 2)."""
    rng = np.random.default_rng(seed)
    captions = [f"a photo of a {rng.choice(['red', 'blue'])} {rng.choice(['cat', 'dog', 'car'])}" for _ in range(rows)]
    records = []
    for i, caption in enumerate(captions):
        b0 = _jpeg(rng, int(rng.integers(36, 64)), int(rng.integers(36, 64)))
        b1 = _jpeg(rng, int(rng.integers(36, 64)), int(rng.integers(36, 64)))
        label = 0.5 if i == 1 else float(rng.integers(0, 2))
        if i == 2:
            b1 = b1[: len(b1) // 3]
        records.append(
            {
                "are_different": True,
                "best_image_uid": "",
                "caption": caption,
                "created_at": pd.Timestamp("2023-05-01"),
                "has_label": True,
                "image_0_uid": f"{i}a",
                "image_0_url": "",
                "image_1_uid": f"{i}b",
                "image_1_url": "",
                "jpg_0": b0,
                "jpg_1": b1,
                "label_0": label,
                "label_1": 1.0 - label,
                "model_0": "sdxl",
                "model_1": "sd15",
                "ranking_id": 1000 + i,
                "user_id": 7,
                "num_example_per_prompt": 1,
            }
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(
        pd.DataFrame(records, columns=PICKAPIC_SCHEMA.names), schema=PICKAPIC_SCHEMA, preserve_index=False
    )
    pq.write_table(table, out, row_group_size=8)
    return out
