"""The upstream side of bench/upstream_compare.py: run inside the throwaway venv of bench/upstream_setup.sh.

It imports only the upstream packages (hpsv2x, image-reward, openai-clip, torchmetrics, hpsv3, transformers 4.45)
and never inpo_bench. Input: a JSON job (scorer, weights, images, prompts) written by upstream_compare.py.
Output: one score per (image, prompt) pair, as each package computes it, to the JSON file named in the job.
Everything runs on the CPU in float32 (each package's own precision settings are switched off where they
assume CUDA: hpsv2's amp autocast, HPSv3's bf16 config).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from PIL import Image


def hps(job: dict) -> list[float]:
    """hpsv2.img_score.score, with the package's open_clip on a registered tiny model config."""
    from hpsv2.src.open_clip import create_model_and_transforms, get_tokenizer
    from hpsv2.src.open_clip.factory import add_model_config

    add_model_config(job["open_clip_config"])
    model, _, preprocess_val = create_model_and_transforms(
        Path(job["open_clip_config"]).stem,
        None,
        precision="fp32",
        device="cpu",
        jit=False,
        force_quick_gelu=False,
        force_custom_text=False,
        force_patch_dropout=False,
        force_image_size=None,
        pretrained_image=False,
        image_mean=None,
        image_std=None,
        light_augmentation=True,
        aug_cfg={},
        output_dict=True,
        with_score_predictor=False,
        with_region_predictor=False,
    )
    checkpoint = torch.load(job["checkpoint"], map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    tokenizer = get_tokenizer("ViT-H-14")
    scores = []
    with torch.no_grad():
        for path, prompt in zip(job["images"], job["prompts"]):
            image = preprocess_val(Image.open(path)).unsqueeze(0)
            try:
                out = model(image, tokenizer([prompt]))
            except RuntimeError:  # hpsv2 neither resizes nor pads an image whose long side is already the size
                scores.append(float("nan"))
                continue
            scores.append(float((out["image_features"] @ out["text_features"].T).diagonal()[0]))
    return scores


def pickscore(job: dict) -> list[float]:
    """The PickScore_v1 model card's inference code (transformers AutoProcessor + AutoModel)."""
    from transformers import AutoModel, AutoProcessor

    processor = AutoProcessor.from_pretrained(job["processor"])
    model = AutoModel.from_pretrained(job["model"]).eval()
    scores = []
    with torch.no_grad():
        for path, prompt in zip(job["images"], job["prompts"]):
            image_inputs = processor(
                images=[Image.open(path)], padding=True, truncation=True, max_length=77, return_tensors="pt"
            )
            text_inputs = processor(text=[prompt], padding=True, truncation=True, max_length=77, return_tensors="pt")
            image_embs = model.get_image_features(**image_inputs)
            image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
            text_embs = model.get_text_features(**text_inputs)
            text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
            scores.append(float(model.logit_scale.exp() * (text_embs @ image_embs.T)[0, 0]))
    return scores


def clip_score(job: dict) -> list[float]:
    """torchmetrics' CLIPScore per image, before its clamp at 0 (functional _clip_score_update)."""
    import numpy as np
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(job["model"]).eval()
    processor = CLIPProcessor.from_pretrained(job["model"])
    scores = []
    with torch.no_grad():
        for path, prompt in zip(job["images"], job["prompts"]):
            pixels = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)
            score, _ = _clip_score_update([pixels], [prompt], model, processor)
            scores.append(float(score[0]))
    return scores


