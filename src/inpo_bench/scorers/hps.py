"""Human Preference Score v2.0 / v2.1 (Wu et al. 2023) on transformers alone.

The upstream checkpoints (`HPS_v2_compressed.pt`, `HPS_v2.1_compressed.pt`) are open_clip ViT-H/14 state dicts.
`convert` maps one once into a transformers CLIPModel directory (`inpo-bench convert-hps`); scoring then is
score = cos(image embedding, text embedding), the raw cosine `hpsv2.score` returns (about 0.2-0.35; the HPSv2
benchmark tables print it x 100), with open_clip's letterbox preprocessing. The version is part of the scorer
name because v2.0 and v2.1 scores are not comparable.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer, CLIPConfig, CLIPModel

from ..errors import ModelError
from ..runtime import sha256
from .base import l2_normalise, location, resolve_dtype
from .heads import load_strict, torch_load
from .preprocess import letterbox

VERSIONS = {"hpsv2": "HPS_v2_compressed.pt", "hpsv21": "HPS_v2.1_compressed.pt"}


def openclip_to_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip (and OpenAI CLIP) ViT state dict -> transformers CLIPModel state dict; every key must be used."""
    used: set[str] = set()
    sd = _Tracking(sd, used)
    try:
        out = {
            "logit_scale": sd["logit_scale"],
            "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
            "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
            "text_model.final_layer_norm.weight": sd["ln_final.weight"],
            "text_model.final_layer_norm.bias": sd["ln_final.bias"],
            "text_projection.weight": sd["text_projection"].T.contiguous(),
            "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
            "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
            "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
            "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
            "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
            "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
            "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
            "visual_projection.weight": sd["visual.proj"].T.contiguous(),
        }
    except KeyError as error:
        raise ModelError(f"not an open_clip ViT state dict: key {error} is missing") from None
    for src, dst in (
        ("transformer.resblocks.", "text_model.encoder.layers."),
        ("visual.transformer.resblocks.", "vision_model.encoder.layers."),
    ):
        i = 0
        while f"{src}{i}.ln_1.weight" in sd:
            s, d = f"{src}{i}.", f"{dst}{i}."
            for a, b in (
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
                ("attn.out_proj", "self_attn.out_proj"),
            ):
                out[f"{d}{b}.weight"] = sd[f"{s}{a}.weight"]
                out[f"{d}{b}.bias"] = sd[f"{s}{a}.bias"]
            for name, tensor in zip("qkv", sd[f"{s}attn.in_proj_weight"].chunk(3, 0)):
                out[f"{d}self_attn.{name}_proj.weight"] = tensor.contiguous()
            for name, tensor in zip("qkv", sd[f"{s}attn.in_proj_bias"].chunk(3, 0)):
                out[f"{d}self_attn.{name}_proj.bias"] = tensor.contiguous()
            i += 1
    unused = sorted(set(sd) - used)
    if unused:
        raise ModelError(f"open_clip checkpoint has keys the conversion does not use (unexpected keys): {unused[:8]}")
    return out


class _Tracking(dict):
    """A dict that records which keys were read."""

    def __init__(self, data: dict[str, torch.Tensor], used: set[str]) -> None:
        super().__init__(data)
        self.used = used

    def __getitem__(self, key: str) -> torch.Tensor:
        self.used.add(key)
        return super().__getitem__(key)


def convert(checkpoint: str | Path, clip: str, out_dir: str | Path, version: str) -> Path:
    """open_clip HPS checkpoint -> CLIPModel directory, with the tokenizer and architecture of `clip`
    (the CLIP-H repository HPS was fine-tuned from; its config must match the checkpoint, checked strictly)."""
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = torch_load(checkpoint)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    model = CLIPModel(CLIPConfig.from_pretrained(clip))
    load_strict(model, openclip_to_hf(state), f"HPS checkpoint {checkpoint} against the CLIP config of {clip}")
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(clip).save_pretrained(out_dir)
    (out_dir / "scorer.json").write_text(
        json.dumps(
            {
                "scorer": version,
                "source": str(checkpoint),
                "sha256": sha256(checkpoint),
                "architecture": str(clip),
                "score": "cosine of L2-normalised image and text embeddings (hpsv2.score)",
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


def clean_prompt(text: str) -> str:
    """open_clip's prompt cleaning before tokenising (open_clip tokenizer.py basic_clean + whitespace_clean, as
    vendored in tgxs002/HPSv2 hpsv2/src/open_clip/tokenizer.py): ftfy.fix_text, html.unescape twice, whitespace
    runs collapsed. The Hugging Face CLIP tokenizer lowercases afterwards, as open_clip does."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


class HPS:
    def __init__(self, name: str, model_dir: str, device: str, dtype: str) -> None:
        self.name = name
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.model = CLIPModel.from_pretrained(model_dir, dtype=self.dtype).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.size = self.model.config.vision_config.image_size

    @torch.no_grad()
    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
        pixels = letterbox(images, self.size).to(self.device, self.dtype)
        cleaned = [clean_prompt(p) for p in prompts]
        text = self.tokenizer(cleaned, padding=True, truncation=True, max_length=77, return_tensors="pt").to(
            self.device
        )
        image_emb = l2_normalise(self.model.get_image_features(pixel_values=pixels).pooler_output)
        text_emb = l2_normalise(self.model.get_text_features(**text).pooler_output)
        return (image_emb * text_emb).sum(-1).cpu().double().numpy()


def load(name: str, cfg: dict[str, Any], device: str, dtype: str) -> HPS:
    model_dir = location(cfg["model"], f"scorers.{name}.model")
    if not (Path(model_dir) / "scorer.json").is_file():
        raise ModelError(f"{model_dir}: not a converted HPS model; run `inpo-bench convert-hps` on {VERSIONS[name]}")
    return HPS(name, model_dir, device, dtype)
