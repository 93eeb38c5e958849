"""A tiny random HPSv3 in the release's formats, built offline (tests, the smoke config, bench/upstream).

- `qwen2vl_dir`: a Qwen2-VL-7B-Instruct look-alike hub directory: config.json in that repository's flat layout
  (vocabulary padded past the tokenizer, as the real 152064 > 151657), a byte-level BPE tokenizer with Qwen2-VL's
  special tokens in their order, chat_template.json, preprocessor_config.json with the real values, and random
  weights (upstream's loader reads them before the reward checkpoint overwrites every one);
- `hpsv3_checkpoint`: HPSv3.safetensors with the transformers 4.45 key names of the release (model.*, visual.*,
  lm_head.weight, rm_head.{0,3,5}.*), vocabulary resized by one for `<|Reward|>`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from inpo_bench.models.tokenizer import byte_symbols

# Qwen2-VL's added tokens in their id order (151643 ...) after the byte vocabulary
SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Qwen2-VL-7B-Instruct's chat template (chat_template.json of the hub repository)
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
PREPROCESSOR = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}
HIDDEN, VISION_WIDTH, VOCAB_PADDING = 64, 32, 6


def _tokenizer(path: Path) -> int:
    """Byte-level BPE without merges (every byte one token, so any pre-tokenisation splits alike) plus the
    specials; saved as a Qwen2Tokenizer. Returns its length."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = byte_symbols()
    tokenizer = Tokenizer(models.BPE(vocab={s: i for i, s in enumerate(symbols)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768
    )
    fast.save_pretrained(path)
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = "Qwen2Tokenizer"
    config_file.write_text(json.dumps(config, indent=2))
    return len(symbols) + len(SPECIALS)


def config_dict(vocab: int) -> dict:
    """config.json in Qwen2-VL-7B-Instruct's layout with tiny sizes (head_dim 16: mrope_section sums to 8)."""
    ids = {s: 256 + i for i, s in enumerate(SPECIALS)}
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": 2 * HIDDEN,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "embed_dim": VISION_WIDTH,
            "mlp_ratio": 4,
            "num_heads": 2,
            "in_chans": 3,
            "hidden_size": HIDDEN,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "vocab_size": vocab,
    }


def qwen2vl_dir(path: Path, seed: int = 11) -> Path:
    from transformers import AutoConfig, Qwen2VLForConditionalGeneration

    path.mkdir(parents=True, exist_ok=True)
    length = _tokenizer(path)
    (path / "config.json").write_text(json.dumps(config_dict(length + VOCAB_PADDING), indent=2))
    (path / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2))
    (path / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2))
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(AutoConfig.from_pretrained(path))
    model.save_pretrained(path)
    (path / "config.json").write_text(json.dumps(config_dict(length + VOCAB_PADDING), indent=2))  # keep the layout
    return path


def hpsv3_checkpoint(path: Path, base: Path, seed: int = 12) -> Path:
    """Random weights of the reward model, scaled so that scores differ between images and prompts, named as
    the release names them."""
    from safetensors.torch import save_file
    from transformers import AutoConfig

    from inpo_bench.scorers.hpsv3 import RewardModel

    config = AutoConfig.from_pretrained(base)
    vocab = len(json.loads((base / "tokenizer.json").read_text())["model"]["vocab"]) + len(SPECIALS) + 1
    config.text_config.vocab_size = config.vocab_size = vocab
    torch.manual_seed(seed)
    model = RewardModel(config)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("weight") and ("norm" in key or "ln_q" in key):
            value = 1 + 0.1 * torch.randn(value.shape, generator=g)
        elif value.is_floating_point():
            scale = 0.5 if value.ndim < 2 else 1.5 / value.shape[-1] ** 0.5
            value = scale * torch.randn(value.shape, generator=g)
        if key.startswith("language_model."):
            key = "model." + key[len("language_model.") :]
        state[key] = value.contiguous()
    state["lm_head.weight"] = 0.02 * torch.randn(vocab, HIDDEN, generator=g)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt"})
    return path


def build(root: Path) -> dict[str, Path]:
    base = qwen2vl_dir(root / "qwen2-vl")
    return {"qwen2vl": base, "hpsv3_checkpoint": hpsv3_checkpoint(root / "HPSv3.safetensors", base)}
