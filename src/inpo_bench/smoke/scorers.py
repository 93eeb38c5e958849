"""Tiny random scorer models in each upstream format, built offline (tests and the smoke config).

- a transformers CLIP directory (model + CLIP tokenizer + PIL image processor): PickScore, CLIP score, the
  aesthetic backbone, and the architecture template of HPS;
- an open_clip-format state dict ("HPS_v2.1_compressed.pt"), written key by key from the documented names;
- an ImageReward-format state dict ("ImageReward.pt": blip.visual_encoder.* as timm ViT, blip.text_encoder.* as
  BERT with cross-attention, mlp.layers.*) with its med_config.json and a tiny BERT vocabulary;
- an aesthetic head state dict (layers.0/2/4/6/7).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

from inpo_bench.models.tokenizer import build_clip_tokenizer

WIDTH, LAYERS, HEADS, IMAGE, PATCH, EMBED = 32, 2, 2, 32, 8, 16
WORDS = ["a", "red", "circle", "on", "blue", "background", "photo", "of", "cat", "dog", "green", "square"]


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clip_dir(
    path: Path, seed: int = 0, act: str = "gelu", tokenizer: Any = None, width: int = WIDTH, heads: int = HEADS
) -> Path:
    """A tiny CLIPModel with a CLIP BPE tokenizer (a toy one unless given) and a 32 px PIL image processor, saved
    like a hub repo."""
    tokenizer = tokenizer or build_clip_tokenizer(WORDS, 77)
    vocab = len(tokenizer)
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": heads,
            "max_position_embeddings": 77,
            "hidden_act": act,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "hidden_size": width,
            "intermediate_size": 4 * width,
            "num_hidden_layers": LAYERS,
            "num_attention_heads": heads,
            "image_size": IMAGE,
            "patch_size": PATCH,
            "hidden_act": act,
        },
        projection_dim=EMBED,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}, resample=3
    ).save_pretrained(path)
    return path


def openclip_state(seed: int = 1, vocab: int | None = None, width: int = WIDTH) -> dict[str, torch.Tensor]:
    """An open_clip (= OpenAI CLIP) ViT state dict with the tiny CLIP's dimensions, named as open_clip names it."""
    g = _g(seed)
    vocab = vocab or len(build_clip_tokenizer(WORDS, 77))

    def r(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def block(prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}ln_1.weight": 1 + r(width),
            f"{prefix}ln_1.bias": r(width),
            f"{prefix}attn.in_proj_weight": r(3 * width, width, scale=0.2),
            f"{prefix}attn.in_proj_bias": r(3 * width),
            f"{prefix}attn.out_proj.weight": r(width, width, scale=0.2),
            f"{prefix}attn.out_proj.bias": r(width),
            f"{prefix}ln_2.weight": 1 + r(width),
            f"{prefix}ln_2.bias": r(width),
            f"{prefix}mlp.c_fc.weight": r(4 * width, width, scale=0.2),
            f"{prefix}mlp.c_fc.bias": r(4 * width),
            f"{prefix}mlp.c_proj.weight": r(width, 4 * width, scale=0.2),
            f"{prefix}mlp.c_proj.bias": r(width),
        }

    grid = (IMAGE // PATCH) ** 2
    sd = {
        "logit_scale": torch.tensor(4.6052),
        "token_embedding.weight": r(vocab, width, scale=0.5),
        "positional_embedding": r(77, width),
        "ln_final.weight": 1 + r(width),
        "ln_final.bias": r(width),
        "text_projection": r(width, EMBED, scale=0.3),
        "visual.class_embedding": r(width, scale=0.5),
        "visual.positional_embedding": r(grid + 1, width),
        "visual.conv1.weight": r(width, 3, PATCH, PATCH, scale=0.1),
        "visual.ln_pre.weight": 1 + r(width),
        "visual.ln_pre.bias": r(width),
        "visual.ln_post.weight": 1 + r(width),
        "visual.ln_post.bias": r(width),
        "visual.proj": r(width, EMBED, scale=0.3),
    }
    for i in range(LAYERS):
        sd |= block(f"transformer.resblocks.{i}.") | block(f"visual.transformer.resblocks.{i}.")
    return sd


BERT_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz",
    *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"),
    *WORDS,
]


