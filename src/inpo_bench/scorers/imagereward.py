"""ImageReward v1.0 (Xu et al. 2023) on transformers alone.

The upstream checkpoint `ImageReward.pt` holds a BLIP (ViT-L/16 image encoder, BERT-base text encoder with
cross-attention to the image) and a 5-layer MLP. `convert` maps it once into a transformers
BlipForImageTextRetrieval directory plus `head.safetensors` and the BERT tokenizer with ImageReward's two added
tokens (`inpo-bench convert-imagereward`). Scoring follows ImageReward.score:

    h = text_encoder(prompt tokens (max 35), cross-attending to vision_model(image).last_hidden_state)
    reward = (MLP(h[:, 0]) - 0.16717362830052426) / 1.0333394966054072

with OpenAI CLIP preprocessing (shortest edge 224 bicubic, centre crop rounded as torchvision).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import BertTokenizer, BlipConfig, BlipForImageTextRetrieval

from ..errors import ModelError
from .base import location, resolve_dtype
from .heads import RewardHead, load_strict, torch_load
from .preprocess import clip_preprocess

MEAN, STD = 0.16717362830052426, 1.0333394966054072
MAX_TOKENS = 35
# parameters the retrieval model has and ImageReward does not use (image-text matching head)
UNUSED = {"itm_head.weight", "itm_head.bias"}
VISION_NAMES = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding"}
VISION_PARTS = (
    ("patch_embed.proj.", "embeddings.patch_embedding."),
    ("blocks.", "encoder.layers."),
    (".norm1.", ".layer_norm1."),
    (".norm2.", ".layer_norm2."),
    (".attn.qkv.", ".self_attn.qkv."),
    (".attn.proj.", ".self_attn.projection."),
)


def vision_key(name: str) -> str:
    """A timm ViT key of BLIP's visual encoder -> the transformers BlipVisionModel key."""
    if name in VISION_NAMES:
        return VISION_NAMES[name]
    if name.startswith("norm."):
        return "post_layernorm." + name[len("norm.") :]
    for old, new in VISION_PARTS:
        name = name.replace(old, new)
    return name


