"""Sampling: the noise of (prompt_id, seed) does not depend on the batch; contracts of the samples folder."""

import numpy as np
import pandas as pd
import pytest
import torch

from inpo_bench.diffusion import initial_noise
from inpo_bench.models.bundle import load_model
from inpo_bench.sample import SamplerSettings, denoise, generate, read_prompts, save_samples

PROMPTS = [
    ("p0", "a red circle on a blue background"),
    ("p1", "a green square on a white background"),
    ("p2", "a blue triangle on a black background"),
]


def test_images_do_not_depend_on_batch_composition(tiny_model_dir):
    model = load_model(tiny_model_dir)
    settings = dict(steps=4, guidance=3.0)
    one_by_one = {
        (p, s): im for p, s, _, im in generate(model, PROMPTS, [0, 5], SamplerSettings(batch_size=1, **settings))
    }
    batched = {
        (p, s): im for p, s, _, im in generate(model, PROMPTS[::-1], [5, 0], SamplerSettings(batch_size=4, **settings))
    }
    assert one_by_one.keys() == batched.keys()
    for key in one_by_one:
        # same starting noise; batched CPU kernels may round differently, by at most one grey level
        assert np.abs(one_by_one[key].astype(int) - batched[key].astype(int)).max() <= 1, key


def test_denoise_starts_from_the_given_noise(tiny_model_dir):
    """Two models fed the same (prompt_id, seed) noise: the first sampler input is that noise exactly."""
    model = load_model(tiny_model_dir)
    seen = []
    original = model.unet.forward

    def spy(x, t, **kw):
        seen.append(x[: x.shape[0] // 2].clone())
        return original(x, t, **kw)

    model.unet.forward = spy
    noise = torch.stack([initial_noise("p0", 0, model.x0_shape)])
    cond = model.encode_prompts(["a red circle on a blue background"])
    denoise(model, noise, cond, model.encode_prompts([""]), SamplerSettings(steps=2))
    assert torch.equal(seen[0], noise)


def test_sampling_is_deterministic(tiny_model_dir):
    model = load_model(tiny_model_dir)
    a = [im for *_, im in generate(model, PROMPTS, [1], SamplerSettings(steps=3))]
    b = [im for *_, im in generate(model, PROMPTS, [1], SamplerSettings(steps=3))]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_save_samples_writes_the_contract(tmp_path, tiny_model_dir):
    model = load_model(tiny_model_dir)
    index = save_samples(generate(model, PROMPTS[:2], [0, 1], SamplerSettings(steps=2)), tmp_path)
    assert list(index.columns) == ["prompt_id", "seed", "prompt", "file"]
    assert sorted(index.file) == ["p0_0.png", "p0_1.png", "p1_0.png", "p1_1.png"]
    assert all((tmp_path / f).is_file() for f in index.file)


def test_prompt_set_validation(tmp_path):
    good = tmp_path / "good.csv"
    pd.DataFrame({"prompt_id": ["a", "b"], "prompt": ["x", "y"]}).to_csv(good, index=False)
    assert read_prompts(good) == [("a", "x"), ("b", "y")]
    for frame, message in (
        (pd.DataFrame({"id": ["a"], "prompt": ["x"]}), "missing column"),
        (pd.DataFrame({"prompt_id": ["a/b"], "prompt": ["x"]}), "not usable as file names"),
        (pd.DataFrame({"prompt_id": ["a", "a"], "prompt": ["x", "y"]}), "duplicated"),
    ):
        bad = tmp_path / "bad.csv"
        frame.to_csv(bad, index=False)
        with pytest.raises(ValueError, match=message):
            read_prompts(bad)


def test_prompts_are_text_encoded_batch_by_batch(tiny_model_dir):
    """All at once, SDXL's two encoders hold every layer's hidden states of every prompt: ~26 GB for HPDv2."""
    model = load_model(tiny_model_dir)
    sizes = []
    original = model.encode_prompts
    model.encode_prompts = lambda prompts: sizes.append(len(prompts)) or original(prompts)
    prompts = [(f"p{i}", f"a red circle on a {c} background") for i, c in enumerate(["blue", "white", "black"] * 3)]
    images = list(generate(model, prompts, [0, 1], SamplerSettings(steps=2, batch_size=4)))
    assert len(images) == 18 and max(sizes) <= 4 and sum(sizes) >= 9


def test_the_toy_sampler_clamps_x0_as_diffusers_ddim_with_clip_sample(tiny_model_dir):
    """denoise against diffusers' DDIMScheduler.step on the same guided eps: the toy base's stored scheduler says
    clip_sample, so each predicted x0 is clamped to [-1, 1] (an untrained UNet's x0 predictions reach far past)."""
    from diffusers import DDIMScheduler

    model = load_model(tiny_model_dir)
    assert model.scheduler.config.clip_sample  # toy_model.clip_sample, stored with the base
    settings = SamplerSettings(steps=4, guidance=4.0)
    with torch.no_grad():
        cond = model.encode_prompts([PROMPTS[0][1]])
        uncond = model.null_context().expand_as(cond)
        noise = initial_noise("p", 0, model.x0_shape)[None]
        ours = denoise(model, noise, cond, uncond, settings)
        reference = DDIMScheduler.from_config(model.scheduler.config)
        reference.set_timesteps(settings.steps)
        x = noise
        for t in reference.timesteps:
            eps_u, eps_c = model.eps(model.unet, torch.cat([x, x]), int(t), torch.cat([uncond, cond])).chunk(2)
            x = reference.step(eps_u + settings.guidance * (eps_c - eps_u), t, x).prev_sample
    assert torch.allclose(ours, x, atol=1e-5)
    unclamped = DDIMScheduler.from_config({**model.scheduler.config, "clip_sample": False})
    unclamped.set_timesteps(settings.steps)
    with torch.no_grad():
        x = noise
        for t in unclamped.timesteps:
            eps_u, eps_c = model.eps(model.unet, torch.cat([x, x]), int(t), torch.cat([uncond, cond])).chunk(2)
            x = unclamped.step(eps_u + settings.guidance * (eps_c - eps_u), t, x).prev_sample
    assert not torch.allclose(ours, x, atol=1e-3)  # the clamp acts


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_the_sampler_makes_the_images_of_diffusers_pipelines(tmp_path, kind):
    """End to end against diffusers' own StableDiffusionPipeline / StableDiffusionXLPipeline on the smoke models:
    DDIM (eta 0, final alpha-bar[0], no clamp), the same initial noise, prompts, CFG and steps give the same
    images, pixel for pixel; a pipeline at another guidance or final alpha gives other images (the check can fail)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

    from inpo_bench.models.bundle import write_base_spec
    from inpo_bench.smoke import pipelines

    build, pipeline = {
        "sd": (pipelines.build_sd15, StableDiffusionPipeline),
        "sdxl": (pipelines.build_sdxl, StableDiffusionXLPipeline),
    }[kind]
    folder = build(tmp_path / "pipe")
    write_base_spec(tmp_path / "base", kind, pipelines.RESOLUTION, str(folder))
    model = load_model(tmp_path / "base")
    prompts = [("p0", "a photo of a cat"), ("p1", "a red car on the street in painting style")]
    ours = np.stack([im for _, _, _, im in generate(model, prompts, [3], SamplerSettings(4, 5.0, batch_size=8))])

    pipe = pipeline.from_pretrained(folder)
    latents = torch.stack([initial_noise(pid, 3, model.x0_shape) for pid, _ in prompts])

    def theirs(guidance=5.0, **scheduler):
        config = {"set_alpha_to_one": False, "clip_sample": False, **scheduler}
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config, **config)
        images = pipe(
            [p for _, p in prompts],
            num_inference_steps=4,
            guidance_scale=guidance,
            latents=latents.clone(),
            height=pipelines.RESOLUTION,
            width=pipelines.RESOLUTION,
            eta=0.0,
            output_type="np",
        ).images
        return (images * 255).round().astype(np.uint8)

    assert ours.shape == (2, pipelines.RESOLUTION, pipelines.RESOLUTION, 3)
    assert np.array_equal(ours, theirs())
    assert not np.array_equal(ours, theirs(guidance=4.0))
    assert not np.array_equal(ours, theirs(set_alpha_to_one=True))
