"""Tiny models: the offline CLIP tokenizer, save/load round trips, derived (UNet-only) models."""

import json

import pytest
import torch
from transformers import CLIPTokenizer

from inpo_bench.models.bundle import ModelError, load_model, save_derived_model
from inpo_bench.models.tokenizer import build_clip_tokenizer, byte_symbols, learn_merges


def test_byte_symbols_are_a_bijection_of_printables():
    symbols = byte_symbols()
    assert len(set(symbols)) == 256
    assert symbols[ord("a")] == "a" and symbols[ord(" ")] != " "  # space maps to a printable stand-in
    assert all(s.isprintable() for s in symbols)


def test_learned_merges_make_every_word_one_token(world):
    tok = build_clip_tokenizer(world.words, 16)
    for word in world.words:
        ids = tok(word, add_special_tokens=False).input_ids
        assert tok.convert_ids_to_tokens(ids) == [word + "</w>"], word
    ids = tok("a red circle on a blue background").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) == 9


def test_tokenizer_handles_text_outside_the_grammar_and_pads(world):
    tok = build_clip_tokenizer(world.words, 16)
    batch = tok(["A zebra, 3 DOGS!", ""], padding="max_length", max_length=16, truncation=True)
    assert all(len(ids) == 16 for ids in batch.input_ids)
    assert tok.decode(batch.input_ids[0], skip_special_tokens=True).strip() == "a zebra , 3 dogs !"
    assert batch.input_ids[1][:2] == [tok.bos_token_id, tok.eos_token_id]
    with pytest.raises(ValueError, match="lower-case ASCII"):
        build_clip_tokenizer(["Red"], 16)


def test_merges_are_deterministic_and_learned_greedily():
    merges = learn_merges(["abab", "ab"])
    # by hand: symbols a b a b</w> and a b</w>; (a, b</w>) occurs twice and goes first; then (a, b) and
    # (b, ab</w>) tie once each and the lexicographic order picks (a, b); last (ab, ab</w>) joins 'abab'
    assert merges == [("a", "b</w>"), ("a", "b"), ("ab", "ab</w>")]
    assert merges == learn_merges(["ab", "abab"])


def test_tokenizer_round_trips_through_save_pretrained(tmp_path, world):
    tok = build_clip_tokenizer(world.words, 16)
    tok.save_pretrained(tmp_path)
    again = CLIPTokenizer.from_pretrained(tmp_path)
    text = "a purple triangle on a black background"
    assert again(text).input_ids == tok(text).input_ids and again.model_max_length == 16


def test_model_directory_round_trip(tiny_model_dir):
    model = load_model(tiny_model_dir)
    assert model.kind == "pixel" and model.x0_shape == (3, 16, 16)
    assert model.unet.num_parameters() < 1_500_000
    emb = model.encode_prompts(["a red circle on a blue background", ""])
    assert emb.shape == (2, 16, 32)
    images = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8).numpy()
    assert (model.x0_to_images(model.images_to_x0(images)) == images).all()


def test_derived_model_references_base_components(tmp_path, tiny_model_dir):
    base = load_model(tiny_model_dir)
    with torch.no_grad():
        for p in base.unet.parameters():
            p.add_(0.01)
    child = tmp_path / "dpo" / "beta~2000"
    save_derived_model(child, base.unet, tiny_model_dir)
    spec = json.loads((child / "model.json").read_text())
    assert spec["unet"] == "unet" and not (child / "text_encoder").exists()
    loaded = load_model(child)
    reference = load_model(tiny_model_dir)
    for (name, a), b in zip(loaded.unet.state_dict().items(), base.unet.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(next(iter(loaded.unet.parameters())), next(iter(reference.unet.parameters())))


def test_missing_model_files_are_clear_errors(tmp_path, tiny_model_dir):
    with pytest.raises(ModelError, match="not a finished model directory"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text(
        json.dumps({"format": 1, "kind": "pixel", "resolution": 16, "components": "../nowhere", "unet": "unet"})
    )
    with pytest.raises(ModelError, match=r"components \.\./nowhere does not exist"):
        load_model(tmp_path)
