"""One text-to-image model on disk: `model.json` plus diffusers / transformers `save_pretrained` folders.

A model directory holds its own `unet/` when it was trained here, and names where the frozen components
(text encoder, tokenizer, scheduler) come from: itself (the toy base), the base model's directory (every model
trained from it, as a path relative to the model directory) or a pretrained pipeline (a local path or hub id).
So an aligned model is a UNet on top of its base, like the public DPO and InPO checkpoints.

model.json:
    {"format": 1, "kind": "pixel", "resolution": 16, "components": ".", "unet": "unet"}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from ..errors import ModelError

MODEL_FILE = "model.json"
FORMAT_VERSION = 1
KINDS = ("pixel",)


@dataclass
class T2IModel:
    """The components every stage needs: denoiser, text conditioning, noise schedule, image <-> x0 codec."""

    kind: str
    resolution: int
    unet: UNet2DConditionModel
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.scheduler.alphas_cumprod

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def x0_shape(self) -> tuple[int, int, int]:
        return (self.unet.config.in_channels, self.resolution, self.resolution)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids

    def encode_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(self.text_encoder.device)).last_hidden_state

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        return self.encode_tokens(self.tokenize(prompts))

    def images_to_x0(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        return x / 127.5 - 1.0

    @staticmethod
    def x0_to_images(x0: torch.Tensor) -> np.ndarray:
        """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), rounding to nearest."""
        x = ((x0.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()


def read_spec(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{path} does not exist: {model_dir} is not a finished model directory (rerun its rule)")
    spec = json.loads(path.read_text())
    if spec.get("format") != FORMAT_VERSION or spec.get("kind") not in KINDS:
        raise ModelError(f"{path}: unsupported format {spec.get('format')!r} / kind {spec.get('kind')!r}")
    return spec


def _components_location(model_dir: Path, spec: dict[str, Any]) -> Path:
    location = model_dir / spec["components"]
    if not location.is_dir():
        raise ModelError(f"{model_dir / MODEL_FILE}: components directory {location} does not exist")
    return location


def load_model(model_dir: str | Path, device: str | torch.device = "cpu") -> T2IModel:
    """Load a model directory; everything in eval mode on `device`."""
    model_dir = Path(model_dir)
    spec = read_spec(model_dir)
    components = _components_location(model_dir, spec)
    unet_dir = model_dir / spec["unet"] if spec.get("unet") else components / "unet"
    for required in (unet_dir, components / "text_encoder", components / "tokenizer", components / "scheduler"):
        if not required.is_dir():
            raise ModelError(f"{model_dir / MODEL_FILE}: missing component folder {required}")
    model = T2IModel(
        kind=spec["kind"],
        resolution=int(spec["resolution"]),
        unet=UNet2DConditionModel.from_pretrained(unet_dir, use_safetensors=True),
        text_encoder=CLIPTextModel.from_pretrained(components / "text_encoder", use_safetensors=True),
        tokenizer=CLIPTokenizer.from_pretrained(components / "tokenizer"),
        scheduler=DDIMScheduler.from_pretrained(components / "scheduler"),
    )
    model.unet.to(device).eval()
    model.text_encoder.to(device).eval()
    return model


def save_full_model(model_dir: str | Path, model: T2IModel, extra: dict[str, Any] | None = None) -> None:
    """Save every component into model_dir (a base trained from scratch)."""
    model_dir = Path(model_dir)
    model.unet.save_pretrained(model_dir / "unet")
    model.text_encoder.save_pretrained(model_dir / "text_encoder")
    model.tokenizer.save_pretrained(model_dir / "tokenizer")
    model.scheduler.save_pretrained(model_dir / "scheduler")
    _write_spec(
        model_dir, {"kind": model.kind, "resolution": model.resolution, "components": ".", "unet": "unet"}, extra
    )


def save_derived_model(
    model_dir: str | Path, unet: UNet2DConditionModel, parent_dir: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """Save a trained UNet whose frozen components are those of parent_dir (referenced, not copied)."""
    model_dir, parent_dir = Path(model_dir), Path(parent_dir)
    parent = read_spec(parent_dir)
    components = os.path.relpath(_components_location(parent_dir, parent), model_dir)
    unet.save_pretrained(model_dir / "unet")
    _write_spec(
        model_dir,
        {"kind": parent["kind"], "resolution": parent["resolution"], "components": components, "unet": "unet"},
        extra,
    )


def _write_spec(model_dir: Path, spec: dict[str, Any], extra: dict[str, Any] | None) -> None:
    # model.json is written last and atomically: its presence marks a complete model directory
    payload = {"format": FORMAT_VERSION, **spec, **(extra or {})}
    tmp = model_dir / (MODEL_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(model_dir / MODEL_FILE)
