"""Every model scorer through its real loading path, on tiny random models in the upstream formats; converters
and preprocessing against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from inpo_bench.errors import ModelError
from inpo_bench.scorers import hps, imagereward, load_scorer
from inpo_bench.scorers.heads import RewardHead
from inpo_bench.scorers.preprocess import OPENAI_MEAN, OPENAI_STD, clip_preprocess, crop_offsets, letterbox
from inpo_bench.smoke.scorers import HEADS, build_all, imagereward_state, openclip_state
from tests import reference_models as ref


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scorers")
    paths = build_all(root)
    paths["hpsv21"] = hps.convert(paths["hpsv21_checkpoint"], str(paths["clip"]), root / "hpsv21", "hpsv21")
    paths["imagereward"] = imagereward.convert(
        paths["imagereward_checkpoint"],
        paths["med_config"],
        str(paths["bert"]),
        root / "imagereward",
        vision_heads=HEADS,
    )
    return paths


def configs(files):
    return {
        "pickscore": {"model": str(files["pickscore"]), "processor": str(files["clip"])},
        "hpsv21": {"model": str(files["hpsv21"])},
        "imagereward": {"model": str(files["imagereward"])},
        "aesthetic": {"clip": str(files["clip_l"]), "head": str(files["aesthetic_head"])},
        "clip": {"model": str(files["clip_l"])},
    }


def images(n=4, seed=0, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(n)]


PROMPTS = ["a red circle", "a photo of a cat", "a blue square on a green background", "dog"]


@pytest.mark.parametrize("name", ["pickscore", "hpsv21", "imagereward", "aesthetic", "clip"])
def test_scorer_contract(files, name):
    scorer = load_scorer(name, configs(files)[name])
    batch = images()
    scores = scorer.score(batch, PROMPTS)
    assert scores.shape == (4,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    assert np.array_equal(scores, scorer.score(batch, PROMPTS))  # deterministic
    order = [2, 0, 3, 1]
    permuted = scorer.score([batch[i] for i in order], [PROMPTS[i] for i in order])
    assert np.allclose(permuted, scores[order], atol=1e-5)  # equivariant: no cross-talk within a batch
    assert len(np.unique(np.round(scores, 6))) > 1  # different images score differently
    one_by_one = np.concatenate([scorer.score([im], [p]) for im, p in zip(batch, PROMPTS)])
    assert np.allclose(one_by_one, scores, atol=1e-5)  # batching does not change a score


def test_pickscore_is_logit_scale_times_cosine(files):
    scorer = load_scorer("pickscore", configs(files)["pickscore"])
    batch = images(2)
    pixels = scorer.images(images=batch, return_tensors="pt")["pixel_values"]
    text = scorer.tokenizer(PROMPTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = scorer.model(pixel_values=pixels, **text)
    # transformers' own logits: logit_scale.exp() * cos for every text x image; ours is its diagonal
    assert np.allclose(scorer.score(batch, PROMPTS[:2]), out.logits_per_text.diagonal().numpy(), atol=1e-4)
    clip = load_scorer("clip", configs(files)["clip"])
    with torch.no_grad():
        out = clip.model(
            pixel_values=clip.images(images=batch, return_tensors="pt")["pixel_values"],
            **clip.tokenizer(PROMPTS[:2], padding=True, return_tensors="pt"),
        )
    cos = (out.logits_per_text.diagonal() / clip.model.logit_scale.exp()).detach()
    assert np.allclose(clip.score(batch, PROMPTS[:2]), 100 * cos.numpy(), atol=1e-4)


def test_hps_converter_matches_a_direct_open_clip_computation(files):
    scorer = load_scorer("hpsv21", configs(files)["hpsv21"])
    state = openclip_state()
    batch = images(3, seed=1)
    pixels = letterbox(batch, 32)
    ids = scorer.tokenizer(PROMPTS[:3], padding=True, return_tensors="pt").input_ids
    with torch.no_grad():
        image = ref.openclip_image(state, pixels, HEADS)
        text = ref.openclip_text(state, ids, HEADS)
        hf_image = scorer.model.get_image_features(pixel_values=pixels).pooler_output
        hf_text = scorer.model.get_text_features(input_ids=ids, attention_mask=(ids != -1).long()).pooler_output
    assert torch.allclose(hf_image, image, atol=1e-5) and torch.allclose(hf_text, text, atol=1e-5)
    expected = torch.nn.functional.cosine_similarity(image, text).numpy()
    assert np.allclose(scorer.score(batch, PROMPTS[:3]), expected, atol=1e-5)


def test_imagereward_converter_matches_a_direct_blip_computation(files):
    scorer = load_scorer("imagereward", configs(files)["imagereward"])
    vocab = len(scorer.tokenizer)
    state = imagereward_state(vocab)
    batch = images(3, seed=2)
    pixels = clip_preprocess(batch, 32, rounding="round")
    text = scorer.tokenizer(PROMPTS[:3], padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert text.input_ids.shape == (3, 35) and (text.input_ids[:, 0] == scorer.tokenizer.cls_token_id).all()
    with torch.no_grad():
        expected = ref.imagereward(state, pixels, text.input_ids, text.attention_mask, HEADS, HEADS)
    assert np.allclose(scorer.score(batch, PROMPTS[:3]), expected.numpy(), atol=1e-5)
    assert scorer.tokenizer.convert_tokens_to_ids("[ENC]") == vocab - 1  # ImageReward's two added tokens


def test_aesthetic_is_the_affine_head_on_the_normalised_embedding(files):
    scorer = load_scorer("aesthetic", configs(files)["aesthetic"])
    batch = images(2, seed=3)
    with torch.no_grad():
        emb = scorer.model.get_image_features(pixel_values=clip_preprocess(batch, 32)).pooler_output
    emb = emb / emb.norm(dim=-1, keepdim=True)
    head = torch.load(files["aesthetic_head"], weights_only=True)
    weight, bias = torch.eye(emb.shape[-1]), torch.zeros(emb.shape[-1])
    for i in (0, 2, 4, 6, 7):  # compose the five linear maps by hand: dropout is off, there is no activation
        weight, bias = head[f"layers.{i}.weight"] @ weight, head[f"layers.{i}.weight"] @ bias + head[f"layers.{i}.bias"]
    expected = (emb @ weight.T + bias).squeeze(-1)
    assert np.allclose(scorer.score(batch, ["ignored", "also ignored"]), expected.numpy(), atol=1e-5)


def test_strict_loading_rejects_wrong_checkpoints(files, tmp_path):
    state = openclip_state()
    state.pop("visual.ln_post.bias")
    torch.save({"state_dict": state}, tmp_path / "no-norm.pt")
    with pytest.raises(ModelError, match=r"key 'visual\.ln_post\.bias' is missing"):
        hps.convert(tmp_path / "no-norm.pt", str(files["clip"]), tmp_path / "out", "hpsv21")
    state = {k: v for k, v in openclip_state().items() if not k.startswith("visual.transformer.resblocks.1.")}
    torch.save({"state_dict": state}, tmp_path / "missing.pt")  # a checkpoint with one vision block too few
    with pytest.raises(ModelError, match=r"missing keys \['vision_model.encoder.layers.1"):
        hps.convert(tmp_path / "missing.pt", str(files["clip"]), tmp_path / "out", "hpsv21")
    state = openclip_state()
    state["visual.extra.weight"] = torch.zeros(2)
    torch.save({"state_dict": state}, tmp_path / "extra.pt")
    with pytest.raises(ModelError, match=r"unexpected keys\): \['visual.extra.weight'\]"):
        hps.convert(tmp_path / "extra.pt", str(files["clip"]), tmp_path / "out2", "hpsv21")
    head = load_file(files["imagereward"] / "head.safetensors")
    torch.save(
        {**{f"layers.{k.split('.', 1)[1]}": v for k, v in head.items()}, "bonus": torch.zeros(1)}, tmp_path / "head.pth"
    )
    with pytest.raises(ModelError, match=r"unexpected keys \['bonus'\]"):
        load_scorer("aesthetic", {"clip": str(files["clip_l"]), "head": str(tmp_path / "head.pth")})
    ir = torch.load(files["imagereward_checkpoint"], weights_only=True)
    ir.pop("blip.text_encoder.encoder.layer.0.crossattention.self.key.weight")
    torch.save(ir, tmp_path / "ir.pt")
    with pytest.raises(ModelError, match=r"crossattention\.self\.key\.weight"):
        imagereward.convert(tmp_path / "ir.pt", files["med_config"], str(files["bert"]), tmp_path / "ir", HEADS)


def test_missing_files_and_unconverted_models_are_clear_errors(files, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_scorer("pickscore", {"model": str(tmp_path / "nowhere"), "processor": str(files["clip"])})
    with pytest.raises(ModelError, match="not a converted HPS model"):
        load_scorer("hpsv21", {"model": str(files["clip"])})
    with pytest.raises(ModelError, match=r"head\.pth does not exist"):
        load_scorer("aesthetic", {"clip": str(files["clip_l"]), "head": str(tmp_path / "head.pth")})
    (tmp_path / "pickled.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="weights-only"):
        load_scorer("aesthetic", {"clip": str(files["clip_l"]), "head": str(tmp_path / "pickled.pt")})


# --- preprocessing -----------------------------------------------------------------------------------------


def test_crop_offsets_round_like_torchvision_and_floor_like_transformers():
    # (347 - 224) / 2 = 61.5: torchvision rounds to 62 (round half to even gives 62), transformers floors to 61
    assert crop_offsets(347, 224, 224, "round") == (62, 0) and crop_offsets(347, 224, 224, "floor") == (61, 0)
    assert crop_offsets(300, 300, 224, "round") == crop_offsets(300, 300, 224, "floor") == (38, 38)


def test_clip_preprocess_crops_where_the_rounding_says():
    # a 16 x 19 image whose columns are numbered: after no resize (short side 16) the crop starts at column
    # round(3 / 2) = 2 with torchvision rounding and floor(3 / 2) = 1 with transformers'
    columns = np.tile(np.arange(19, dtype=np.uint8) * 10, (16, 1))
    image = Image.fromarray(np.stack([columns] * 3, -1))
    for rounding, first in (("round", 2), ("floor", 1)):
        x = clip_preprocess([image], 16, rounding)[0]
        red = x[0] * OPENAI_STD[0] + OPENAI_MEAN[0]
        assert torch.allclose(red[0, 0], torch.tensor(first * 10 / 255.0), atol=1e-6), rounding


def test_clip_preprocess_matches_the_transformers_processor_with_floor(files):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(files["clip"], backend="pil")
    # 44 x 40 resizes to 35 x 32: the crop offset 1.5 rounds to 2 (torchvision) and floors to 1 (transformers)
    batch = images(3, seed=4, size=(44, 40))
    ours = clip_preprocess(batch, 32, rounding="floor")
    theirs = processor(images=batch, return_tensors="pt")["pixel_values"]
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(clip_preprocess(batch, 32, rounding="round"), theirs, atol=1e-3)


def test_letterbox_scales_the_long_side_and_pads_with_black():
    rng = np.random.default_rng(5)
    colours = rng.integers(0, 256, (2, 4, 3))
    blocks = np.kron(colours, np.ones((32, 32, 1))).astype(np.uint8)  # 64 x 128: 2 x 4 blocks of 32 px
    x = letterbox([Image.fromarray(blocks)], 32)[0]
    assert x.shape == (3, 32, 32)
    mean, std = torch.tensor(OPENAI_MEAN).reshape(3, 1, 1), torch.tensor(OPENAI_STD).reshape(3, 1, 1)
    black = -mean / std
    # a 2:1 image becomes 16 x 32 content with 8 black rows above and below
    assert torch.allclose(x[:, :8], black.expand(3, 8, 32), atol=1e-6)
    assert torch.allclose(x[:, 24:], black.expand(3, 8, 32), atol=1e-6)
    content = x[:, 8:24] * std + mean
    # each block shrinks to 8 x 8 px; its central 4 x 4 px lie beyond the reach of the resize kernel from any
    # other block, and resampling weights sum to one, so they keep the block's colour exactly
    for i in range(2):
        for j in range(4):
            centre = content[:, 8 * i + 2 : 8 * i + 6, 8 * j + 2 : 8 * j + 6]
            expected = torch.tensor(colours[i, j] / 255.0, dtype=torch.float32).reshape(3, 1, 1)
            assert torch.allclose(centre, expected.expand(3, 4, 4), atol=1e-5), (i, j)
    # 60 x 128 -> 15 x 32 content and 17 rows of padding: 8 above, the odd one below (9)
    odd = letterbox([Image.fromarray(blocks[:60])], 32)[0]
    assert torch.allclose(odd[:, :8], black.expand(3, 8, 32), atol=1e-6)
    assert torch.allclose(odd[:, 23:], black.expand(3, 9, 32), atol=1e-6)
    assert not torch.allclose(odd[:, 8], black[:, 0].reshape(3, 1).expand(3, 32), atol=1e-3)
    assert not torch.allclose(odd[:, 22], black[:, 0].reshape(3, 1).expand(3, 32), atol=1e-3)


def test_reward_head_layout_matches_upstream_keys():
    assert sorted(RewardHead(8).state_dict()) == sorted(
        f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")
    )


def test_score_command_on_a_folder_of_images(files, tmp_path):
    import json

    import pandas as pd

    from inpo_bench.cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images(3, seed=6)):
        image.save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "scores.csv"
    spec = json.dumps({"clip": configs(files)["clip"]})
    assert (
        main(
            [
                "score",
                "--images",
                str(folder),
                "--prompt",
                "a red circle",
                "--scorer",
                "clip",
                "--spec",
                spec,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out)
    assert table.file.tolist() == ["img0.png", "img1.png", "img2.png"]
    scorer = load_scorer("clip", configs(files)["clip"])
    expected = scorer.score([Image.open(folder / f).convert("RGB") for f in table.file], ["a red circle"] * 3)
    assert np.allclose(table.score, expected, atol=1e-6)
    assert json.loads(out.with_suffix(".json").read_text())["meaning"].startswith("CLIP score")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    assert (
        main(["score", "--images", str(folder), "--prompt", "x", "--scorer", "clip", "--spec", spec, "--out", str(out)])
        == 1
    )  # a corrupt image is a one-line error naming the file


def test_hps_cleans_prompts_as_open_clip_before_tokenising(files):
    """HPS v2 / v2.1 tokenise through open_clip, which runs ftfy, html.unescape twice and whitespace collapsing first;
    the suite handed raw prompts to the HF tokenizer, so such prompts got other token ids."""
    raw_and_clean = [
        ("Tom &amp;amp; Jerry", "Tom & Jerry"),  # escaped twice, as scraped prompts are
        ("\u201ca \ufb01sh\u201d", '"a fish"'),  # curly quotes, the fi ligature
        ("\uff21\uff22\uff23  cat\n\t dog ", "ABC cat dog"),  # full-width letters, whitespace runs
    ]
    assert [hps.clean_prompt(raw) for raw, _ in raw_and_clean] == [clean for _, clean in raw_and_clean]
    scorer = load_scorer("hpsv21", configs(files)["hpsv21"])
    seen = []
    original = scorer.tokenizer.__call__
    scorer.tokenizer = lambda texts, **kw: seen.extend(texts) or original(texts, **kw)
    scorer.score([Image.new("RGB", (32, 32))] * 3, [raw for raw, _ in raw_and_clean])
    assert seen == [clean for _, clean in raw_and_clean]


def test_letterbox_pads_a_non_square_image_whose_long_side_is_already_the_size():
    wide = Image.fromarray(np.full((20, 32, 3), 255, np.uint8))  # 32 px wide: no resize, padding still needed
    x = letterbox([wide, Image.new("RGB", (32, 32))], 32)  # once a crash of the whole batch
    assert x.shape == (2, 3, 32, 32)
    white = (1 - torch.tensor(OPENAI_MEAN)) / torch.tensor(OPENAI_STD)
    black = -torch.tensor(OPENAI_MEAN) / torch.tensor(OPENAI_STD)
    assert torch.allclose(x[0, :, 6:26, :], white.reshape(3, 1, 1).expand(3, 20, 32))
    assert torch.allclose(x[0, :, :6, :], black.reshape(3, 1, 1).expand(3, 6, 32))
    assert torch.allclose(x[0, :, 26:, :], black.reshape(3, 1, 1).expand(3, 6, 32))


def _upstream_clip_transform(image: Image.Image, size: int) -> np.ndarray:
    """OpenAI CLIP's transform order spelled out with PIL: Resize (short side, bicubic) and CenterCrop in the file's
    own mode, then RGB, /255, normalise; HWC."""
    w, h = image.size
    resized = image.resize((size, int(size * h / w)) if w <= h else (int(size * w / h), size), Image.BICUBIC)
    top, left = round((resized.height - size) / 2), round((resized.width - size) / 2)
    rgb = np.asarray(resized.crop((left, top, left + size, top + size)).convert("RGB"), dtype=np.float32) / 255
    return (rgb - np.array(OPENAI_MEAN, dtype=np.float32)) / np.array(OPENAI_STD, dtype=np.float32)


def test_clip_preprocessing_resizes_non_rgb_files_in_their_own_mode_first():
    rng = np.random.default_rng(3)
    rgba = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA")  # alpha everywhere
    palette = rgba.convert("RGB").quantize(16)
    for image in (rgba, palette):
        ours = clip_preprocess([image], 32)[0].permute(1, 2, 0).numpy()
        assert np.allclose(ours, _upstream_clip_transform(image, 32), atol=1e-6), image.mode
        converted_first = clip_preprocess([image.convert("RGB")], 32)[0].permute(1, 2, 0).numpy()
        assert np.abs(ours - converted_first).max() > 0.05, image.mode  # the order matters for such files


def test_images_reach_the_scorers_in_their_own_mode(tmp_path):
    from inpo_bench.scorers.base import open_images

    rng = np.random.default_rng(4)
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA").save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).quantize(4).save(tmp_path / "p.png")
    assert [im.mode for im in open_images([tmp_path / "a.png", tmp_path / "p.png"])] == ["RGBA", "P"]


def test_clip_score_of_a_long_prompt_keeps_the_end_token(files):
    """Above 77 tokens the prompt is cut to 75 words plus start and end tokens (clip.tokenize(truncate=True));
    slicing the ids instead (torchmetrics) would drop the end token CLIP pools, and change the score."""
    clip = load_scorer("clip", configs(files)["clip"])
    words = ("a red circle on blue background photo of cat dog green square " * 10).split()
    ids = clip.tokenizer([" ".join(words[:75])]).input_ids[0]
    assert len(ids) == 77 and ids[-1] == clip.tokenizer.eos_token_id  # one token per word here
    batch = images(1)
    long, cut = clip.score(batch, [" ".join(words)]), clip.score(batch, [" ".join(words[:75])])
    assert np.allclose(long, cut, atol=1e-5)
    sliced = clip.tokenizer([" ".join(words)], truncation=False).input_ids[0][:77]  # torchmetrics' ids
    assert sliced[-1] != clip.tokenizer.eos_token_id
