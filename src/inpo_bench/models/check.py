"""Check a model directory's components without loading their weights.

A describe job (`inpo-bench base-model`) must fail fast and name what is wrong, but loading a pipeline to find out
costs its whole size in memory (SDXL in float32: ~14 GB on a CPU node). Here every component is checked from its
config and the weight files' headers: the config loads, a weight file exists, and the UNet's tensors (names and
shapes, read from the safetensors header or a memory-mapped .bin) are exactly those its config builds (on the meta
device, no memory); the UNet's text conditioning must fit the text encoders; the scheduler's config must describe
the noise schedule and parametrisation the suite's code implements (`check_scheduler`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelError

WEIGHT_FILES = {
    "diffusers": ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"),
    "transformers": ("model.safetensors", "pytorch_model.bin"),
}


def weight_files(folder: Path, library: str) -> list[Path]:
    """The weight files from_pretrained would read in `folder` (sharded checkpoints through their index)."""
    for name in WEIGHT_FILES[library]:
        if (folder / name).is_file():
            return [folder / name]
        index = folder / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            return [folder / shard for shard in shards]
    return []


def tensor_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of weight files, from safetensors headers or memory-mapped .bin files."""
    import torch
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as handle:
                shapes.update({k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()})  # noqa: SIM118
        else:
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            shapes.update({k: tuple(v.shape) for k, v in state.items()})
    return shapes


def unet_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The tensors a UNet2DConditionModel of this config has, built on the meta device."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return {k: tuple(v.shape) for k, v in unet.state_dict().items()}


def compare(expected: dict[str, tuple], found: dict[str, tuple], what: str) -> None:
    missing = sorted(expected.keys() - found.keys())
    unexpected = sorted(found.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & found.keys() if expected[k] != found[k])
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"{len(missing)} missing tensor(s), e.g. {missing[:3]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[:3]}")
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} tensor(s) of another shape, e.g. {k}: {found[k]} where the config has {expected[k]}"
            )
        raise ModelError(f"{what}: the weights do not fit the config: " + "; ".join(details))


def _config(folder: Path, name: str, what: str) -> dict[str, Any]:
    path = folder / name
    if not path.is_file():
        raise ModelError(f"{what}: missing {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}: not valid JSON ({error})") from None


def check_unet(folder: Path, what: str) -> dict[str, Any]:
    """A UNet folder whose weights fit its config exactly; returns the config."""
    config = _config(folder, "config.json", what)
    files = weight_files(folder, "diffusers")
    if not files:
        raise ModelError(f"{what}: no weights in {folder} ({' or '.join(WEIGHT_FILES['diffusers'])})")
    compare(unet_shapes(config), tensor_shapes(files), what)
    return config


def check_text_encoder(folder: Path, what: str) -> dict[str, Any]:
    config = _config(folder, "config.json", what)
    if not weight_files(folder, "transformers"):
        raise ModelError(f"{what}: no weights in {folder} ({' or '.join(WEIGHT_FILES['transformers'])})")
    return config


# What the suite's diffusion code implements (diffusion.py, sample.py, methods/inversion.py): epsilon prediction,
# DDIM on the "leading" grid offset by steps_offset, a final step to alpha-bar[0], 1000 training steps (the configs'
# t ranges and InPO's official 10-step inversion grid assume them), a beta schedule diffusers' DDIMScheduler builds.
# field -> (accepts(value), what is expected); a field a config leaves out takes diffusers' default.
SCHEDULER_FIELDS: dict[str, tuple[Any, str]] = {
    "prediction_type": (lambda v: v in (None, "epsilon"), "epsilon (v-prediction and sample are not implemented)"),
    "timestep_spacing": (lambda v: v in (None, "leading"), "leading (the DDIM grid of sampling and inversion)"),
    "set_alpha_to_one": (lambda v: v in (None, False), "false (sampling ends at alpha-bar[0], as SD 1.x / XL)"),
    "steps_offset": (lambda v: v is None or (isinstance(v, int) and v >= 0), "a non-negative integer (SD: 1)"),
    "num_train_timesteps": (lambda v: v in (None, 1000), "1000"),
    "beta_schedule": (
        lambda v: v in (None, "linear", "scaled_linear", "squaredcos_cap_v2"),
        "linear, scaled_linear or squaredcos_cap_v2",
    ),
    "rescale_betas_zero_snr": (lambda v: not v, "false (a zero terminal SNR breaks epsilon-DDIM at t = 999)"),
    "thresholding": (lambda v: not v, "false (dynamic thresholding is not implemented)"),
}


