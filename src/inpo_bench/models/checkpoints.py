"""Released checkpoints as model directories: one load kind per way the public ones are published.

A checkpoint of config's `checkpoints:` section becomes `models/<name>/model.json` on top of the run's base, so
that sampling, scoring and every table treat it like a model trained here. Resolving it is the describe job of
the checkpoint (`inpo-bench checkpoint`): it fetches only the files its kind needs, checks them against the base
without building a pipeline (models/check.py) and fails there, naming the checkpoint and what is wrong.

Load kinds (../shared/research/anchors-2026.md section 1 lists which release uses which):

    unet        a diffusers UNet folder in a subfolder of the source (default `unet`): mhdang DPO, InPO, SmPO, KTO
    unet_root   a diffusers UNet at the source's root: MaPO
    pipeline    a full diffusers pipeline whose text encoders, tokenizers and scheduler come with it: SPO
    lora        a diffusers-format UNet LoRA (`weight_name`), fused into the base UNet (models/lora.py): SPO LoRA
    state_dict  a UNet state dict file (`weight_name`: .safetensors, or .pth/.bin/.pt read with
                torch.load(weights_only=True), so no pickled code runs), strictly into the base UNet: Diffusion-SDPO

`unet`, `unet_root` and `pipeline` are referenced where they are (a local folder, or the hub repository at its
resolved commit, recorded in model.json); `lora` and `state_dict` write the UNet they make into the model directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .check import check_components, compare

# models.bundle (diffusers, ~4 s) is imported inside the functions that use it: every snakemake start imports
# LOAD_KEYS from here

# the settings a checkpoint's weights depend on (rule resolve_checkpoint reruns when one changes; method and note
# are labels, which the tables job reads from the config)
LOAD_KEYS = ("source", "load", "subfolder", "weight_name", "revision", "dtype")


@dataclass(frozen=True)
class LoadKind:
    name: str
    patterns: Callable[[dict[str, Any]], list[str]]  # the files of the source it needs (hub downloads)
    resolve: Callable[[str, dict[str, Any], Path, Path, Path], dict[str, Any]]
    one_file: bool = False  # reads `weight_name` only


def is_hub_id(source: str) -> bool:
    """An owner/name hub id: no such local path, and shaped like one (bundle.looks_like_hub_id)."""
    from . import bundle

    return not Path(source).exists() and bundle.looks_like_hub_id(source)


def fetch(name: str, settings: dict[str, Any], patterns: list[str]) -> tuple[Path, str | None]:
    """The source as a local folder and, for a hub repository, the commit it resolved to."""
    source, revision = settings["source"], settings.get("revision")
    if not is_hub_id(source):
        if not Path(source).exists():
            raise ModelError(
                f"checkpoint {name}: source {source} does not exist (a local path or an owner/name hub id)"
            )
        return Path(source), None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(source, revision=revision, allow_patterns=patterns))
    except (LocalEntryNotFoundError, HfHubHTTPError, HFValidationError, OSError) as error:
        # no such repository or revision, no network, offline without a cached snapshot, a damaged cache
        first = str(error).splitlines()[0] if str(error) else ""
        raise ModelError(
            f"checkpoint {name}: cannot fetch {source} at revision {revision or 'main'}: "
            f"{type(error).__name__}: {first}"
        ) from None
    return folder, folder.name  # snapshots/<commit>


def _base(base_dir: Path) -> tuple[dict[str, Any], Path, Path | None]:
    """The base model's spec, its components as a local folder and its VAE override (if any)."""
    from . import bundle

    spec = bundle.read_spec(base_dir)
    components = bundle._local_folder(
        bundle._local_or_hub(base_dir, spec["components"], "components"), spec.get("components_revision")
    )
    vae = bundle._local_or_hub(base_dir, spec.get("vae"), "vae")
    return spec, components, bundle._local_folder(vae) if vae else None


