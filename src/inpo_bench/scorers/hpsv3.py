"""HPSv3 (Ma et al., ICCV 2025): Qwen2-VL-7B-Instruct with a reward head, on the suite's transformers.

Follows the hpsv3 1.0.0 package (MizzenAI/HPSv3, MIT):
- `hpsv3/inference.py` HPSv3RewardInferencer.prepare_batch / reward: one user turn per image, the image first
  (min_pixels = max_pixels = 256 * 28 * 28), then the instruction with the prompt and the `<|Reward|>` token,
  rendered by the Qwen2-VL chat template with the generation prompt, padded on the right;
- `hpsv3/dataset/utils.py` fetch_image / smart_resize: convert to RGB, resize with PIL bicubic to the
  28-divisible size of 256 * 28 * 28 pixels nearest the aspect ratio (448 x 448 for a square image);
- `hpsv3/dataset/data_collator_qwen.py` INSTRUCTION + prompt_with_special_token: the text, kept byte for byte
  in `hpsv3_prompt.txt` (its SHA-256 is checked on load);
- `hpsv3/model/qwen2vl_trainer.py` Qwen2VLRewardModelBT.forward (rm_head_type "ranknet", reward_token
  "special"): image embeddings scattered into the `<|image_pad|>` positions, the language model run with
  `position_ids` left to the text model, i.e. plain positions 0..L-1 on all three M-RoPE axes (the overridden
  forward bypasses Qwen2-VL's get_rope_index), and the head Linear(3584, 1024) ReLU Dropout Linear(1024, 16) ReLU
  Linear(16, 2) applied in float32 to the final hidden state at the `<|Reward|>` token;
- `hpsv3/train.py` create_model_and_processor: `<|Reward|>` added as a special token (id 151657) and the
  embeddings resized to the tokenizer's length; `hpsv3/config/HPSv3_7B.yaml`: bfloat16.

The two outputs are (mu, log sigma) of the reward's Gaussian (the "uncertainty" loss of the same file takes
sigma = exp(column 1)); the score is mu, as the package's README says, and sigma is written next to it.
`HPSv3.safetensors` holds every weight (transformers 4.45 key layout: model.*, visual.*, lm_head, rm_head);
only the configuration, tokenizer and chat template of Qwen2-VL-7B-Instruct are read, never its weights.

Deviations: none in the arithmetic (the vision rotary angles are rounded in bfloat16 as 4.45 rounds them, see
`vision_rotary`). The image processor's second smart_resize (a same-size resize, i.e. a copy) is skipped. On
CUDA the model runs in bfloat16 unless float32 is asked (float16 is not used: Qwen2's activations overflow it);
on CPU in float32 (upstream runs on CUDA only: its head's autocast is CUDA's).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import DataError, ModelError

PIXELS = 256 * 28 * 28  # min_pixels = max_pixels in prepare_batch
FACTOR = 28  # patch 14 x spatial merge 2
MAX_RATIO = 200
REWARD_TOKEN = "<|Reward|>"
IMAGE_TOKEN = "<|image_pad|>"
PROMPT_FILE = Path(__file__).with_name("hpsv3_prompt.txt")
PROMPT_SHA256 = "f6ee57479d4e9eee76b49c00dc962e1e696a5a2b3cc32cebd9b1fa76fe27502c"  # of the upstream strings
HEAD_HIDDEN = (1024, 16)


def smart_resize(height: int, width: int, factor: int = FACTOR, pixels: int = PIXELS) -> tuple[int, int]:
    """(height, width) divisible by `factor`, near the aspect ratio, with about `pixels` pixels (dataset/utils.py
    smart_resize with min_pixels = max_pixels = pixels)."""
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} exceeds {MAX_RATIO}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > pixels:
        beta = math.sqrt(height * width / pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < pixels:
        beta = math.sqrt(pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resize(image: Image.Image) -> Image.Image:
    """fetch_image: RGB first, then PIL bicubic to the smart size."""
    image = image.convert("RGB")
    height, width = smart_resize(image.height, image.width)
    return image.resize((width, height), Image.BICUBIC)


def prompt_template() -> str:
    text = PROMPT_FILE.read_bytes()
    digest = hashlib.sha256(text).hexdigest()
    if digest != PROMPT_SHA256:
        raise ModelError(f"{PROMPT_FILE}: SHA-256 {digest} is not that of hpsv3 1.0.0's instruction ({PROMPT_SHA256})")
    return text.decode()


def conversation(prompt: str, template: str) -> list[dict[str, Any]]:
    """The one user turn of prepare_batch: the image, then the instruction holding the prompt."""
    return [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": template.format(text_prompt=prompt)}],
        }
    ]


def reward_head(hidden: int) -> nn.Sequential:
    """rm_head of Qwen2VLRewardModelBT, ranknet type without kwargs; indices 0, 3, 5 as in the checkpoint."""
    return nn.Sequential(
        nn.Linear(hidden, HEAD_HIDDEN[0]),
        nn.ReLU(),
        nn.Dropout(0.05),
        nn.Linear(HEAD_HIDDEN[0], HEAD_HIDDEN[1]),
        nn.ReLU(),
        nn.Linear(HEAD_HIDDEN[1], 2),
    )


class RewardModel(nn.Module):
    """What the reward reads of Qwen2VLRewardModelBT: the vision tower, the text model, the head (no LM head)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        from transformers.models.qwen2_vl.modeling_qwen2_vl import (
            Qwen2VisionTransformerPretrainedModel,
            Qwen2VLTextModel,
        )

        self.image_token_id = config.image_token_id
        self.visual = Qwen2VisionTransformerPretrainedModel._from_config(config.vision_config)
        self.visual.rotary_pos_emb = vision_rotary(config.vision_config)
        self.language_model = Qwen2VLTextModel._from_config(config.text_config)
        self.rm_head = reward_head(config.text_config.hidden_size)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        image_grid_thw: torch.Tensor,
        reward_token_id: int,
    ) -> torch.Tensor:
        """(batch, 2): mu and log sigma at each sequence's one reward token."""
        embeds = self.language_model.embed_tokens(input_ids)
        image = self.visual(pixel_values.to(self.visual.get_dtype()), grid_thw=image_grid_thw).pooler_output
        mask = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(embeds)
        if int(mask[..., 0].sum()) != image.shape[0]:
            raise ValueError(f"{int(mask[..., 0].sum())} image tokens in the text for {image.shape[0]} embeddings")
        embeds = embeds.masked_scatter(mask, image.to(embeds.dtype))
        batch, length = input_ids.shape
        positions = torch.arange(length, device=input_ids.device).view(1, 1, -1).expand(3, batch, -1)
        hidden = self.language_model(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions, use_cache=False
        ).last_hidden_state
        at_reward = input_ids == reward_token_id
        if not bool((at_reward.sum(-1) == 1).all()):
            raise ValueError(f"every sequence needs exactly one {REWARD_TOKEN} token")
        return self.rm_head.float()(hidden[at_reward].float())