def aesthetic(job: dict) -> list[float]:
    """improved-aesthetic-predictor simple_inference.py: OpenAI clip's model and preprocess, L2-normalised
    image embedding (numpy), the MLP head."""
    import clip
    import numpy as np
    from torch import nn

    state = torch.load(job["clip"], map_location="cpu", weights_only=True)
    model = clip.model.build_model(state).float().eval()
    preprocess = clip.clip._transform(model.visual.input_resolution)

    class MLP(nn.Module):  # the predictor's layer stack, written out: this venv has no inpo_bench
        def __init__(self, size: int) -> None:
            super().__init__()
            self.layers = nn.Sequential(
                nn.Linear(size, 1024),
                nn.Dropout(0.2),
                nn.Linear(1024, 128),
                nn.Dropout(0.2),
                nn.Linear(128, 64),
                nn.Dropout(0.1),
                nn.Linear(64, 16),
                nn.Linear(16, 1),
            )

        def forward(self, x):
            return self.layers(x)

    head = MLP(model.visual.output_dim)
    head.load_state_dict(torch.load(job["head"], map_location="cpu", weights_only=True))
    head.eval()
    scores = []
    with torch.no_grad():
        for path in job["images"]:
            features = model.encode_image(preprocess(Image.open(path)).unsqueeze(0)).numpy()
            features = features / np.linalg.norm(features, 2, -1, keepdims=True)
            scores.append(float(head(torch.from_numpy(features).float())[0, 0]))
    return scores


def imagereward(job: dict) -> list[float]:
    """ImageReward.ImageReward.score, with the package's BLIP on the tiny ViT of the checkpoint (the package
    hard-codes ViT-L at 224 px; its create_vit and image size are swapped for the tiny ones)."""
    import importlib

    import ImageReward.models.BLIP.blip_pretrain as blip_pretrain
    from ImageReward.models.BLIP.vit import VisionTransformer

    ir = importlib.import_module("ImageReward.ImageReward")  # the module (the package re-exports the class)

    size, patch, width, depth, heads = (job["vit"][k] for k in ("image_size", "patch", "width", "depth", "heads"))

    def create_vit(vit, image_size, use_grad_checkpointing=False, ckpt_layer=0, drop_path_rate=0):
        return VisionTransformer(
            img_size=size, patch_size=patch, embed_dim=width, depth=depth, num_heads=heads, drop_path_rate=0
        ), width

    from transformers import BertTokenizer

    hub_tokenizer = BertTokenizer.from_pretrained
    BertTokenizer.from_pretrained = lambda name, *a, **k: hub_tokenizer(job["bert"], *a, **k)  # no hub here
    blip_pretrain.create_vit = create_vit
    model = ir.ImageReward(device="cpu", med_config=job["med_config"]).to("cpu")
    state = torch.load(job["checkpoint"], map_location="cpu", weights_only=True)
    # the package's MLP(768) and 256-wide projections, at the tiny checkpoint's widths
    model.mlp = ir.MLP(state["mlp.layers.0.weight"].shape[1])
    model.blip.vision_proj = torch.nn.Linear(width, state["blip.vision_proj.weight"].shape[0])
    model.blip.text_proj = torch.nn.Linear(width, state["blip.text_proj.weight"].shape[0])
    model.preprocess = ir._transform(size)
    missing, unexpected = model.load_state_dict(state, strict=False)  # strict=False as ImageReward.load
    if missing or unexpected:
        raise SystemExit(f"ImageReward: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    with torch.no_grad():
        return [float(model.score(prompt, path)) for path, prompt in zip(job["images"], job["prompts"])]


def hpsv3(job: dict) -> list[list[float]]:
    """hpsv3.inference.HPSv3RewardInferencer.reward on the tiny Qwen2-VL; [mu, log sigma] per image."""
    import yaml
    from hpsv3.inference import HPSv3RewardInferencer

    config = yaml.safe_load(Path(job["config"]).read_text())
    config |= {"model_name_or_path": job["base"], "bf16": False, "torch_dtype": "float32"}
    local = Path(job["out"]).with_name("hpsv3_cpu.yaml")
    local.write_text(yaml.safe_dump(config))
    inferencer = HPSv3RewardInferencer(config_path=str(local), checkpoint_path=job["checkpoint"], device="cpu")
    out = []
    with torch.no_grad():
        for start in range(0, len(job["images"]), 8):  # the package's own batching is the caller's
            block = slice(start, start + 8)
            out += inferencer.reward(job["images"][block], job["prompts"][block]).double().tolist()
    return out


RUNNERS = {
    "hps": hps,
    "pickscore": pickscore,
    "clip": clip_score,
    "aesthetic": aesthetic,
    "imagereward": imagereward,
    "hpsv3": hpsv3,
}

if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    torch.manual_seed(0)
    Path(job["out"]).write_text(json.dumps({"scores": RUNNERS[job["runner"]](job)}))
