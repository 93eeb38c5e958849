"""Fuse a diffusers-format LoRA of a UNet into the UNet's weights, without peft.

Follows diffusers' own LoRA layers (diffusers/models/lora.py at v0.27, `LoRACompatibleLinear._fuse_lora` and
`LoRAConv2dLayer`; peft's `LoraLayer` for the lora_A / lora_B naming): a low-rank update adds

    W <- W + (alpha / rank) * up @ down        (alpha absent: alpha / rank = 1, as diffusers does)

to a Linear weight, and `(up.flatten(1) @ down.flatten(1)).reshape(W.shape)` to a Conv2d one (a k x k down
kernel, a 1 x 1 up kernel). The three key layouts of diffusers-format files are read:

    unet.<module>.lora_A.weight / .lora_B.weight                   (peft, diffusers >= 0.22)
    unet.<module>.lora.down.weight / .lora.up.weight               (LoRACompatible layers)
    unet.<block>.processor.to_q_lora.down.weight / .up.weight      (attention processors, diffusers < 0.20)

where the attention processors' to_q / to_k / to_v / to_out mean the modules to_q, to_k, to_v, to_out.0. A
module's alpha is `<module>.alpha` in every layout (diffusers' `_get_alpha_name`); newer diffusers may instead
store one `lora_alpha` in the safetensors metadata (`lora_adapter_metadata`), read by `adapter_alpha`. An alpha
that belongs to no module is an error, never silently a scale of 1.
Fusing once keeps sampling on the plain UNet (no adapter in the loop), as `pipe.fuse_lora()` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ModelError

PROCESSOR = re.compile(r"^(?P<block>.+)\.processor\.(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<part>down|up)\.weight$")
PEFT = re.compile(r"^(?P<module>.+)\.lora_(?P<part>A|B)\.weight$")
COMPATIBLE = re.compile(r"^(?P<module>.+)\.lora\.(?P<part>down|up)\.weight$")


@dataclass
class LowRank:
    down: torch.Tensor | None = None
    up: torch.Tensor | None = None
    alpha: float | None = None


def _module_of_alpha(name: str) -> str:
    """`<module>.alpha` (also written `<module>.lora.alpha`, or `<block>.processor.to_q_lora.alpha`) -> module."""
    module = name.removesuffix(".alpha").removesuffix(".lora")
    m = re.match(r"^(?P<block>.+)\.processor\.(?P<proj>to_q|to_k|to_v|to_out)_lora$", module)
    return f"{m['block']}.{m['proj']}" + (".0" if m["proj"] == "to_out" else "") if m else module


def adapter_alpha(path: str | Path, what: str) -> float | None:
    """The single `lora_alpha` of a safetensors LoRA's `lora_adapter_metadata` (diffusers >= 0.34), if any."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "lora_adapter_metadata" not in metadata:
        return None
    adapter = json.loads(metadata["lora_adapter_metadata"])
    if adapter.get("alpha_pattern") or adapter.get("rank_pattern"):
        raise ModelError(f"{what}: per-module alpha / rank patterns in its metadata are not supported")
    return float(adapter["lora_alpha"]) if adapter.get("lora_alpha") is not None else None


def parse_lora(state: dict[str, torch.Tensor], what: str, default_alpha: float | None = None) -> dict[str, LowRank]:
    """A diffusers-format LoRA state dict -> {UNet module name: its low-rank pair}; refuses what it cannot map."""
    foreign = sorted(k for k in state if k.startswith(("text_encoder", "lora_te", "te_")))
    if foreign:
        raise ModelError(f"{what}: also adapts the text encoder ({foreign[0]}, ...); only UNet LoRAs are supported")
    pairs: dict[str, LowRank] = {}
    alphas: dict[str, float] = {}
    for key, tensor in state.items():
        name = key.removeprefix("unet.")
        if name.endswith(".alpha"):
            alphas[_module_of_alpha(name)] = float(tensor)
            continue
        if m := PROCESSOR.match(name):
            module = f"{m['block']}.{m['proj']}" + (".0" if m["proj"] == "to_out" else "")
            part = m["part"]
        elif m := PEFT.match(name):
            module, part = m["module"], {"A": "down", "B": "up"}[m["part"]]
        elif m := COMPATIBLE.match(name):
            module, part = m["module"], m["part"]
        else:
            raise ModelError(f"{what}: {key} is not a key of a diffusers-format UNet LoRA")
        setattr(pairs.setdefault(module, LowRank()), part, tensor)
    for module, pair in pairs.items():
        if pair.down is None or pair.up is None:
            raise ModelError(f"{what}: {module} has only one of its two low-rank matrices")
        pair.alpha = alphas.get(module, default_alpha)
    stray = sorted(alphas.keys() - pairs.keys())
    if stray:
        raise ModelError(f"{what}: {len(stray)} alpha(s) of no LoRA module, e.g. {stray[0]}.alpha")
    if not pairs:
        raise ModelError(f"{what}: holds no LoRA weights")
    return pairs


def lora_delta(pair: LowRank, shape: torch.Size) -> torch.Tensor:
    """The float32 weight update of one low-rank pair for a weight of `shape` (Linear or Conv2d)."""
    down, up = pair.down.float(), pair.up.float()
    rank = down.shape[0]
    factor = pair.alpha / rank if pair.alpha is not None else 1.0
    return factor * (up.flatten(1) @ down.flatten(1)).reshape(shape)


def fuse_lora(
    unet: torch.nn.Module, state: dict[str, torch.Tensor], what: str, default_alpha: float | None = None
) -> int:
    """Add every low-rank update of `state` to `unet`'s weights in place; returns how many modules it changed.

    Every module must exist with a weight of the product's shape: a LoRA of another base fails here, by name.
    """
    pairs = parse_lora(state, what, default_alpha)
    modules = dict(unet.named_modules())
    for name, pair in pairs.items():
        module = modules.get(name)
        weight = getattr(module, "weight", None)
        if weight is None:
            raise ModelError(f"{what}: the base UNet has no module {name}; is it a LoRA of another base?")
        expected = (pair.up.shape[0], *pair.down.shape[1:])
        if tuple(weight.shape) != expected or pair.up.shape[1] != pair.down.shape[0]:
            raise ModelError(
                f"{what}: {name} is {tuple(weight.shape)} in the base UNet, the LoRA's product is {expected}; "
                "is it a LoRA of another base?"
            )
        with torch.no_grad():
            weight.add_(lora_delta(pair, weight.shape).to(weight.dtype))
    return len(pairs)