def bert_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(BERT_VOCAB)) + "\n")
    (path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    return path


def med_config(vocab: int) -> dict:
    return {
        "architectures": ["BertModel"],
        "hidden_size": WIDTH,
        "intermediate_size": 4 * WIDTH,
        "num_hidden_layers": 2,
        "num_attention_heads": HEADS,
        "max_position_embeddings": 64,
        "vocab_size": vocab,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "encoder_width": WIDTH,
        "add_cross_attention": True,
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "type_vocab_size": 2,
        "pad_token_id": 0,
    }


def imagereward_state(vocab: int, seed: int = 2, image: int = 32, patch: int = 16) -> dict[str, torch.Tensor]:
    """ImageReward.pt as the package saves it: blip.visual_encoder.* (timm ViT), blip.text_encoder.* (BERT with
    cross-attention, including the position_ids buffer older transformers saved), blip.*_proj, mlp.layers.*."""
    g = _g(seed)

    def r(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def linear(name: str, out: int, inp: int, scale: float = 0.2) -> dict[str, torch.Tensor]:
        return {f"{name}.weight": r(out, inp, scale=scale), f"{name}.bias": r(out)}

    def norm(name: str, n: int = WIDTH) -> dict[str, torch.Tensor]:
        return {f"{name}.weight": 1 + r(n), f"{name}.bias": r(n)}

    v, t = "blip.visual_encoder.", "blip.text_encoder."
    tokens = (image // patch) ** 2
    sd = {
        f"{v}cls_token": r(1, 1, WIDTH, scale=0.5),
        f"{v}pos_embed": r(1, tokens + 1, WIDTH),
        f"{v}patch_embed.proj.weight": r(WIDTH, 3, patch, patch, scale=0.05),
        f"{v}patch_embed.proj.bias": r(WIDTH),
    }
    for i in range(LAYERS):
        b = f"{v}blocks.{i}."
        sd |= norm(f"{b}norm1") | linear(f"{b}attn.qkv", 3 * WIDTH, WIDTH) | linear(f"{b}attn.proj", WIDTH, WIDTH)
        sd |= norm(f"{b}norm2") | linear(f"{b}mlp.fc1", 4 * WIDTH, WIDTH) | linear(f"{b}mlp.fc2", WIDTH, 4 * WIDTH)
    sd |= norm(f"{v}norm")
    sd |= {
        f"{t}embeddings.word_embeddings.weight": r(vocab, WIDTH, scale=0.5),
        f"{t}embeddings.position_embeddings.weight": r(64, WIDTH, scale=0.2),
        f"{t}embeddings.position_ids": torch.arange(64).unsqueeze(0),
    }
    sd |= norm(f"{t}embeddings.LayerNorm")
    for i in range(2):
        b = f"{t}encoder.layer.{i}."
        for part in ("attention", "crossattention"):
            sd |= linear(f"{b}{part}.self.query", WIDTH, WIDTH) | linear(f"{b}{part}.self.key", WIDTH, WIDTH)
            sd |= linear(f"{b}{part}.self.value", WIDTH, WIDTH) | linear(f"{b}{part}.output.dense", WIDTH, WIDTH)
            sd |= norm(f"{b}{part}.output.LayerNorm")
        sd |= linear(f"{b}intermediate.dense", 4 * WIDTH, WIDTH) | linear(f"{b}output.dense", WIDTH, 4 * WIDTH)
        sd |= norm(f"{b}output.LayerNorm")
    sd |= linear("blip.vision_proj", 16, WIDTH) | linear("blip.text_proj", 16, WIDTH)
    for index, (out, inp) in zip((0, 2, 4, 6, 7), ((1024, WIDTH), (128, 1024), (64, 128), (16, 64), (1, 16))):
        sd |= linear(f"mlp.layers.{index}", out, inp, scale=0.1)
    return sd


def aesthetic_head_state(seed: int = 3, dim: int = EMBED) -> dict[str, torch.Tensor]:
    from inpo_bench.scorers.heads import RewardHead

    torch.manual_seed(seed)
    head = RewardHead(dim)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, 0.1)  # the default init makes every image score alike
    return head.state_dict()


def build_all(root: Path) -> dict[str, Path]:
    """Every upstream-format file the scorer tests and the scorer DAG test need, under root."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {"clip": clip_dir(root / "clip-h"), "clip_l": clip_dir(root / "clip-l", seed=5, act="quick_gelu")}
    paths["pickscore"] = clip_dir(root / "pickscore", seed=4)
    torch.save({"state_dict": openclip_state()}, root / "HPS_v2.1_compressed.pt")
    torch.save({"state_dict": openclip_state(seed=7)}, root / "HPS_v2_compressed.pt")
    paths["hpsv21_checkpoint"] = root / "HPS_v2.1_compressed.pt"
    paths["hpsv2_checkpoint"] = root / "HPS_v2_compressed.pt"
    paths["bert"] = bert_dir(root / "bert")
    vocab = len(dict.fromkeys(BERT_VOCAB)) + 2  # ImageReward adds [DEC] and [ENC]
    (root / "med_config.json").write_text(json.dumps(med_config(vocab)))
    torch.save(imagereward_state(vocab), root / "ImageReward.pt")
    paths["med_config"], paths["imagereward_checkpoint"] = root / "med_config.json", root / "ImageReward.pt"
    torch.save(aesthetic_head_state(), root / "sac+logos+ava1-l14-linearMSE.pth")
    paths["aesthetic_head"] = root / "sac+logos+ava1-l14-linearMSE.pth"
    return paths