def imagereward_to_hf(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ImageReward.pt -> (BlipForImageTextRetrieval state dict, MLP head state dict)."""
    blip, head = {}, {}
    for key, tensor in sd.items():
        if key.startswith("mlp."):
            head[key[len("mlp.") :]] = tensor
        elif key.startswith("blip.visual_encoder."):
            blip["vision_model." + vision_key(key[len("blip.visual_encoder.") :])] = tensor
        elif key.startswith("blip.text_encoder."):
            name = key[len("blip.") :]
            if not name.endswith("embeddings.position_ids"):  # a buffer of older transformers, not a weight
                blip[name] = tensor
        elif key.startswith(("blip.vision_proj.", "blip.text_proj.")):
            blip[key[len("blip.") :]] = tensor
        else:
            raise ModelError(f"unexpected key {key!r}: not an ImageReward checkpoint")
    if not head or not blip:
        raise ModelError("not an ImageReward checkpoint: it needs blip.* and mlp.* weights")
    return blip, head


def blip_config(sd: dict[str, torch.Tensor], med: dict[str, Any], vision_heads: int) -> BlipConfig:
    """The BLIP architecture: text from med_config.json, vision from the checkpoint's shapes (heads are not
    visible in shapes: ViT-L/16 has 16)."""
    v = "blip.visual_encoder."
    width = sd[f"{v}cls_token"].shape[-1]
    patch = sd[f"{v}patch_embed.proj.weight"].shape[-1]
    layers = len({k.split(".")[3] for k in sd if k.startswith(f"{v}blocks.")})
    tokens = sd[f"{v}pos_embed"].shape[1] - 1
    text = {
        "vocab_size": med["vocab_size"],
        "hidden_size": med["hidden_size"],
        "intermediate_size": med["intermediate_size"],
        "num_hidden_layers": med["num_hidden_layers"],
        "num_attention_heads": med["num_attention_heads"],
        "max_position_embeddings": med["max_position_embeddings"],
        "layer_norm_eps": med.get("layer_norm_eps", 1e-12),
        "hidden_act": med.get("hidden_act", "gelu"),
        "encoder_hidden_size": med.get("encoder_width", width),
        "pad_token_id": med.get("pad_token_id", 0),
        "bos_token_id": None,
        "eos_token_id": None,
        "sep_token_id": None,
    }
    vision = {
        "hidden_size": width,
        "intermediate_size": sd[f"{v}blocks.0.mlp.fc1.weight"].shape[0],
        "num_hidden_layers": layers,
        "num_attention_heads": vision_heads,
        "patch_size": patch,
        "image_size": patch * math.isqrt(tokens),
        "layer_norm_eps": 1e-6,
        "hidden_act": "gelu",
    }
    return BlipConfig(
        text_config=text, vision_config=vision, image_text_hidden_size=sd["blip.vision_proj.weight"].shape[0]
    )


def convert(
    checkpoint: str | Path, med_config: str | Path, bert: str, out_dir: str | Path, vision_heads: int = 16
) -> Path:
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    state = torch_load(checkpoint)
    med = json.loads(Path(med_config).read_text())
    config = blip_config(state, med, vision_heads)
    blip_state, head_state = imagereward_to_hf(state)
    model = BlipForImageTextRetrieval(config)
    given = {k: v for k, v in model.state_dict().items() if k in UNUSED} | blip_state
    load_strict(model, given, f"ImageReward checkpoint {checkpoint}")
    head = RewardHead(med["hidden_size"])
    load_strict(head, head_state, f"ImageReward head of {checkpoint}")
    model.save_pretrained(out_dir)
    save_file(head.state_dict(), out_dir / "head.safetensors")
    tokenizer = BertTokenizer.from_pretrained(bert)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    tokenizer.save_pretrained(out_dir)
    (out_dir / "scorer.json").write_text(
        json.dumps(
            {
                "scorer": "imagereward",
                "source": str(checkpoint),
                "med_config": str(med_config),
                "mean": MEAN,
                "std": STD,
                "score": "(MLP(BLIP text [CLS] cross-attending to the image) - mean) / std (ImageReward.score)",
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


class ImageReward:
    name = "imagereward"

    def __init__(self, model_dir: str, device: str, dtype: str) -> None:
        self.device = device
        self.dtype = resolve_dtype(dtype, device)
        self.model = BlipForImageTextRetrieval.from_pretrained(model_dir, dtype=self.dtype).to(device).eval()
        self.head = RewardHead(self.model.config.text_config.hidden_size)
        load_strict(self.head, load_file(Path(model_dir) / "head.safetensors"), f"{model_dir}/head.safetensors")
        self.head.to(device).eval()
        self.tokenizer = BertTokenizer.from_pretrained(model_dir)
        self.size = self.model.config.vision_config.image_size

    @torch.no_grad()
    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
        pixels = clip_preprocess(images, self.size, rounding="round").to(self.device, self.dtype)
        text = self.tokenizer(
            prompts, padding="max_length", truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        image_tokens = self.model.vision_model(pixel_values=pixels).last_hidden_state
        hidden = self.model.text_encoder(
            input_ids=text.input_ids,
            attention_mask=text.attention_mask,
            encoder_hidden_states=image_tokens,
            encoder_attention_mask=torch.ones(image_tokens.shape[:2], dtype=torch.long, device=self.device),
        ).last_hidden_state
        reward = self.head(hidden[:, 0].float())
        return ((reward - MEAN) / STD).cpu().double().numpy()


def load(cfg: dict[str, Any], device: str, dtype: str) -> ImageReward:
    model_dir = location(cfg["model"], "scorers.imagereward.model")
    if not (Path(model_dir) / "scorer.json").is_file():
        raise ModelError(f"{model_dir}: not a converted ImageReward model; run `inpo-bench convert-imagereward`")
    return ImageReward(model_dir, device, dtype)
