"""The toy world: grammar, renderer, oracle. The oracle is the ground truth of every toy table, so it is tested
against hand-built images whose correct reading is known."""

import numpy as np
import pytest

from inpo_bench.toyworld.grammar import (
    PALETTE,
    Composition,
    all_compositions,
    parse_prompt,
    split_compositions,
)
from inpo_bench.toyworld.oracle import largest_component, score_image, shape_ious
from inpo_bench.toyworld.render import Nuisance, gaussian_blur, render, sample_nuisance, shape_mask
from inpo_bench.toyworld.world import World

FG = ["red", "green", "blue", "yellow", "purple"]
BG = [*FG, "white", "black"]
SHAPES = ["circle", "square", "triangle"]
COMPS = all_compositions(FG, SHAPES, BG)
WORLD_CFG = {
    "resolution": 16,
    "foreground_colours": FG,
    "background_colours": BG,
    "shapes": SHAPES,
    "unseen_compositions": 18,
    "oracle": {"fidelity_weight": 0.6},
}


def test_grammar_counts_and_round_trip():
    assert len(COMPS) == 5 * 3 * 6  # background differs from foreground
    for comp in COMPS:
        assert parse_prompt(comp.prompt) == comp
    with pytest.raises(ValueError, match="not in the toy grammar"):
        parse_prompt("a red dog on a blue background")
    with pytest.raises(ValueError, match="unknown colour"):
        all_compositions(["mauve"], SHAPES, BG)


def test_split_keeps_every_attribute_seen_and_is_seeded():
    seen, unseen = split_compositions(COMPS, 18, seed=3)
    assert len(unseen) == 18 and not set(seen) & set(unseen) and len(seen) + len(unseen) == len(COMPS)
    for attr, values in (("fg", FG), ("shape", SHAPES), ("bg", BG)):
        assert {getattr(c, attr) for c in seen} == set(values)
    assert split_compositions(COMPS, 18, seed=3) == (seen, unseen)
    assert split_compositions(COMPS, 18, seed=4)[1] != unseen


def test_clean_render_has_exact_colours_and_box():
    comp = Composition("red", "square", "blue")
    image = render(comp, 16, Nuisance())
    assert image.dtype == np.uint8 and image.shape == (16, 16, 3)
    fg = np.all(image == PALETTE["red"], axis=-1)
    assert np.all(image[~fg] == PALETTE["blue"])
    rows, cols = np.nonzero(fg.any(1))[0], np.nonzero(fg.any(0))[0]
    assert (rows[0], rows[-1], cols[0], cols[-1]) == (4, 11, 4, 11)  # half-size 4 around the centre


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_masks_fill_their_box(shape):
    mask = shape_mask(shape, 16, 8, 8, 4, 4)
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    assert (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) == (4, 12, 4, 12)
    # pixel counts by hand, row by row (pixel centres at .5): the circle's rows at |dy| = 3.5, 2.5, 1.5, 0.5 hold
    # 4, 6, 8, 8 pixels; the triangle's rows widen 2, 2, 4, 4, 6, 6, 8, 8 from the apex down
    assert mask.sum() == {"square": 64, "circle": 2 * (4 + 6 + 8 + 8), "triangle": 40}[shape]


def test_gaussian_blur_preserves_constants_and_mass():
    rng = np.random.default_rng(0)
    flat = np.full((8, 8, 3), 0.3)
    assert np.allclose(gaussian_blur(flat, 1.0), 0.3)
    image = rng.random((16, 16, 3))
    blurred = gaussian_blur(image, 0.8)
    assert blurred.std() < image.std()
    # away from the borders a symmetric normalised kernel keeps the local mean
    assert blurred[4:12, 4:12].mean() == pytest.approx(image[4:12, 4:12].mean(), abs=0.05)


def test_largest_component_against_hand_mask():
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True  # isolated pixel
    mask[2:5, 2:4] = True  # 6 pixels
    mask[0, 4:6] = True  # 2 pixels
    assert largest_component(mask).sum() == 6 and largest_component(mask)[3, 3]
    assert not largest_component(np.zeros((4, 4), bool)).any()


