"""Forward passes computed directly from upstream-format state dicts with plain tensor operations.

They are independent of transformers' model classes, so comparing them with the converted models checks the key
maps and the way the scorers call the models, not just that something runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def layer_norm(x: torch.Tensor, sd: dict, name: str, eps: float) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{name}.weight"], sd[f"{name}.bias"], eps)


def linear(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, bias: torch.Tensor | None = None
) -> torch.Tensor:
    b, lq, d = q.shape
    split = [t.reshape(b, -1, heads, d // heads).transpose(1, 2) for t in (q, k, v)]
    scores = split[0] @ split[1].transpose(-1, -2) / math.sqrt(d // heads)
    if bias is not None:
        scores = scores + bias
    out = scores.softmax(-1) @ split[2]
    return out.transpose(1, 2).reshape(b, lq, d)


# --- open_clip / OpenAI CLIP ---------------------------------------------------------------------------


def _resblock(x: torch.Tensor, sd: dict, p: str, heads: int, bias: torch.Tensor | None) -> torch.Tensor:
    h = layer_norm(x, sd, f"{p}ln_1", 1e-5)
    qkv = h @ sd[f"{p}attn.in_proj_weight"].T + sd[f"{p}attn.in_proj_bias"]
    a = attention(*qkv.chunk(3, -1), heads, bias)
    x = x + a @ sd[f"{p}attn.out_proj.weight"].T + sd[f"{p}attn.out_proj.bias"]
    h = layer_norm(x, sd, f"{p}ln_2", 1e-5)
    return x + linear(F.gelu(linear(h, sd, f"{p}mlp.c_fc")), sd, f"{p}mlp.c_proj")


def openclip_text(sd: dict, ids: torch.Tensor, heads: int) -> torch.Tensor:
    """open_clip encode_text: causal transformer, features of the end-of-text token (the largest id)."""
    length = ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:length]
    causal = torch.full((length, length), float("-inf")).triu(1)
    i = 0
    while f"transformer.resblocks.{i}.ln_1.weight" in sd:
        x = _resblock(x, sd, f"transformer.resblocks.{i}.", heads, causal)
        i += 1
    x = layer_norm(x, sd, "ln_final", 1e-5)
    return x[torch.arange(len(ids)), ids.argmax(-1)] @ sd["text_projection"]


def openclip_image(sd: dict, pixels: torch.Tensor, heads: int) -> torch.Tensor:
    """open_clip encode_image: patchify, class token, pre-norm transformer, post-norm of the class token."""
    w = sd["visual.conv1.weight"]
    x = F.conv2d(pixels, w, stride=w.shape[-1]).flatten(2).transpose(1, 2)
    cls = sd["visual.class_embedding"].expand(len(x), 1, -1)
    x = torch.cat([cls, x], 1) + sd["visual.positional_embedding"]
    x = layer_norm(x, sd, "visual.ln_pre", 1e-5)
    i = 0
    while f"visual.transformer.resblocks.{i}.ln_1.weight" in sd:
        x = _resblock(x, sd, f"visual.transformer.resblocks.{i}.", heads, None)
        i += 1
    return layer_norm(x[:, 0], sd, "visual.ln_post", 1e-5) @ sd["visual.proj"]


# --- ImageReward (BLIP: timm ViT + BERT with cross-attention) ------------------------------------------


def blip_vision(sd: dict, pixels: torch.Tensor, heads: int) -> torch.Tensor:
    v = "blip.visual_encoder."
    w = sd[f"{v}patch_embed.proj.weight"]
    x = (F.conv2d(pixels, w, sd[f"{v}patch_embed.proj.bias"], stride=w.shape[-1])).flatten(2).transpose(1, 2)
    x = torch.cat([sd[f"{v}cls_token"].expand(len(x), 1, -1), x], 1) + sd[f"{v}pos_embed"]
    i = 0
    while f"{v}blocks.{i}.norm1.weight" in sd:
        p = f"{v}blocks.{i}."
        h = layer_norm(x, sd, f"{p}norm1", 1e-6)
        x = x + linear(attention(*linear(h, sd, f"{p}attn.qkv").chunk(3, -1), heads), sd, f"{p}attn.proj")
        h = layer_norm(x, sd, f"{p}norm2", 1e-6)
        x = x + linear(F.gelu(linear(h, sd, f"{p}mlp.fc1")), sd, f"{p}mlp.fc2")
        i += 1
    return layer_norm(x, sd, f"{v}norm", 1e-6)


def bert_with_cross_attention(
    sd: dict, ids: torch.Tensor, mask: torch.Tensor, image: torch.Tensor, heads: int
) -> torch.Tensor:
    t = "blip.text_encoder."
    x = (
        sd[f"{t}embeddings.word_embeddings.weight"][ids]
        + sd[f"{t}embeddings.position_embeddings.weight"][: ids.shape[1]]
    )
    x = layer_norm(x, sd, f"{t}embeddings.LayerNorm", 1e-12)
    pad = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(mask == 0, float("-inf"))[:, None, None, :]
    i = 0
    while f"{t}encoder.layer.{i}.attention.self.query.weight" in sd:
        p = f"{t}encoder.layer.{i}."
        for part, keys, bias in (("attention", x, pad), ("crossattention", image, None)):
            a = attention(
                linear(x, sd, f"{p}{part}.self.query"),
                linear(keys, sd, f"{p}{part}.self.key"),
                linear(keys, sd, f"{p}{part}.self.value"),
                heads,
                bias,
            )
            x = layer_norm(x + linear(a, sd, f"{p}{part}.output.dense"), sd, f"{p}{part}.output.LayerNorm", 1e-12)
        h = linear(F.gelu(linear(x, sd, f"{p}intermediate.dense")), sd, f"{p}output.dense")
        x = layer_norm(x + h, sd, f"{p}output.LayerNorm", 1e-12)
        i += 1
    return x


def imagereward(
    sd: dict, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, vision_heads: int, text_heads: int
) -> torch.Tensor:
    image = blip_vision(sd, pixels, vision_heads)
    h = bert_with_cross_attention(sd, ids, mask, image, text_heads)[:, 0]
    for index in (0, 2, 4, 6, 7):
        h = linear(h, sd, f"mlp.layers.{index}")
    return (h.squeeze(-1) - 0.16717362830052426) / 1.0333394966054072
