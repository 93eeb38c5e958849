"""HPSv3 on a tiny random Qwen2-VL in the release's formats: resize, prompt, key layout, preparation, scoring."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from inpo_bench.errors import DataError, ModelError
from inpo_bench.scorers import hpsv3, load_scorer
from inpo_bench.scorers.base import score_index
from inpo_bench.smoke import hpsv3 as standin


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("hpsv3")
    files = standin.build(root)
    files["prepared"] = hpsv3.prepare(files["hpsv3_checkpoint"], files["qwen2vl"], root / "prepared")
    return files


@pytest.fixture(scope="module")
def scorer(release):
    return load_scorer("hpsv3", {"model": str(release["prepared"])})


def pictures(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.mark.parametrize(
    "size, expected",
    [
        ((512, 512), (448, 448)),  # 504 x 504 is over 256 * 28 * 28: scaled down, floored to 28
        ((1024, 1024), (448, 448)),
        ((768, 1024), (364, 504)),  # beta = sqrt(786432 / 200704); 387.97 -> 364, 517.3 -> 504
        ((32, 32), (448, 448)),  # scaled up by 14, ceiled
        ((224, 300), (392, 532)),  # 224 x 308 is under: beta = sqrt(200704 / 67200); 387.1 -> 392, 518.5 -> 532
    ],
)
def test_smart_resize_by_hand_and_as_the_qwen2_vl_processor_computes_it(size, expected):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    assert hpsv3.smart_resize(*size) == expected
    assert smart_resize(*size, factor=28, min_pixels=hpsv3.PIXELS, max_pixels=hpsv3.PIXELS) == expected


def test_resize_converts_to_rgb_first_and_keeps_the_aspect():
    palette = Image.new("P", (90, 40))
    out = hpsv3.resize(palette)
    assert out.mode == "RGB" and out.size == (hpsv3.smart_resize(40, 90)[1], hpsv3.smart_resize(40, 90)[0])
    assert out.size[0] > out.size[1]


def test_the_prompt_is_upstreams_instruction_and_takes_any_prompt(tmp_path, monkeypatch):
    template = hpsv3.prompt_template()
    assert template.count("{text_prompt}") == 1 and template.count(hpsv3.REWARD_TOKEN) == 1
    assert template.startswith("\nYou are tasked with evaluating a generated image") and template.endswith("\n\nEND\n")
    (turn,) = hpsv3.conversation("a {curly} prompt & more", template)
    assert turn["content"][0] == {"type": "image"}  # the image comes before the text, as in prepare_batch
    assert "Textual prompt - a {curly} prompt & more\n" in turn["content"][1]["text"]
    tampered = tmp_path / "prompt.txt"
    tampered.write_bytes(hpsv3.PROMPT_FILE.read_bytes().replace(b"0 to 10", b"0 to 9"))
    monkeypatch.setattr(hpsv3, "PROMPT_FILE", tampered)
    with pytest.raises(ModelError, match="SHA-256"):
        hpsv3.prompt_template()


def test_release_key_names_map_onto_the_reward_model(release):
    assert (
        hpsv3.checkpoint_keys("model.layers.0.self_attn.q_proj.weight")
        == "language_model.layers.0.self_attn.q_proj.weight"
    )
    assert hpsv3.checkpoint_keys("model.embed_tokens.weight") == "language_model.embed_tokens.weight"
    assert hpsv3.checkpoint_keys("visual.blocks.3.attn.qkv.weight") == "visual.blocks.3.attn.qkv.weight"
    assert hpsv3.checkpoint_keys("model.visual.merger.mlp.0.weight") == "visual.merger.mlp.0.weight"  # 5.x layout
    assert hpsv3.checkpoint_keys("model.language_model.norm.weight") == "language_model.norm.weight"
    assert hpsv3.checkpoint_keys("rm_head.5.weight") == "rm_head.5.weight"
    assert hpsv3.checkpoint_keys("lm_head.weight") is None
    assert hpsv3.checkpoint_keys("score.weight").startswith("?")
    # names of the Qwen2-VL-7B-Instruct / HPSv3 release (transformers 4.45 layout), written out by hand
    names = set(load_file(str(release["hpsv3_checkpoint"])))
    for name in (
        "model.embed_tokens.weight",
        "model.norm.weight",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.self_attn.k_proj.bias",
        "visual.patch_embed.proj.weight",
        "visual.blocks.1.norm2.bias",
        "visual.merger.ln_q.weight",
        "visual.merger.mlp.2.bias",
        "lm_head.weight",
        "rm_head.0.weight",
        "rm_head.3.bias",
        "rm_head.5.weight",
    ):
        assert name in names, name
    assert load_file(str(release["hpsv3_checkpoint"]))["rm_head.5.weight"].shape == (2, 16)


def test_hpsv3_scores_images_against_prompts(scorer):
    batch = pictures([(64, 64), (64, 64), (90, 40), (300, 224)])
    prompts = ["a red circle", "a photo of a cat on a very long prompt " * 5, "dog", "a blue square"]
    out = scorer.score_columns(batch, prompts)
    assert set(out) == {"score", "sigma"} and out["score"].shape == (4,) and (out["sigma"] > 0).all()
    assert np.array_equal(out["score"], scorer.score(batch, prompts))  # deterministic
    assert len(set(np.round(out["score"], 6))) == 4
    order = [2, 0, 3, 1]  # images of other sizes and prompts of other lengths padded on the right
    permuted = scorer.score([batch[i] for i in order], [prompts[i] for i in order])
    np.testing.assert_allclose(permuted, out["score"][order], rtol=1e-5)
    alone = [scorer.score([image], [prompt])[0] for image, prompt in zip(batch, prompts)]
    np.testing.assert_allclose(alone, out["score"], rtol=1e-5)
    other = scorer.score(batch[:1], ["a green square"])[0]
    assert abs(other - out["score"][0]) > 1e-6  # the prompt reaches the reward token


def test_one_image_pad_per_merged_patch_and_one_reward_token(scorer):
    batch = pictures([(64, 64), (90, 40)])
    encoded = scorer.encode(batch, ["a", "b"])
    grid = encoded["image_grid_thw"]
    assert grid.tolist() == [[1, 32, 32], [1, 308 // 14, 672 // 14]]  # 40 x 90 -> 308 x 672 (beta 7.47, ceiled)
    pads = (encoded["input_ids"] == scorer.model.image_token_id).sum(-1)
    assert pads.tolist() == [int(g.prod()) // 4 for g in grid]
    assert ((encoded["input_ids"] == scorer.reward_token_id).sum(-1) == 1).all()
    assert encoded["pixel_values"].shape == (int(grid.prod(-1).sum()), 3 * 2 * 14 * 14)


def test_score_index_writes_the_spread_beside_the_score(scorer, tmp_path):
    for i, image in enumerate(pictures([(64, 64)] * 3)):
        image.save(tmp_path / f"{i}.png")
    index = pd.DataFrame(
        {"prompt_id": ["a", "b", "c"], "seed": 0, "prompt": ["x", "y", "z"], "file": ["0.png", "1.png", "2.png"]}
    )
    frame = score_index(scorer, index, tmp_path, batch_size=2)
    assert list(frame.columns) == ["prompt_id", "seed", "score", "sigma"]
    np.testing.assert_allclose(frame.score, scorer.score(pictures([(64, 64)] * 3), ["x", "y", "z"]), rtol=1e-5)


def test_prepare_refuses_what_does_not_fit(release, tmp_path):
    state = load_file(str(release["hpsv3_checkpoint"]))
    del state["rm_head.3.bias"]
    save_file(state, str(tmp_path / "cut.safetensors"))
    with pytest.raises(ModelError, match=r"cut.safetensors.*missing keys \['rm_head.3.bias'\]"):
        hpsv3.prepare(tmp_path / "cut.safetensors", release["qwen2vl"], tmp_path / "out")
    state = load_file(str(release["hpsv3_checkpoint"]))
    state["model.embed_tokens.weight"] = state["model.embed_tokens.weight"][:-1]  # no row for <|Reward|>
    save_file(state, str(tmp_path / "short.safetensors"))
    with pytest.raises(ModelError, match=r"other shapes.*embed_tokens"):
        hpsv3.prepare(tmp_path / "short.safetensors", release["qwen2vl"], tmp_path / "out")
    with pytest.raises(ModelError, match="not found"):
        hpsv3.prepare(tmp_path / "absent.safetensors", release["qwen2vl"], tmp_path / "out")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match=r"garbage\.safetensors: not a readable safetensors"):
        hpsv3.prepare(tmp_path / "garbage.safetensors", release["qwen2vl"], tmp_path / "out")
    base = shutil.copytree(release["qwen2vl"], tmp_path / "no-template")
    (base / "chat_template.json").unlink()
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="no chat template"):
        hpsv3.prepare(release["hpsv3_checkpoint"], base, tmp_path / "out")
    assert not (tmp_path / "out" / "scorer.json").exists()  # nothing half-written to mistake for a prepared scorer
    with pytest.raises(ModelError, match="not a prepared HPSv3"):
        load_scorer("hpsv3", {"model": str(tmp_path)})


def test_the_reward_model_loads_every_weight(release, scorer):
    state = load_file(str(release["hpsv3_checkpoint"]))
    loaded = scorer.model.state_dict()
    for name, value in state.items():
        key = hpsv3.checkpoint_keys(name)
        if key is not None:
            assert torch.equal(loaded[key].float(), value.float()), name
    assert not any(t.is_meta for t in scorer.model.buffers())
    from transformers import AutoConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLRotaryEmbedding

    fresh = Qwen2VLRotaryEmbedding(AutoConfig.from_pretrained(release["prepared"]).text_config)
    assert torch.equal(scorer.model.language_model.rotary_emb.inv_freq, fresh.inv_freq)  # rebuilt, not left empty


def test_vision_rotary_angles_round_in_bfloat16_as_transformers_4_45_computes_them(release):
    """4.45's VisionRotaryEmbedding: torch.outer(arange(n, dtype=inv_freq.dtype), inv_freq), cos of that; after
    hpsv3's cast to bfloat16 the angles are bfloat16. Written out here from that formula."""
    from transformers import AutoConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLVisionRotaryEmbedding

    config = AutoConfig.from_pretrained(release["prepared"]).vision_config
    h, w = torch.meshgrid(torch.arange(26), torch.arange(36), indexing="ij")
    positions = torch.stack([h.flatten(), w.flatten()], dim=1)  # (tokens, 2) as get_vision_position_ids gives
    stock, ours = Qwen2VLVisionRotaryEmbedding(config), hpsv3.vision_rotary(config)
    x = torch.zeros(1)
    torch.testing.assert_close(ours(x, positions)[0], stock(x, positions)[0])  # float32: the same computation
    ours.to(torch.bfloat16)
    cos, sin = ours(x.bfloat16(), positions)
    full = torch.outer(torch.arange(36, dtype=torch.bfloat16), ours.inv_freq)  # bfloat16 angles
    quarter = full.shape[1]
    torch.testing.assert_close(cos[:, :quarter], full[positions[:, 0]].cos().float(), rtol=0, atol=0)
    torch.testing.assert_close(sin[:, quarter : 2 * quarter], full[positions[:, 1]].sin().float(), rtol=0, atol=0)
    assert (cos - stock(x, positions)[0]).abs().max() > 1e-3  # what rounding the angles changes