@pytest.mark.parametrize("comp", COMPS[::7], ids=lambda c: c.id)
def test_oracle_ranks_clean_render_above_every_defect(comp):
    clean = score_image(render(comp, 16), comp)
    assert clean.reward == pytest.approx(1.0) and clean.all_correct
    other_fg = next(c for c in FG if c not in (comp.fg, comp.bg))
    other_bg = next(c for c in BG if c not in (comp.fg, comp.bg))
    other_shape = next(s for s in SHAPES if s != comp.shape)
    defects = {
        "wrong colour": render(Composition(other_fg, comp.shape, comp.bg), 16),
        "wrong background": render(Composition(comp.fg, comp.shape, other_bg), 16),
        "wrong shape": render(Composition(comp.fg, other_shape, comp.bg), 16),
        "noisy": render(comp, 16, Nuisance(noise_std=0.12), seed=1),
        "blurred": render(comp, 16, Nuisance(blur_sigma=0.9)),
        "off-centre": render(comp, 16, Nuisance(dx=4, dy=3)),
    }
    for name, image in defects.items():
        assert score_image(image, comp).reward < clean.reward - 0.03, name
    assert not score_image(defects["wrong colour"], comp).fg_correct
    assert not score_image(defects["wrong background"], comp).bg_correct
    assert not score_image(defects["wrong shape"], comp).shape_correct
    # defects of style leave the prompt-independent fidelity nearly intact and cost aesthetic
    for name in ("noisy", "blurred", "off-centre"):
        s = score_image(defects[name], comp)
        assert s.aesthetic < clean.aesthetic - 0.1, name


def test_palette_colours_are_far_apart():
    rgb = {name: np.asarray(c) / 255.0 for name, c in PALETTE.items()}
    gaps = {(a, b): np.linalg.norm(rgb[a] - rgb[b]) for a in rgb for b in rgb if a < b}
    assert min(gaps.values()) > 0.32  # yellow-orange, the closest pair of the original eight, is 0.324
    added = ("cyan", "pink", "brown", "grey")
    assert min(g for pair, g in gaps.items() if set(pair) & set(added)) > 0.40


@pytest.mark.parametrize("fg", list(PALETTE))
def test_oracle_reads_every_palette_colour_as_foreground_and_background(fg):
    names = list(PALETTE)
    for bg in names:
        if bg == fg:
            continue
        comp = Composition(fg, SHAPES[names.index(bg) % 3], bg)
        clean = score_image(render(comp, 16), comp)
        assert clean.reward == pytest.approx(1.0) and clean.all_correct, comp.id
        # the same image scored against a prompt with another foreground colour: not correct, lower fidelity
        other = next(c for c in names if c not in (fg, bg))
        wrong = score_image(render(comp, 16), Composition(other, comp.shape, bg))
        assert not wrong.fg_correct and wrong.fidelity < clean.fidelity - 0.3, comp.id


def test_noise_flag_separates_pixel_noise_from_mild_defects():
    comp = Composition("red", "circle", "blue")
    flags = {
        name: score_image(image, comp).as_dict()
        for name, image in {
            "clean": render(comp, 16),
            "blurred": render(comp, 16, Nuisance(blur_sigma=1.2)),
            "noise 0.08": render(comp, 16, Nuisance(noise_std=0.08), seed=2),  # the pretraining set's mildest
            "uniform noise": np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8),
        }.items()
    }
    assert [flags[k]["noisy"] for k in flags] == [False, False, True, True]
    assert all(f["not_noise"] == (not f["noisy"]) for f in flags.values())
    assert flags["noise 0.08"]["clean"] < 0.05 <= flags["blurred"]["clean"]


def test_oracle_is_deterministic_and_handles_blank_images():
    comp = Composition("blue", "circle", "white")
    image = render(comp, 16, Nuisance(noise_std=0.1), seed=5)
    assert score_image(image, comp) == score_image(image.copy(), comp)
    blank = np.full((16, 16, 3), PALETTE["white"], np.uint8)
    s = score_image(blank, comp)
    assert s.fg_colour == 0 and s.shape == 0 and s.bg_correct and not s.fg_correct
    assert 0 <= s.reward < 0.5
    with pytest.raises(ValueError, match="square RGB"):
        score_image(np.zeros((16, 8, 3), np.uint8), comp)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_ious_fit_a_clean_render_exactly_and_agree_with_shape_correct(shape):
    comp = Composition("red", shape, "grey")
    ious = shape_ious(render(comp, 16))
    assert ious[shape] == 1.0 and all(iou < 1.0 for name, iou in ious.items() if name != shape)
    assert score_image(render(comp, 16), comp).shape_correct
    assert shape_ious(np.full((16, 16, 3), PALETTE["grey"], np.uint8)) is None  # nothing stands out


