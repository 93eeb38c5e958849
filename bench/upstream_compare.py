"""The suite's scorers against the upstream packages, on the same tiny weights in each upstream format.

    bash bench/upstream_setup.sh /tmp/inpo-upstream          # once: a throwaway venv outside the project
    python bench/upstream_compare.py --python /tmp/inpo-upstream/bin/python

Every scorer scores the same image files against the same prompts twice: through the suite (`load_scorer`, in
batches, as `inpo-bench score` does) and through its upstream package (bench/upstream_runner.py in the throwaway
venv: hpsv2x 1.2.0, image-reward 1.5, the PickScore model card's code, improved-aesthetic-predictor on
openai-clip 1.0.1, torchmetrics 1.9.0 CLIPScore, hpsv3 1.0.0; transformers 4.45.2 there, the suite's 5.x here).
The images exercise resize, centre crop and letterbox (squares, wide and tall ones, one whose long side is the
model's size, tiny ones) and mode conversion (RGBA, palette, grey); the prompts exercise HPS's cleaning (curly
quotes, HTML entities, ligatures, full-width letters, runs of whitespace) and truncation (longer than 77 tokens).
Tiny weights: the smoke stand-ins, with OpenAI's real BPE vocabulary (read from the venv's open_clip copy) where the
upstream tokenises with it, and a 64-wide CLIP where openai-clip derives its head count as width / 64.
Prints a Markdown table: max absolute and relative difference per scorer, and the share of image pairs (per
prompt) that both rank alike.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from inpo_bench.models.tokenizer import byte_symbols
from inpo_bench.scorers import hps, imagereward, load_scorer
from inpo_bench.scorers import hpsv3 as hpsv3_scorer
from inpo_bench.smoke import hpsv3 as hpsv3_standin
from inpo_bench.smoke import scorers as standins

HERE = Path(__file__).resolve().parent
PROMPTS = [
    "a red circle on a blue background",
    '“a dog’s toy” — isn’t it "cute"?',
    "cats &amp; dogs &lt;b&gt;bold&lt;/b&gt; &#39;quoted&#39;",
    "ﬁne ﬂowers in a ﬁeld",
    "ＡＢＣ ｆｕｌｌ－ｗｉｄｔｈ　ｃａｔ",
    "  spaces   and\ttabs\nand newlines  ",
    "a photo of a cat sitting on a green square next to a dog " * 6,  # > 77 tokens
    "café crème brûlée, naïve façade 🐱🎨",
]


def image_set(folder: Path) -> list[Path]:
    """Files in their own modes and sizes (the tiny models' input size is 32 px; HPSv3's is 256 x 28 x 28 px)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)

    def noise(w: int, h: int, channels: int = 3) -> np.ndarray:
        smooth = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, channels)).astype(np.uint8)
        return np.asarray(Image.fromarray(smooth.squeeze()).resize((w, h), Image.BILINEAR))

    images = {
        "square_64": Image.fromarray(noise(64, 64)),
        "wide_96x40": Image.fromarray(noise(96, 40)),
        "tall_30x70": Image.fromarray(noise(30, 70)),
        "long_side_32_wide": Image.fromarray(noise(32, 20)),  # HPS letterbox: already at size, still padded
        "long_side_32_tall": Image.fromarray(noise(18, 32)),
        "tiny_9x7": Image.fromarray(noise(9, 7)),
        "odd_crop_45x33": Image.fromarray(noise(45, 33)),  # centre-crop offset rounding
        "sdxl_like_1024x768": Image.fromarray(noise(1024, 768)),
        "rgba_40": Image.fromarray(noise(40, 40, 4), "RGBA"),
        "palette_50x30": Image.fromarray(noise(50, 30)).convert("P", palette=Image.ADAPTIVE, colors=16),
        "grey_30x50": Image.fromarray(noise(30, 50)).convert("L"),
    }
    paths = []
    for name, image in images.items():
        paths.append(folder / f"{name}.png")
        image.save(paths[-1])
    return paths


def openai_tokenizer(bpe_gz: Path):
    """OpenAI CLIP's BPE (open_clip's bpe_simple_vocab_16e6.txt.gz) as a transformers CLIPTokenizer: the same
    vocabulary as openai/clip-vit-large-patch14's, 49408 ids."""
    from transformers import CLIPTokenizer

    with gzip.open(bpe_gz) as handle:
        merges = handle.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    # the byte symbols in bytes_to_unicode's dict order (printable bytes first), as open_clip lists them
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    by_byte = byte_symbols()
    symbols = [by_byte[b] for b in printable] + [by_byte[b] for b in range(256) if b not in printable]
    vocab = (
        symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    )
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges, model_max_length=77)


