"""One text-to-image model on disk: `model.json` plus diffusers / transformers `save_pretrained` folders.

A model directory holds its own `unet/` when it was trained here, and names where the frozen components come
from: itself (the toy base), the base model's directory (every model trained from it, as a path relative to the
model directory), or a pretrained Stable Diffusion pipeline (a local directory in the diffusers layout, or a hub
id). So an aligned model is a UNet on top of its base, like the public DPO and InPO checkpoints.

model.json:
    {"format": 1, "kind": "pixel", "resolution": 16, "components": ".", "unet": "unet"}
    {"format": 1, "kind": "sd", "resolution": 512, "components": "runwayml/stable-diffusion-v1-5", "unet": null}
    {"format": 1, "kind": "sdxl", "resolution": 1024, "components": "...", "unet": "unet",
     "vae": "madebyollin/sdxl-vae-fp16-fix"}

Kinds: `pixel` (a toy world in pixel space: no autoencoder, one CLIP text encoder), `latent` (a toy world in latent
space: the toy's text encoder and UNet on the latents of a tiny VAE trained once on its renders, models/toy_vae.py),
`sd` (Stable Diffusion 1.x/2.x: VAE and one CLIP text encoder, its last hidden state), `sdxl` (two text encoders,
their penultimate hidden states concatenated, the second's pooled embedding and the size/crop time ids as extra UNet
conditioning).

Text conditioning is one tensor per prompt, `context`. For SDXL it carries the pooled embedding as one extra
row (zero-padded), so that everything downstream (batching, caption dropout, CFG) handles a single tensor and
only `T2IModel.eps` needs to know the layout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ..errors import ModelError

MODEL_FILE = "model.json"
FORMAT_VERSION = 1
KINDS = ("pixel", "latent", "sd", "sdxl")
TOY_KINDS = ("pixel", "latent")  # trained here from scratch on renders of the toy world's exact resolution


@dataclass
class T2IModel:
    """The components every stage needs: denoiser, text conditioning, noise schedule, image <-> x0 codec."""

    kind: str
    resolution: int
    unet: UNet2DConditionModel | None  # None: loaded without it, for jobs that only encode (data/encode.py)
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDIMScheduler
    vae: AutoencoderKL | None = None
    text_encoder_2: CLIPTextModelWithProjection | None = None
    tokenizer_2: CLIPTokenizer | None = None
    zero_uncond: bool = False  # SDXL's force_zeros_for_empty_prompt: CFG's unconditional context is zeros

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.scheduler.alphas_cumprod

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1) if self.vae is not None else 1

    @property
    def x0_shape(self) -> tuple[int, int, int]:
        side = self.resolution // self.latent_factor
        if self.unet is not None:
            channels = self.unet.config.in_channels
        else:
            channels = self.vae.config.latent_channels if self.vae is not None else 3
        return (channels, side, side)

    def frozen_modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.text_encoder, self.text_encoder_2, self.vae) if m is not None]

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> T2IModel:
        """Move everything to `device`; with `dtype`, the UNet and text encoders too (the VAE stays float32:
        SD's VAEs overflow in float16)."""
        for module in (self.unet, *self.frozen_modules()):
            if module is not None:
                module.to(device)
        if dtype is not None:
            for module in (self.unet, self.text_encoder, self.text_encoder_2):
                if module is not None:
                    module.to(dtype)
        return self

    # --- text ---------------------------------------------------------------------------------------------

    def tokenize(self, prompts: list[str], tokenizer: CLIPTokenizer | None = None) -> torch.Tensor:
        tokenizer = tokenizer or self.tokenizer
        return tokenizer(
            prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids

    def encode_tokens(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The first text encoder's last hidden state (pixel and sd kinds; differentiable for pretraining)."""
        return self.text_encoder(input_ids.to(self.text_encoder.device)).last_hidden_state

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> context tensors (N, L, D); SDXL: (N, L + 1, D) with the pooled embedding as the last row."""
        if self.kind != "sdxl":
            return self.encode_tokens(self.tokenize(prompts))
        device = self.text_encoder.device
        first = self.text_encoder(self.tokenize(prompts).to(device), output_hidden_states=True)
        second = self.text_encoder_2(self.tokenize(prompts, self.tokenizer_2).to(device), output_hidden_states=True)
        hidden = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
        pooled = torch.zeros_like(hidden[:, :1])
        pooled[:, 0, : second.text_embeds.shape[-1]] = second.text_embeds
        return torch.cat([hidden, pooled], dim=1)

    @torch.no_grad()
    def null_context(self) -> torch.Tensor:
        """The unconditional context of classifier-free guidance at sampling, (L, D)."""
        context = self.encode_prompts([""])[0]
        return torch.zeros_like(context) if self.zero_uncond else context

    def eps(self, unet: torch.nn.Module, x: torch.Tensor, t: torch.Tensor | int, context: torch.Tensor) -> torch.Tensor:
        """The noise prediction (float32) of `unet` (the policy, the reference or this model's own) for this kind.

        Inputs are cast to the UNet's dtype, so a half-precision reference or sampler needs no special casing.
        """
        dtype = unet.dtype
        x, context = x.to(dtype), context.to(dtype)
        if self.kind != "sdxl":
            return unet(x, t, encoder_hidden_states=context).sample.float()
        pooled_dim = self.text_encoder_2.config.projection_dim
        r = self.resolution
        time_ids = torch.tensor([r, r, 0, 0, r, r], dtype=dtype, device=x.device).expand(len(x), 6)
        extra = {"text_embeds": context[:, -1, :pooled_dim], "time_ids": time_ids}
        return unet(x, t, encoder_hidden_states=context[:, :-1], added_cond_kwargs=extra).sample.float()

    # --- images -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def images_to_x0(self, images: np.ndarray, batch_size: int = 16) -> torch.Tensor:
        """uint8 (N, H, W, 3) at the model's resolution -> x0: pixels in [-1, 1], or the VAE latent mean times
        its scaling factor (deterministic, so latents can be computed once)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if self.vae is None:
            return x
        out = []
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size].to(self.vae.device, self.vae.dtype)
            out.append(self.vae.encode(chunk).latent_dist.mean.float().cpu() * self.vae.config.scaling_factor)
        return torch.cat(out)

    @torch.no_grad()
    def x0_to_images(self, x0: torch.Tensor) -> np.ndarray:
        """x0 -> uint8 (N, H, W, 3), rounding to nearest."""
        if self.vae is not None:
            latents = x0.to(self.vae.device, self.vae.dtype) / self.vae.config.scaling_factor
            x0 = self.vae.decode(latents).sample
        x = ((x0.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
        return x.permute(0, 2, 3, 1).cpu().numpy()


# --- model directories ----------------------------------------------------------------------------------------


def read_spec(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{path} does not exist: {model_dir} is not a finished model directory (rerun its rule)")
    spec = json.loads(path.read_text())
    if spec.get("format") != FORMAT_VERSION or spec.get("kind") not in KINDS:
        raise ModelError(f"{path}: unsupported format {spec.get('format')!r} / kind {spec.get('kind')!r}")
    return spec


def looks_like_hub_id(location: str) -> bool:
    """owner/name: not absolute, not starting with '.', exactly one '/' (a path that does not exist is an error)."""
    return not Path(location).is_absolute() and not location.startswith(".") and location.count("/") == 1


def relative_location(location: str | Path, model_dir: Path) -> str:
    """A location for model_dir's model.json: an existing path relative to model_dir, a hub id as it is."""
    return os.path.relpath(location, model_dir) if Path(location).exists() else str(location)


def derived_spec(parent_dir: Path, model_dir: Path) -> dict[str, Any]:
    """The spec of a model on parent_dir's frozen components (referenced, not copied), relative to model_dir."""
    parent = read_spec(parent_dir)
    spec = {key: value for key, value in parent.items() if key != "format"}
    spec["components"] = _portable(parent["components"], parent_dir, model_dir)
    if parent.get("vae"):
        spec["vae"] = _portable(parent["vae"], parent_dir, model_dir)
    return spec


def _local_or_hub(model_dir: Path, location: str | None, what: str) -> str | None:
    """A location relative to the model directory if it exists there, else an absolute path or a hub id."""
    if location is None:
        return None
    local = model_dir / location
    if local.exists():
        return str(local)
    if not looks_like_hub_id(location):
        raise ModelError(f"{model_dir / MODEL_FILE}: {what} {location} does not exist")
    return location  # a hub id: from_pretrained fetches it (or finds it in the hub cache)


def _portable(location: str, from_dir: Path, to_dir: Path) -> str:
    """Re-express a component location of from_dir's model.json for a model.json in to_dir."""
    local = from_dir / location
    return os.path.relpath(local, to_dir) if local.exists() else location


def load_model(model_dir: str | Path, device: str | torch.device = "cpu", with_unet: bool = True) -> T2IModel:
    """Load a model directory; everything in eval mode on `device` (without the UNet if not `with_unet`)."""
    model_dir = Path(model_dir)
    spec = read_spec(model_dir)
    components = _local_or_hub(model_dir, spec["components"], "components")
    unet_location, unet_sub, unet_revision = unet_source(model_dir, spec)
    if Path(components).is_dir():
        for folder in ("text_encoder", "tokenizer", "scheduler"):
            if not (Path(components) / folder).is_dir():
                raise ModelError(f"{model_dir / MODEL_FILE}: missing component folder {Path(components) / folder}")
    pinned = _revision(components, spec.get("components_revision"))

    def part(cls: Any, subfolder: str) -> Any:
        return cls.from_pretrained(components, subfolder=subfolder, **pinned)

    scheduler = part(DDIMScheduler, "scheduler")
    # DDIM on the model's training schedule. Latents are never clamped (some SD1.5 configs lack the key, whose
    # default is True); pixel-space (toy) models keep the clip_sample they were saved with (toy_model.clip_sample)
    clip = spec["kind"] == "pixel" and bool(scheduler.config.get("clip_sample", False))
    scheduler = DDIMScheduler.from_config(scheduler.config, clip_sample=clip, set_alpha_to_one=False)
    unet = (
        UNet2DConditionModel.from_pretrained(
            unet_location, subfolder=unet_sub, **_revision(unet_location, unet_revision)
        )
        if with_unet
        else None
    )
    model = T2IModel(
        kind=spec["kind"],
        resolution=int(spec["resolution"]),
        unet=unet,
        text_encoder=part(CLIPTextModel, "text_encoder"),
        tokenizer=part(CLIPTokenizer, "tokenizer"),
        scheduler=scheduler,
    )
    if spec["kind"] in ("latent", "sd", "sdxl"):
        vae = _local_or_hub(model_dir, spec.get("vae"), "vae")
        model.vae = AutoencoderKL.from_pretrained(vae) if vae else part(AutoencoderKL, "vae")
    if spec["kind"] == "sdxl":
        model.text_encoder_2 = part(CLIPTextModelWithProjection, "text_encoder_2")
        model.tokenizer_2 = part(CLIPTokenizer, "tokenizer_2")
        model.zero_uncond = bool(spec.get("zero_uncond", True))
    model.to(device)
    for module in model.frozen_modules():
        module.eval().requires_grad_(False)
    if model.unet is not None:  # trainers decide what trains; inference runs under no_grad anyway
        model.unet.eval().requires_grad_(True)
    return model


def unet_source(model_dir: Path, spec: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """Where a model's UNet is: (location, subfolder, revision). A trained UNet is a folder of the model directory;
    a released checkpoint's may be a hub repository's subfolder at a pinned commit (models/checkpoints.py); with
    no UNet of its own, the components' `unet/`."""
    if not spec.get("unet"):
        components = _local_or_hub(model_dir, spec["components"], "components")
        return components, "unet", spec.get("components_revision")
    location = _local_or_hub(model_dir, spec["unet"], "unet")
    subfolder = spec.get("unet_subfolder") or None
    if Path(location).exists() and not (Path(location) / (subfolder or "")).is_dir():
        raise ModelError(f"{model_dir / MODEL_FILE}: missing component folder {Path(location) / (subfolder or '')}")
    return location, subfolder, spec.get("unet_revision")


def _revision(location: str, revision: str | None) -> dict[str, str]:
    """from_pretrained's revision for a hub repository pinned to a commit; a local folder has none."""
    return {"revision": revision} if revision and not Path(location).exists() else {}


HUB_PATTERNS = [
    "model_index.json",
    "scheduler/*",
    "tokenizer*/*",
    "*/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder*/model.safetensors",
    "diffusion_pytorch_model.safetensors",  # a VAE or UNet repository at its root
]


def _local_folder(location: str, revision: str | None = None, patterns: list[str] | None = None) -> Path:
    """A component location as a local folder: itself, or a snapshot of the hub repository's needed files
    (downloaded once into the hub cache, where every later job's from_pretrained finds them)."""
    if Path(location).is_dir():
        return Path(location)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(location, revision=revision, allow_patterns=patterns or HUB_PATTERNS))


def check_model(model_dir: str | Path) -> dict[str, Any]:
    """Check a model directory without loading weights (models/check.py); returns a summary of it."""
    from .check import check_components, check_unet

    model_dir = Path(model_dir)
    spec = read_spec(model_dir)
    components = _local_folder(
        _local_or_hub(model_dir, spec["components"], "components"), spec.get("components_revision")
    )
    location, subfolder, revision = unet_source(model_dir, spec)
    unet = _local_folder(location, revision) / (subfolder or "")
    if not unet.is_dir():
        raise ModelError(f"{model_dir / MODEL_FILE}: missing component folder {unet}")
    if spec["kind"] in TOY_KINDS:
        check_unet(unet, f"UNet {unet}")
        if spec["kind"] == "latent" and not (components / "vae").is_dir():
            raise ModelError(f"{model_dir / MODEL_FILE}: missing component folder {components / 'vae'}")
        return {"kind": spec["kind"], "components_folder": str(components)}
    vae = _local_or_hub(model_dir, spec.get("vae"), "vae")
    return {
        "kind": spec["kind"],
        "components_folder": str(components),  # a hub snapshot: .../snapshots/<commit>
        **check_components(spec["kind"], components, unet, _local_folder(vae) if vae else None),
    }


def write_base_spec(
    model_dir: str | Path,
    kind: str,
    resolution: int,
    pretrained: str,
    vae: str | None = None,
    zero_uncond: bool = True,
    revision: str | None = None,
) -> None:
    """model.json of a pretrained Stable Diffusion base: every component from `pretrained` (a diffusers
    pipeline directory or hub id, pinned to `revision` if given), optionally another VAE (SDXL: the fp16-safe
    one)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)

    spec = {
        "kind": kind,
        "resolution": resolution,
        "components": relative_location(pretrained, model_dir),
        "unet": None,
    }
    if revision:
        spec["components_revision"] = revision
    if vae:
        spec["vae"] = relative_location(vae, model_dir)
    if kind == "sdxl":
        spec["zero_uncond"] = zero_uncond
    _write_spec(model_dir, spec, None)


def save_full_model(model_dir: str | Path, model: T2IModel, extra: dict[str, Any] | None = None) -> None:
    """Save every component into model_dir (a toy base trained from scratch)."""
    model_dir = Path(model_dir)
    model.unet.save_pretrained(model_dir / "unet")
    model.text_encoder.save_pretrained(model_dir / "text_encoder")
    model.tokenizer.save_pretrained(model_dir / "tokenizer")
    model.scheduler.save_pretrained(model_dir / "scheduler")
    if model.vae is not None:  # a latent toy base carries its VAE
        model.vae.save_pretrained(model_dir / "vae")
    _write_spec(
        model_dir, {"kind": model.kind, "resolution": model.resolution, "components": ".", "unet": "unet"}, extra
    )


def save_derived_model(
    model_dir: str | Path, unet: UNet2DConditionModel, parent_dir: str | Path, extra: dict[str, Any] | None = None
) -> None:
    """Save a trained UNet whose frozen components are those of parent_dir (referenced, not copied)."""
    model_dir, parent_dir = Path(model_dir), Path(parent_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    spec = derived_spec(parent_dir, model_dir)
    spec["unet"] = "unet"
    unet.save_pretrained(model_dir / "unet")
    _write_spec(model_dir, spec, extra)


def _write_spec(model_dir: Path, spec: dict[str, Any], extra: dict[str, Any] | None) -> None:
    # model.json is written last and atomically: its presence marks a complete model directory
    payload = {"format": FORMAT_VERSION, **spec, **(extra or {})}
    tmp = model_dir / (MODEL_FILE + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(model_dir / MODEL_FILE)