def test_nuisance_sampler_rates():
    rng = np.random.default_rng(0)
    draws = [sample_nuisance(rng, 16, {"noisy": 0.3, "blurred": 0.0, "off_centre": 0.5}) for _ in range(2000)]
    assert np.mean([d.noise_std > 0 for d in draws]) == pytest.approx(0.3, abs=0.04)
    assert all(d.blur_sigma == 0 for d in draws)
    off = np.mean([max(abs(d.dx), abs(d.dy)) >= 2 for d in draws])
    assert off == pytest.approx(0.5, abs=0.05)
    for d in draws[:200]:  # every drawn geometry renders inside the image
        render(Composition("red", "circle", "blue"), 16, d)


def test_world_json_round_trip_and_prompt_sets(tmp_path):
    world = World.from_config(WORLD_CFG, seed=0)
    (tmp_path / "w.json").write_text(__import__("json").dumps(world.to_json()))
    assert World.load(tmp_path / "w.json") == world
    seen, unseen = world.prompt_set("toy_seen"), world.prompt_set("toy_unseen")
    assert len(seen) == 72 and len(unseen) == 18
    assert not set(seen.prompt) & set(unseen.prompt)
    assert seen.prompt_id.is_unique


def test_pretraining_set_is_seeded_and_only_seen():
    world = World.from_config(WORLD_CFG, seed=0)
    images, captions = world.pretraining_set(300, {"noisy": 0, "blurred": 0, "off_centre": 0}, 0.3, seed=1)
    again, captions_again = world.pretraining_set(300, {"noisy": 0, "blurred": 0, "off_centre": 0}, 0.3, seed=1)
    assert np.array_equal(images, again) and captions == captions_again
    unseen = {c.prompt for c in world.unseen}
    truths = [world.score(im, cap).all_correct for im, cap in zip(images, captions)]
    # about 30% of captions have one attribute wrong; the clean renders match their true caption
    assert np.mean(truths) == pytest.approx(0.7, abs=0.08)
    seen_prompts = {c.prompt for c in world.seen}
    for cap, ok in zip(captions, truths):
        if ok:
            assert cap in seen_prompts
    assert unseen.isdisjoint(c for c, ok in zip(captions, truths) if ok)


def test_the_oracle_reads_a_colour_swap():
    """The latent world's learned flaw: the object in the prompt's background colour on its object colour."""
    comp = Composition("red", "circle", "blue")
    right = score_image(render(comp, 16), comp)
    swapped = score_image(render(Composition("blue", "circle", "red"), 16), comp)
    other = score_image(render(Composition("green", "circle", "red"), 16), comp)  # wrong, but not a swap
    assert not right.colours_swapped and swapped.colours_swapped and not other.colours_swapped
    assert swapped.as_dict()["not_swapped"] is False and right.as_dict()["not_swapped"] is True
    assert swapped.shape_correct and swapped.fg_colour < 0.01 and swapped.bg_colour < 0.01
    assert swapped.reward == pytest.approx(right.reward - 0.6 * 2 / 3, abs=0.01)  # two of fidelity's three terms


def test_learned_flaws_show_swapped_colours_under_the_prompts_caption():
    world = World.from_config(WORLD_CFG, seed=0)
    clean = {"noisy": 0, "blurred": 0, "off_centre": 0}
    images, captions = world.pretraining_set(2000, clean, 0.0, seed=1, flaws={"colour_swap": 0.3})
    readings = [score_image(im, parse_prompt(c)) for im, c in zip(images, captions)]
    # every image shows its caption's composition or, at 30% where the swap is a seen composition, its swap
    assert all(r.all_correct or (r.colours_swapped and r.shape_correct) for r in readings)
    seen = set(world.seen)
    swappable = np.mean([Composition(c.bg, c.shape, c.fg) in seen for c in map(parse_prompt, captions)])
    assert np.mean([r.colours_swapped for r in readings]) == pytest.approx(0.3 * swappable, abs=0.03)
    assert all(parse_prompt(c) in seen for c in captions)
    for i in np.nonzero([r.colours_swapped for r in readings])[0][:50]:
        c = parse_prompt(captions[i])
        assert Composition(c.bg, c.shape, c.fg) in seen  # a held-out composition is never shown
    # no flaw (absent or at rate 0): the random stream and so the set of the worlds before flaws existed
    plain = world.pretraining_set(300, clean, 0.1, seed=1)
    zero = world.pretraining_set(300, clean, 0.1, seed=1, flaws={"colour_swap": 0.0})
    assert np.array_equal(plain[0], zero[0]) and plain[1] == zero[1]