def build(work: Path, upstream_site: Path) -> dict[str, dict]:
    """The weights of every scorer in both formats: what the suite loads and what the upstream runner loads."""
    tok = openai_tokenizer(upstream_site / "hpsv2" / "src" / "open_clip" / "bpe_simple_vocab_16e6.txt.gz")
    vocab = len(tok)
    jobs: dict[str, dict] = {}

    hps_clip = standins.clip_dir(work / "hps-arch", seed=0, tokenizer=tok)
    config = {
        "embed_dim": standins.EMBED,
        "vision_cfg": {
            "image_size": standins.IMAGE,
            "layers": standins.LAYERS,
            "width": standins.WIDTH,
            "head_width": standins.WIDTH // standins.HEADS,
            "patch_size": standins.PATCH,
        },
        "text_cfg": {
            "context_length": 77,
            "vocab_size": vocab,
            "width": standins.WIDTH,
            "heads": standins.HEADS,
            "layers": standins.LAYERS,
        },
    }
    (work / "inpo-tiny-hps.json").write_text(json.dumps(config))
    for name, seed in (("hpsv2", 7), ("hpsv21", 1)):
        checkpoint = work / f"{name}.pt"
        torch.save({"state_dict": standins.openclip_state(seed=seed, vocab=vocab)}, checkpoint)
        suite = hps.convert(checkpoint, str(hps_clip), work / f"{name}-converted", name)
        jobs[name] = {
            "suite": (name, {"model": str(suite)}),
            "upstream": {
                "runner": "hps",
                "checkpoint": str(checkpoint),
                "open_clip_config": str(work / "inpo-tiny-hps.json"),
            },
        }

    pick = standins.clip_dir(work / "pickscore", seed=4, tokenizer=tok)
    jobs["pickscore"] = {
        "suite": ("pickscore", {"model": str(pick), "processor": str(pick)}),
        "upstream": {"runner": "pickscore", "model": str(pick), "processor": str(pick)},
    }
    clip_l = standins.clip_dir(work / "clip-l", seed=5, act="quick_gelu", tokenizer=tok)
    jobs["clip"] = {"suite": ("clip", {"model": str(clip_l)}), "upstream": {"runner": "clip", "model": str(clip_l)}}

    # the aesthetic backbone: an OpenAI-format CLIP 64 wide (openai-clip's build_model takes heads = width // 64)
    # stored in fp16 as OpenAI's release is (openai-clip's build_model loads into fp16 parameters, so fp32 random
    # weights would be rounded on that side only)
    openai_state = {k: v.half().float() for k, v in standins.openclip_state(seed=9, width=64).items()}
    torch.save(openai_state, work / "clip-openai.pt")
    aesthetic_clip = standins.clip_dir(work / "aesthetic-arch", act="quick_gelu", width=64, heads=1)
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(aesthetic_clip)
    model.load_state_dict(hps.openclip_to_hf(openai_state), strict=True)
    model.save_pretrained(aesthetic_clip)
    torch.save(standins.aesthetic_head_state(), work / "aesthetic-head.pth")
    jobs["aesthetic"] = {
        "suite": ("aesthetic", {"clip": str(aesthetic_clip), "head": str(work / "aesthetic-head.pth")}),
        "upstream": {
            "runner": "aesthetic",
            "clip": str(work / "clip-openai.pt"),
            "head": str(work / "aesthetic-head.pth"),
        },
    }

    bert = standins.bert_dir(work / "bert")
    bert_vocab = len(dict.fromkeys(standins.BERT_VOCAB)) + 2
    (work / "med_config.json").write_text(json.dumps(standins.med_config(bert_vocab)))
    torch.save(standins.imagereward_state(bert_vocab), work / "ImageReward.pt")
    converted = imagereward.convert(
        work / "ImageReward.pt", work / "med_config.json", str(bert), work / "imagereward", vision_heads=standins.HEADS
    )
    jobs["imagereward"] = {
        "suite": ("imagereward", {"model": str(converted)}),
        "upstream": {
            "runner": "imagereward",
            "checkpoint": str(work / "ImageReward.pt"),
            "med_config": str(work / "med_config.json"),
            "bert": str(bert),
            "vit": {
                "image_size": 32,
                "patch": 16,
                "width": standins.WIDTH,
                "depth": standins.LAYERS,
                "heads": standins.HEADS,
            },
        },
    }

    release = hpsv3_standin.build(work / "hpsv3")
    prepared = hpsv3_scorer.prepare(release["hpsv3_checkpoint"], release["qwen2vl"], work / "hpsv3-prepared")
    jobs["hpsv3"] = {
        "suite": ("hpsv3", {"model": str(prepared)}),
        "upstream": {
            "runner": "hpsv3",
            "checkpoint": str(release["hpsv3_checkpoint"]),
            "base": str(release["qwen2vl"]),
            "config": str(upstream_site / "hpsv3" / "config" / "HPSv3_7B.yaml"),
        },
    }
    return jobs


