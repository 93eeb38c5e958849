"""Diffusion arithmetic against float64 hand computations and against diffusers' own scheduler."""

import math

import pytest
import torch
from diffusers import DDIMScheduler

from inpo_bench.diffusion import (
    add_noise,
    ddim_step,
    ddim_timesteps,
    initial_noise,
    noise_seed,
    predict_x0,
)


def linear_abar(n: int = 1000, start: float = 1e-4, end: float = 0.02) -> torch.Tensor:
    betas = torch.linspace(start, end, n, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


def test_add_noise_and_predict_x0_invert_each_other():
    abar = linear_abar()
    g = torch.Generator().manual_seed(0)
    x0, eps = (
        torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
        torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64),
    )
    t = torch.tensor([0, 10, 500, 999])
    x_t = add_noise(x0, eps, abar[t])
    # by hand for one sample
    a = abar[500].item()
    assert torch.allclose(x_t[2], math.sqrt(a) * x0[2] + math.sqrt(1 - a) * eps[2])
    assert torch.allclose(predict_x0(x_t, eps, abar[t]), x0, atol=1e-10)


def test_ddim_step_matches_hand_formula_in_both_directions():
    abar = linear_abar()
    g = torch.Generator().manual_seed(1)
    x, eps = (
        torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64),
    )
    for src, dst in ((700, 650), (101, 201)):
        a, b = abar[src].item(), abar[dst].item()
        x0 = (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
        expected = math.sqrt(b) * x0 + math.sqrt(1 - b) * eps
        assert torch.allclose(ddim_step(x, eps, abar[src], abar[dst]), expected, atol=1e-12)


def test_ddim_step_is_exact_on_the_forward_process():
    """If eps is the true noise of x_t, one DDIM step lands exactly on x_s with the same noise."""
    abar = linear_abar()
    g = torch.Generator().manual_seed(2)
    x0, eps = (
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
    )
    x_t = add_noise(x0, eps, abar[900])
    assert torch.allclose(ddim_step(x_t, eps, abar[900], abar[100]), add_noise(x0, eps, abar[100]), atol=1e-12)


@pytest.mark.parametrize("steps", [1, 10, 20, 50])
def test_grid_matches_diffusers(steps):
    scheduler = DDIMScheduler(num_train_timesteps=1000, steps_offset=1, set_alpha_to_one=False, clip_sample=False)
    scheduler.set_timesteps(steps)
    assert ddim_timesteps(1000, steps, offset=1) == scheduler.timesteps.tolist()


@pytest.mark.parametrize("clip", [False, True])
def test_ddim_step_matches_diffusers_scheduler_step(clip):
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="linear",
        beta_start=1e-4,
        beta_end=0.02,
        steps_offset=1,
        set_alpha_to_one=False,
        clip_sample=clip,
    )
    scheduler.set_timesteps(20)
    abar = scheduler.alphas_cumprod
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 8, 8, generator=g)
    grid = ddim_timesteps(1000, 20)
    for i, t in enumerate(grid):
        eps = torch.randn(2, 3, 8, 8, generator=g)
        expected = scheduler.step(eps, t, x).prev_sample
        nxt = abar[grid[i + 1]] if i + 1 < len(grid) else abar[0]
        assert torch.allclose(ddim_step(x, eps, abar[t], nxt, 1.0 if clip else None), expected, atol=1e-5)
        x = expected
    if clip:  # at t = 951 the unclipped x0 prediction is ~100 x the eps error: the clamp is what differs
        eps = torch.randn(2, 3, 8, 8, generator=g)
        x = torch.randn(2, 3, 8, 8, generator=g)
        assert not torch.allclose(ddim_step(x, eps, abar[951], abar[901]), ddim_step(x, eps, abar[951], abar[901], 1.0))


def test_initial_noise_depends_only_on_prompt_and_seed():
    a = initial_noise("red-circle-blue", 0, (3, 16, 16))
    assert torch.equal(a, initial_noise("red-circle-blue", 0, (3, 16, 16)))
    assert not torch.equal(a, initial_noise("red-circle-blue", 1, (3, 16, 16)))
    assert not torch.equal(a, initial_noise("red-circle-green", 0, (3, 16, 16)))
    assert noise_seed("a", 1) != noise_seed("a1", 0)  # the separator keeps (id, seed) pairs apart
    assert 0 <= noise_seed("x", 2**40) < 2**63
    assert a.mean().abs() < 0.2 and 0.8 < a.std() < 1.2
