"""Tiny released-checkpoint stand-ins on the tiny SD1.5 pipeline, one per load kind, in the real formats.

Each is the base UNet moved by a little seeded noise (so that every stand-in samples other images), published the
way a real release is: a UNet in `unet/` (mhdang DPO, InPO, KTO), a UNet at the root (MaPO), a full pipeline (SPO),
a diffusers-format LoRA file (SPO LoRA) and a `.pth` state dict (Diffusion-SDPO). config/smoke-checkpoints.yaml
evaluates them all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

LORA_MODULES = ("to_q", "to_k", "to_v", "to_out.0")


def perturbed_unet(pipeline: Path, seed: int, scale: float = 0.05) -> UNet2DConditionModel:
    unet = UNet2DConditionModel.from_pretrained(pipeline / "unet")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(scale * p.abs().mean() * torch.randn(p.shape, generator=generator))
    return unet


def lora_state(unet: UNet2DConditionModel, rank: int, seed: int, alpha: float | None = None) -> dict:
    """A peft-style diffusers LoRA (unet.<module>.lora_A / lora_B) on every attention projection of `unet`."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(LORA_MODULES) and ".attn" in name:
            out_features, in_features = module.weight.shape
            state[f"unet.{name}.lora_A.weight"] = 0.1 * torch.randn(rank, in_features, generator=generator)
            state[f"unet.{name}.lora_B.weight"] = 0.1 * torch.randn(out_features, rank, generator=generator)
            if alpha is not None:
                state[f"unet.{name}.alpha"] = torch.tensor(alpha)
    return state


def build_checkpoints(sd15: str | Path, out: str | Path) -> dict[str, Path]:
    sd15, out = Path(sd15), Path(out)
    made = {}
    perturbed_unet(sd15, 1).save_pretrained(out / "unet_subfolder" / "unet")
    made["checkpoint_unet"] = out / "unet_subfolder"
    perturbed_unet(sd15, 2).save_pretrained(out / "unet_root")
    made["checkpoint_unet_root"] = out / "unet_root"
    pipeline = out / "pipeline"
    shutil.copytree(sd15, pipeline, dirs_exist_ok=True)
    shutil.rmtree(pipeline / "unet")
    perturbed_unet(sd15, 3).save_pretrained(pipeline / "unet")
    made["checkpoint_pipeline"] = pipeline
    (out / "lora").mkdir(parents=True, exist_ok=True)
    base = UNet2DConditionModel.from_pretrained(sd15 / "unet")
    save_file(lora_state(base, rank=2, seed=4, alpha=1.0), str(out / "lora" / "pytorch_lora_weights.safetensors"))
    made["checkpoint_lora"] = out / "lora" / "pytorch_lora_weights.safetensors"
    (out / "state_dict" / "sd1.5").mkdir(parents=True, exist_ok=True)
    torch.save(perturbed_unet(sd15, 5).state_dict(), out / "state_dict" / "sd1.5" / "unet.pth")
    made["checkpoint_state_dict"] = out / "state_dict" / "sd1.5" / "unet.pth"
    return made