def _checked(name: str, kind: str, components: Path, unet: Path, vae: Path | None) -> dict[str, Any]:
    if not unet.is_dir():
        raise ModelError(f"checkpoint {name}: no UNet folder {unet}")
    try:
        return check_components(kind, components, unet, vae)
    except ModelError as error:
        raise ModelError(f"checkpoint {name}: {error}") from None


def _subfolder(settings: dict[str, Any], default: str | None) -> str | None:
    sub = settings.get("subfolder")
    return default if sub is None else (sub or None)


def _resolve_unet(default_sub: str | None) -> Callable[..., dict[str, Any]]:
    def resolve(name: str, settings: dict[str, Any], root: Path, base_dir: Path, out: Path) -> dict[str, Any]:
        from . import bundle

        base, components, vae = _base(base_dir)
        sub = _subfolder(settings, default_sub)
        summary = _checked(name, base["kind"], components, root / (sub or ""), vae)
        spec = bundle.derived_spec(base_dir, out)
        spec["unet"] = settings["source"] if is_hub_id(settings["source"]) else bundle.relative_location(root, out)
        spec["unet_subfolder"] = sub
        return {"spec": spec, **summary}

    return resolve


def _hub_patterns() -> list[str]:
    from . import bundle

    return bundle.HUB_PATTERNS


def _resolve_pipeline(name: str, settings: dict[str, Any], root: Path, base_dir: Path, out: Path) -> dict[str, Any]:
    """Its own text encoders, tokenizers and scheduler; the base's VAE override if the base has one (SPO's SDXL
    inference swaps in the fp16-safe VAE, as config/sdxl.yaml's base does)."""
    from . import bundle

    base, _, vae = _base(base_dir)
    summary = _checked(name, base["kind"], root, root / "unet", vae)  # a pipeline of another kind fails here
    spec = bundle.derived_spec(base_dir, out)
    spec["components"] = settings["source"] if is_hub_id(settings["source"]) else bundle.relative_location(root, out)
    spec.pop("components_revision", None)  # the base's; a hub pipeline's own commit is set by resolve_checkpoint
    spec["unet"] = None
    return {"spec": spec, **summary}


def _weight_file(name: str, settings: dict[str, Any], root: Path) -> Path:
    if not settings.get("weight_name"):
        raise ModelError(f"checkpoint {name}: load {settings['load']} needs checkpoints.{name}.weight_name")
    path = root / (_subfolder(settings, None) or "") / settings["weight_name"]
    if not path.is_file():
        raise ModelError(f"checkpoint {name}: no file {path}")
    return path


