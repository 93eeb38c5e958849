"""The toy world's PickScore: a tiny CLIP trained on the toy preference pairs, a learned reward model.

PickScore (yuvalkirstain/PickScore, trainer/ criterion) fine-tunes CLIP-H on Pick-a-Pic so that
s(image, caption) = logit_scale.exp() * cos(image embedding, text embedding) ranks the preferred image of a pair
first: the cross-entropy of softmax([s_w, s_l]) against the label, i.e. -logsigmoid(s_w - s_l) without ties. The
same objective trains a tiny transformers CLIPModel from scratch on data/pairs.parquet here (the toy world has no
pretrained CLIP). It is what SmPO's smoothed labels come from in the toy world (never the hidden oracle), and a
scorer of its own (`toy_reward`), so the tables show how far a learned scorer agrees with the true reward.

Model directory: CLIPModel and tokenizer save_pretrained folders + model.json (format, resolution, validation
accuracy on held-out pairs).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from ..errors import ModelError

MODEL_FILE = "model.json"


def build(cfg: dict[str, Any], tokenizer: CLIPTokenizer, resolution: int) -> CLIPModel:
    width = cfg["width"]
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": cfg["layers"],
        "num_attention_heads": 2,
        "max_position_embeddings": tokenizer.model_max_length,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "image_size": resolution,
        "patch_size": cfg["patch_size"],
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": cfg["layers"],
        "num_attention_heads": 2,
    }
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=width))


def pixels(images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1], the toy diffusion model's own image scale."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(list(images)))).permute(0, 3, 1, 2).float() / 127.5 - 1


def scores(model: CLIPModel, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """logit_scale.exp() * cos(image, caption), one per row."""
    image = F.normalize(model.get_image_features(pixel_values=images).pooler_output, dim=-1)
    text = F.normalize(model.get_text_features(input_ids=tokens).pooler_output, dim=-1)
    return model.logit_scale.exp() * (image * text).sum(-1)


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def train(pairs: str | Path, tokenizer: CLIPTokenizer, cfg: dict[str, Any], seed: int) -> tuple[CLIPModel, dict]:
    """Train on the pairs' preferences; a held-out share of the pairs measures its ranking accuracy."""
    frame = pd.read_parquet(pairs, columns=["caption", "image_w", "image_l"])
    winners = pixels([_decode(b) for b in frame.image_w])
    losers = pixels([_decode(b) for b in frame.image_l])
    tokens = tokenizer(
        list(frame.caption),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(frame), generator=generator)
    held = order[: round(cfg["validation_share"] * len(frame))]
    fit = order[len(held) :]
    torch.manual_seed(seed)
    model = build(cfg, tokenizer, winners.shape[-1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=0.01)
    log = []
    for epoch in range(cfg["epochs"]):
        model.train()
        perm = fit[torch.randperm(len(fit), generator=generator)]
        total = 0.0
        for start in range(0, len(perm), cfg["batch_size"]):
            idx = perm[start : start + cfg["batch_size"]]
            s_w = scores(model, tokens[idx], winners[idx])
            s_l = scores(model, tokens[idx], losers[idx])
            loss = F.softplus(s_l - s_w).mean()  # cross-entropy of softmax([s_w, s_l]) against the winner
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        log.append(
            {
                "epoch": epoch + 1,
                "loss": total / max(1, len(perm)),
                "held_out_accuracy": accuracy(model, tokens[held], winners[held], losers[held]),
            }
        )
    return model.eval(), {"pairs": len(frame), "held_out_pairs": len(held), "log": log}


@torch.no_grad()
def accuracy(model: CLIPModel, tokens: torch.Tensor, winners: torch.Tensor, losers: torch.Tensor) -> float:
    if not len(tokens):
        return float("nan")
    model.eval()
    right = scores(model, tokens, winners) > scores(model, tokens, losers)
    return float(right.float().mean())


def save(out: str | Path, model: CLIPModel, tokenizer: CLIPTokenizer, record: dict[str, Any]) -> None:
    out = Path(out)
    model.save_pretrained(out / "clip")
    tokenizer.save_pretrained(out / "tokenizer")
    tmp = out / (MODEL_FILE + ".tmp")
    tmp.write_text(json.dumps({"format": 1, **record}, indent=2) + "\n")
    tmp.replace(out / MODEL_FILE)  # last: marks a complete directory


def load(folder: str | Path) -> tuple[CLIPModel, CLIPTokenizer]:
    folder = Path(folder)
    if not (folder / MODEL_FILE).is_file():
        raise ModelError(f"{folder / MODEL_FILE} does not exist: train the toy reward model first (its rule)")
    model = CLIPModel.from_pretrained(folder / "clip").eval()
    return model, CLIPTokenizer.from_pretrained(folder / "tokenizer")