def checkpoint_keys(name: str) -> str | None:
    """A key of HPSv3.safetensors -> the RewardModel key; None for the LM head, which the reward does not read.

    Accepts the transformers 4.45 layout the release uses (model.*, visual.*) and the 5.x one a re-saved copy
    would have (model.language_model.*, model.visual.*)."""
    for prefix, target in (
        ("model.language_model.", "language_model."),
        ("model.visual.", "visual."),
        ("model.", "language_model."),
        ("visual.", "visual."),
        ("rm_head.", "rm_head."),
    ):
        if name.startswith(prefix):
            return target + name[len(prefix) :]
    if name == "lm_head.weight":
        return None
    return "?" + name  # never a model key: reported as unexpected


def read_checkpoint(path: Path, expected: dict[str, torch.Size] | None = None) -> dict[str, torch.Tensor] | None:
    """The renamed state of HPSv3.safetensors, or with `expected` (key -> shape) only a check of names and shapes
    from the file's header (no tensor read). Errors name the file and the offending keys."""
    from safetensors import safe_open

    if not path.is_file():
        raise ModelError(f"{path}: HPSv3 checkpoint not found")
    state: dict[str, torch.Tensor] = {}
    shapes: dict[str, torch.Size] = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                key = checkpoint_keys(name)
                if key is None:
                    continue
                if expected is None:
                    state[key] = handle.get_tensor(name)
                else:
                    shapes[key] = torch.Size(handle.get_slice(name).get_shape())
    except Exception as error:
        raise ModelError(f"{path}: not a readable safetensors file ({error})") from None
    if expected is None:
        return state
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != shapes[k])
    if missing or unexpected or wrong:
        raise ModelError(
            f"{path}: does not fit the Qwen2-VL configuration; missing keys {missing[:6]}, unexpected keys "
            f"{unexpected[:6]}, other shapes {[(k, tuple(shapes[k]), tuple(expected[k])) for k in wrong[:4]]}"
            " (is `base` the Qwen2-VL-7B-Instruct the checkpoint was trained from?)"
        )
    return None