def test_run_dtype_and_bad_prompts(scorer):
    assert (
        hpsv3.run_dtype("cuda", "float16") == torch.bfloat16 and hpsv3.run_dtype("cuda:1", "bfloat16") == torch.bfloat16
    )
    assert hpsv3.run_dtype("cuda", "float32") == torch.float32 and hpsv3.run_dtype("cpu", "bfloat16") == torch.float32
    assert scorer.model.rm_head[0].weight.dtype == torch.float32
    with pytest.raises(DataError, match="contains"):
        scorer.score(pictures([(64, 64)]), [f"a cat {hpsv3.REWARD_TOKEN}"])
    with pytest.raises(ValueError, match="2 images for 1 prompts"):
        scorer.score(pictures([(64, 64)] * 2), ["a cat"])
    with pytest.raises(DataError, match="aspect ratio"):
        scorer.score([Image.new("RGB", (1000, 4))], ["a line"])


def test_preparing_again_keeps_the_weights_and_prefers_the_processor_template(release, tmp_path):
    base = shutil.copytree(release["qwen2vl"], tmp_path / "base")
    config = json.loads((base / "tokenizer_config.json").read_text())
    (base / "tokenizer_config.json").write_text(json.dumps(config | {"chat_template": "{{ 'other' }}"}))
    first = hpsv3.prepare(release["hpsv3_checkpoint"], base, tmp_path / "prepared")
    assert (first / "chat_template.jinja").read_text() == standin.CHAT_TEMPLATE  # chat_template.json, as 4.45 picks
    again = hpsv3.prepare(first / "HPSv3.safetensors", base, first)  # the prepared file as the source
    assert (again / "HPSv3.safetensors").stat().st_size == release["hpsv3_checkpoint"].stat().st_size
    record = json.loads((again / "scorer.json").read_text())
    (again / "scorer.json").write_text(json.dumps(record | {"prompt_sha256": "0" * 64}))
    with pytest.raises(ModelError, match="another instruction"):
        load_scorer("hpsv3", {"model": str(again)})
    (again / "scorer.json").write_text("{")
    with pytest.raises(ModelError, match=r"scorer\.json: not a prepared HPSv3 record"):
        load_scorer("hpsv3", {"model": str(again)})