def check_scheduler(config: dict[str, Any], where: Path) -> None:
    """Refuse a scheduler config the code would train or sample wrongly without a word, naming field and value."""
    wrong = [
        f"{name} is {config[name]!r}, expected {expected}"
        for name, (accepts, expected) in SCHEDULER_FIELDS.items()
        if name in config and not accepts(config[name])
    ]
    if wrong:
        raise ModelError(
            f"{where}: a scheduler this suite does not implement: " + "; ".join(wrong) + ". The sampler, the losses "
            "and the inversion assume Stable Diffusion 1.x / XL's epsilon-prediction DDPM schedule."
        )


def check_components(kind: str, components: Path, unet: Path, vae: Path | None) -> dict[str, Any]:
    """Check a Stable Diffusion model's folders (kinds sd / sdxl) and how they fit; returns a summary."""
    for folder in ("tokenizer", "scheduler") + (("tokenizer_2",) if kind == "sdxl" else ()):
        if not (components / folder).is_dir():
            raise ModelError(f"{components}: missing component folder {folder}/")
    scheduler = _config(components / "scheduler", "scheduler_config.json", f"{components} scheduler")
    check_scheduler(scheduler, components / "scheduler" / "scheduler_config.json")
    unet_config = check_unet(unet, f"UNet {unet}")
    text = check_text_encoder(components / "text_encoder", f"text encoder {components / 'text_encoder'}")
    vae_folder = vae or components / "vae"
    vae_config = _config(vae_folder, "config.json", f"VAE {vae_folder}")
    if not weight_files(vae_folder, "diffusers"):
        raise ModelError(f"VAE {vae_folder}: no weights ({' or '.join(WEIGHT_FILES['diffusers'])})")
    width = int(text["hidden_size"])
    if kind == "sdxl":
        second = check_text_encoder(components / "text_encoder_2", f"text encoder {components / 'text_encoder_2'}")
        width += int(second["hidden_size"])
        if unet_config.get("addition_embed_type") != "text_time":
            raise ModelError(f"UNet {unet}: not an SDXL UNet (addition_embed_type is not text_time)")
        pooled = int(unet_config["projection_class_embeddings_input_dim"]) - 6 * int(
            unet_config["addition_time_embed_dim"]
        )
        if pooled != int(second["projection_dim"]):
            raise ModelError(
                f"UNet {unet}: its pooled-text input {pooled} does not fit text_encoder_2's {second['projection_dim']}"
            )
    elif unet_config.get("addition_embed_type") == "text_time":
        raise ModelError(
            f"UNet {unet}: an SDXL UNet (addition_embed_type text_time) on a Stable Diffusion 1.x/2.x base"
        )
    cross = unet_config["cross_attention_dim"]
    if cross != width:
        raise ModelError(
            f"UNet {unet}: cross_attention_dim {cross} does not fit the text encoder(s) of {components} ({width}); "
            "is it a UNet of another base?"
        )
    if int(unet_config["in_channels"]) != int(vae_config["latent_channels"]):
        raise ModelError(
            f"UNet {unet}: {unet_config['in_channels']} input channels, the VAE has {vae_config['latent_channels']}"
        )
    parameters = sum(_numel(s) for s in unet_shapes(unet_config).values())
    return {
        "unet_parameters": parameters,
        "cross_attention_dim": cross,
        "latent_channels": vae_config["latent_channels"],
    }


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