def vision_rotary(config: Any) -> nn.Module:
    """Qwen2-VL's vision rotary embedding with the angles computed in the dtype of its inv_freq buffer, as
    transformers 4.45's VisionRotaryEmbedding does (torch.outer of an arange in that dtype; cos and sin of the
    result): after the model is cast to bfloat16, as hpsv3 casts it, the angles are bfloat16-rounded (by up to
    ~0.06 rad for the 7B's head size at a 36-patch side), which is what HPSv3 was trained and is run with. 5.x
    multiplies in float32. In float32 both are the same computation."""
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLVisionRotaryEmbedding

    class RoundedAngles(Qwen2VLVisionRotaryEmbedding):
        def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            inv_freq = self.inv_freq.to(x.device)
            freqs = position_ids[..., None].to(inv_freq.dtype) * inv_freq
            cos, sin = freqs.cos().float(), freqs.sin().float()
            return self.recomposition_frequencies(cos), self.recomposition_frequencies(sin)

    return RoundedAngles(config)


def materialise_buffers(model: RewardModel) -> None:
    """Rebuild the two rotary embeddings (non-persistent buffers computed from the config, so left on the meta
    device by a meta-device build; the vision one as `vision_rotary`) and check nothing else stayed there."""
    with torch.device("cpu"):
        model.visual.rotary_pos_emb = vision_rotary(model.visual.rotary_pos_emb.config)
        text = model.language_model.rotary_emb
        model.language_model.rotary_emb = type(text)(text.config)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ModelError(f"HPSv3: tensors without values after loading: {left[:6]}")


def expected_shapes(config: Any) -> dict[str, torch.Size]:
    with torch.device("meta"):
        model = RewardModel(config)
    return {k: v.shape for k, v in model.state_dict().items()}


def run_dtype(device: str, dtype: str) -> torch.dtype:
    """bfloat16 on CUDA unless float32 is asked (float16 too becomes bfloat16: Qwen2 overflows it); float32 on CPU."""
    return torch.bfloat16 if str(device).startswith("cuda") and dtype != "float32" else torch.float32