def suite_scores(name: str, cfg: dict, paths: list[Path], prompts: list[str], batch: int = 8) -> np.ndarray:
    """The suite's scores through score_index, the path of `inpo-bench score` (HPSv3: mu and log sigma)."""
    import pandas as pd

    from inpo_bench.scorers.base import score_index

    index = pd.DataFrame(
        {
            "prompt_id": [str(i) for i in range(len(paths))],
            "seed": 0,
            "prompt": prompts,
            "file": [p.name for p in paths],
        }
    )
    frame = score_index(load_scorer(name, cfg), index, paths[0].parent, batch)
    if "sigma" in frame:
        return np.stack([frame.score.to_numpy(), np.log(frame.sigma.to_numpy())], -1)
    return frame.score.to_numpy(dtype=np.float64)


def same_order(a: np.ndarray, b: np.ndarray, prompts: list[str]) -> float:
    """Share of image pairs under one prompt that both rank alike (ties count as alike only if tied in both)."""
    agree = total = 0
    for prompt in set(prompts):
        idx = [i for i, p in enumerate(prompts) if p == prompt]
        for i in idx:
            for j in idx:
                if i < j:
                    total += 1
                    agree += np.sign(a[i] - a[j]) == np.sign(b[i] - b[j])
    return agree / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="python of the throwaway venv (bench/upstream_setup.sh)")
    parser.add_argument("--scorers", nargs="*", default=None, help="a subset (default: all)")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="upstream-compare-"))
    site = Path(
        subprocess.run(
            [args.python, "-c", "import hpsv2, os; print(os.path.dirname(os.path.dirname(hpsv2.__file__)))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    torch.manual_seed(0)
    paths = image_set(work / "images")
    pairs = [(p, q) for q in PROMPTS for p in paths]
    images, prompts = [p for p, _ in pairs], [q for _, q in pairs]
    jobs = build(work / "weights", site)
    print("| scorer | pairs | mean abs score | max abs diff | max rel diff | same order | note |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for name, job in jobs.items():
        if args.scorers and name not in args.scorers:
            continue
        ours = suite_scores(*job["suite"], images, prompts)
        spec = job["upstream"] | {
            "images": [str(p) for p in images],
            "prompts": prompts,
            "out": str(work / f"{name}.json"),
        }
        (work / f"{name}.job.json").write_text(json.dumps(spec))
        subprocess.run([args.python, str(HERE / "upstream_runner.py"), str(work / f"{name}.job.json")], check=True)
        theirs = np.asarray(json.loads((work / f"{name}.json").read_text())["scores"], dtype=np.float64)
        extra = ""
        if ours.ndim == 2:  # HPSv3: mu and log sigma
            extra = f"log sigma max abs diff {np.abs(ours[:, 1] - theirs[:, 1]).max():.1e}"
            ours, theirs = ours[:, 0], theirs[:, 0]
        failed, excluded = np.isnan(theirs), np.zeros(len(theirs), dtype=bool)
        if name == "clip":  # the documented difference: torchmetrics cuts a > 77-token prompt's end token off
            from transformers import AutoTokenizer

            tokens = AutoTokenizer.from_pretrained(job["suite"][1]["model"])
            excluded = np.array([len(tokens(p).input_ids) > 77 for p in prompts])
            gap = np.abs(ours[excluded] - theirs[excluded]).max()
            extra += f"excluded: {int(excluded.sum())} pairs with a prompt over 77 tokens (max abs diff {gap:.2g}). "
        if failed.any():  # compared on the rest; named in the note
            names = sorted({Path(images[i]).stem for i in np.flatnonzero(failed)})
            extra += f"upstream fails on {int(failed.sum())} pairs ({', '.join(names)}); the suite scores them. "
        keep = ~failed & ~excluded
        diff = np.abs(ours[keep] - theirs[keep])
        kept_prompts = [p for p, k in zip(prompts, keep) if k]
        rel = diff / np.maximum(np.abs(theirs[keep]), 1e-12)
        order = same_order(ours[keep], theirs[keep], kept_prompts)
        row = (name, int(keep.sum()), float(np.abs(theirs[keep]).mean()), diff.max(), rel.max(), order, extra)
        print("| {} | {} | {:.4g} | {:.1e} | {:.1e} | {:.1%} | {} |".format(*row), flush=True)
        np.savez(work / f"{name}.npz", suite=ours, upstream=theirs)
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