def read_weights(path: Path, what: str) -> dict[str, Any]:
    """A state dict from safetensors, or from a pickle with weights_only=True (tensors only; no code runs)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # a truncated or foreign file
            raise ModelError(f"{what}: {path} is not a readable safetensors file ({error})") from None
    try:
        try:  # memory-mapped where the format allows: an SDXL UNet is 10 GB in float32
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            state = torch.load(path, map_location="cpu", weights_only=True)  # the legacy (pre-zip) format
    except Exception as error:  # a pickle that holds more than tensors, or a damaged file
        raise ModelError(f"{what}: {path} is not a plain tensor state dict ({type(error).__name__}: {error})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{what}: {path} holds a {type(state).__name__}, not a state dict")
    return state


def _base_unet(base_dir: Path) -> Any:
    from diffusers import UNet2DConditionModel

    from . import bundle

    location, sub, revision = bundle.unet_source(base_dir, bundle.read_spec(base_dir))
    return UNet2DConditionModel.from_pretrained(location, subfolder=sub, **bundle._revision(location, revision))


def _save_unet(unet: Any, settings: dict[str, Any], base_dir: Path, out: Path, **summary: Any) -> dict[str, Any]:
    import torch

    from . import bundle

    unet.to(getattr(torch, settings.get("dtype") or "float32")).save_pretrained(out / "unet")
    spec = bundle.derived_spec(base_dir, out)
    spec["unet"] = "unet"
    for key in ("unet_subfolder", "unet_revision"):
        spec.pop(key, None)
    return {"spec": spec, "unet_parameters": sum(p.numel() for p in unet.parameters()), **summary}


def _resolve_lora(name: str, settings: dict[str, Any], root: Path, base_dir: Path, out: Path) -> dict[str, Any]:
    from .lora import adapter_alpha, fuse_lora

    path = _weight_file(name, settings, root)
    what = f"checkpoint {name} ({path.name})"
    alpha = adapter_alpha(path, what) if path.suffix == ".safetensors" else None
    unet = _base_unet(base_dir)
    modules = fuse_lora(unet, read_weights(path, f"checkpoint {name}"), what, default_alpha=alpha)
    return _save_unet(unet, settings, base_dir, out, lora_modules=modules)


def _resolve_state_dict(name: str, settings: dict[str, Any], root: Path, base_dir: Path, out: Path) -> dict[str, Any]:
    path = _weight_file(name, settings, root)
    unet = _base_unet(base_dir)
    state = read_weights(path, f"checkpoint {name}")
    if all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
        state = {k.removeprefix("module."): v for k, v in state.items()}
    expected = {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    try:  # names and shapes first, so the message says what differs; then a strict load
        compare(expected, {k: tuple(v.shape) for k, v in state.items()}, f"checkpoint {name} ({path})")
    except ModelError as error:
        raise ModelError(f"{error}; is it a UNet of another base?") from None
    unet.load_state_dict(state, strict=True)
    return _save_unet(unet, settings, base_dir, out)


def _unet_files(sub: str | None) -> list[str]:
    """A UNet folder's config and default weights (single or sharded), not its fp16 or other variant files."""
    prefix = f"{sub}/" if sub else ""
    names = ("config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", "*.index.json")
    return [prefix + n for n in names] + [f"{prefix}diffusion_pytorch_model-*"]


def _file_pattern(settings: dict[str, Any]) -> str:
    sub = _subfolder(settings, None)
    return f"{sub}/{settings['weight_name']}" if sub else settings["weight_name"]


LOAD_KINDS = {
    kind.name: kind
    for kind in (
        LoadKind("unet", lambda s: _unet_files(_subfolder(s, "unet")), _resolve_unet("unet")),
        LoadKind("unet_root", lambda s: _unet_files(_subfolder(s, None)), _resolve_unet(None)),
        LoadKind("pipeline", lambda s: _hub_patterns(), _resolve_pipeline),
        LoadKind("lora", lambda s: [_file_pattern(s)], _resolve_lora, one_file=True),
        LoadKind("state_dict", lambda s: [_file_pattern(s)], _resolve_state_dict, one_file=True),
    )
}


def resolve_checkpoint(name: str, settings: dict[str, Any], base_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Check one checkpoint against the base and write its model directory; returns what model.json records."""
    from . import bundle

    kind = LOAD_KINDS.get(settings["load"])
    if kind is None:
        raise ModelError(f"checkpoint {name}: unknown load kind {settings['load']!r} (one of {', '.join(LOAD_KINDS)})")
    if kind.one_file and not settings.get("weight_name"):  # before any download: never fetch a whole repository
        raise ModelError(f"checkpoint {name}: load {kind.name} needs checkpoints.{name}.weight_name")
    out, base_dir = Path(out), Path(base_dir)
    root, commit = fetch(name, settings, kind.patterns(settings))
    out.mkdir(parents=True, exist_ok=True)
    summary = kind.resolve(name, settings, root, base_dir, out)
    spec = summary.pop("spec")
    # what is evaluated stays pinned: later jobs load the resolved commit, whatever the config's revision said
    if commit is not None and kind.name in ("unet", "unet_root"):
        spec["unet_revision"] = commit
    elif commit is not None and kind.name == "pipeline":
        spec["components_revision"] = commit
    record = {
        "checkpoint": {
            "name": name,
            **{k: settings.get(k) for k in LOAD_KEYS if k != "revision"},
            "revision_requested": settings.get("revision"),
            "revision": commit,
        },
        **summary,
    }
    bundle._write_spec(out, spec, record)
    return record