class HPSv3:
    def __init__(self, model_dir: str | Path, device: str, dtype: str) -> None:
        from transformers import AutoConfig, AutoTokenizer, Qwen2VLImageProcessorPil

        model_dir = Path(model_dir)
        self.template = prompt_template()  # before 16 GB of weights: a changed instruction fails at once
        try:
            record = json.loads((model_dir / "scorer.json").read_text())
            record["weights"], record["reward_token_id"]
        except (ValueError, KeyError) as error:
            raise ModelError(
                f"{model_dir / 'scorer.json'}: not a prepared HPSv3 record ({error}); prepare again"
            ) from None
        if record.get("prompt_sha256") != PROMPT_SHA256:
            raise ModelError(f"{model_dir}: prepared with another instruction; run prepare-scorer again")
        self.name = "hpsv3"
        self.device = device
        self.dtype = run_dtype(device, dtype)
        config = AutoConfig.from_pretrained(model_dir)
        with torch.device("meta"):
            model = RewardModel(config)
        weights = model_dir / record["weights"]
        state = read_checkpoint(weights)
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as error:
            raise ModelError(f"HPSv3 checkpoint {weights}: {error}") from None
        materialise_buffers(model)
        model.visual.to(self.dtype)
        model.language_model.to(self.dtype)
        self.model = model.to(device).eval()
        self.model.rm_head.float()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "right"
        self.chat_template = (model_dir / "chat_template.jinja").read_text()
        self.reward_token_id = self.tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
        if self.reward_token_id != record["reward_token_id"]:
            raise ModelError(f"{model_dir}: the tokenizer's {REWARD_TOKEN} id differs from scorer.json's")
        processor = json.loads((model_dir / "preprocessor_config.json").read_text())
        keys = ("image_mean", "image_std", "patch_size", "temporal_patch_size", "merge_size")
        self.image_processor = Qwen2VLImageProcessorPil(**{k: processor[k] for k in keys if k in processor})
        self.merge = self.image_processor.merge_size**2

    def encode(self, images: list[Image.Image], prompts: list[str]) -> dict[str, torch.Tensor]:
        """prepare_batch: pixels and the chat text with one image-pad token per merged patch."""
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        for prompt in prompts:  # the tokenizer would read these as the template's own tokens
            if IMAGE_TOKEN in prompt or REWARD_TOKEN in prompt:
                raise DataError(
                    f"prompt {prompt[:80]!r} contains {IMAGE_TOKEN} or {REWARD_TOKEN}, which HPSv3 cannot score"
                )
        for image in images:
            if max(image.size) / min(image.size) > MAX_RATIO:
                raise DataError(
                    f"an image of {image.size[0]} x {image.size[1]} px: aspect ratio over HPSv3's {MAX_RATIO}"
                )
        vision = self.image_processor([resize(i) for i in images], do_resize=False, return_tensors="pt")
        texts = []
        for prompt, grid in zip(prompts, vision["image_grid_thw"]):
            text = self.tokenizer.apply_chat_template(
                conversation(prompt, self.template),
                chat_template=self.chat_template,
                tokenize=False,
                add_generation_prompt=True,
            )
            if text.count(IMAGE_TOKEN) != 1:
                raise ModelError(f"the chat template renders {text.count(IMAGE_TOKEN)} image tokens for one image")
            texts.append(text.replace(IMAGE_TOKEN, IMAGE_TOKEN * (int(grid.prod()) // self.merge)))
        tokens = self.tokenizer(texts, padding=True, return_tensors="pt")
        return {
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "pixel_values": vision["pixel_values"],
            "image_grid_thw": vision["image_grid_thw"],
        }

    @torch.no_grad()
    def outputs(self, images: list[Image.Image], prompts: list[str]) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in self.encode(images, prompts).items()}
        return self.model(**batch, reward_token_id=self.reward_token_id).double().cpu()

    def score_columns(self, images: list[Image.Image], prompts: list[str]) -> dict[str, np.ndarray]:
        out = self.outputs(images, prompts)
        return {"score": out[:, 0].numpy(), "sigma": out[:, 1].exp().numpy()}

    def score(self, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
        return self.outputs(images, prompts)[:, 0].numpy()


def load(cfg: dict[str, Any], device: str, dtype: str) -> HPSv3:
    from .base import location

    model_dir = Path(location(cfg["model"], "scorers.hpsv3.model"))
    if not (model_dir / "scorer.json").is_file():
        raise ModelError(f"{model_dir}: not a prepared HPSv3 directory; run `inpo-bench prepare-scorer --scorer hpsv3`")
    return HPSv3(model_dir, device, dtype)


def prepare(checkpoint: str | Path, base: str | Path, out_dir: str | Path) -> Path:
    """HPSv3.safetensors + Qwen2-VL-7B-Instruct's configuration, tokenizer and chat template -> a directory
    `load` reads: the tokenizer with `<|Reward|>`, the configuration with the resized vocabulary, the weights
    (hard-linked, or copied across file systems) after a check of every name and shape against that
    configuration, and scorer.json."""
    import os
    import shutil

    from transformers import AddedToken, AutoConfig, AutoTokenizer

    from ..runtime import sha256

    checkpoint, base, out_dir = Path(checkpoint), Path(base), Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if REWARD_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(REWARD_TOKEN, special=True, normalized=False)], special_tokens=True)
    reward_id = tokenizer.convert_tokens_to_ids(REWARD_TOKEN)
    config = AutoConfig.from_pretrained(base)
    config.text_config.vocab_size = len(tokenizer)  # resize_token_embeddings(len(tokenizer))
    config.vocab_size = len(tokenizer)
    read_checkpoint(checkpoint, expected_shapes(config))
    template = _chat_template(base, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scorer.json").unlink(missing_ok=True)  # written last: no record of a half-prepared directory
    weights = out_dir / "HPSv3.safetensors"
    if not (weights.exists() and os.path.samefile(checkpoint, weights)):  # preparing the prepared file again
        weights.unlink(missing_ok=True)
        try:
            os.link(checkpoint, weights)
        except OSError:
            shutil.copyfile(checkpoint, weights)
    config.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").write_text(template)
    shutil.copyfile(base / "preprocessor_config.json", out_dir / "preprocessor_config.json")
    (out_dir / "scorer.json").write_text(
        json.dumps(
            {
                "scorer": "hpsv3",
                "source": str(checkpoint),
                "sha256": sha256(checkpoint),
                "base": str(base),
                "weights": weights.name,
                "reward_token_id": reward_id,
                "prompt_sha256": PROMPT_SHA256,
                "score": "mu of the reward head at <|Reward|> (hpsv3 inference: rewards[i][0]); sigma = exp(column 1)",
            },
            indent=2,
        )
        + "\n"
    )
    return out_dir


def _chat_template(base: Path, tokenizer: Any) -> str:
    """The template the upstream processor renders with: the processor's chat_template.json, else the
    tokenizer's (as transformers 4.45's ProcessorMixin.apply_chat_template chooses)."""
    for name in ("chat_template.json", "chat_template.jinja"):
        path = base / name
        if path.is_file():
            if name.endswith(".jinja"):
                return path.read_text()
            try:
                return json.loads(path.read_text())["chat_template"]
            except (ValueError, KeyError) as error:
                raise ModelError(f"{path}: no readable chat_template ({error})") from None
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    raise ModelError(f"{base}: no chat template (chat_template.json or the tokenizer's); give Qwen2-VL-7B-Instruct")
