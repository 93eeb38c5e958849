"""Losses and DDIM inversion against float64 hand computations and independent reference loops."""

import math

import numpy as np
import pytest
import torch

from inpo_bench.diffusion import ddim_step
from inpo_bench.methods.dpo import dpo_loss
from inpo_bench.methods.inpo import inpo_target
from inpo_bench.methods.inversion import InversionSettings, invert, max_steps, official_grid, schedule
from inpo_bench.methods.losses import implicit_accuracy, per_sample_mse, preference_logits


def f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_per_sample_mse_by_hand():
    pred = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]], dtype=torch.float64)
    target = torch.tensor([[[0.0, 0.0]], [[3.0, 1.0]]], dtype=torch.float64)
    assert per_sample_mse(pred, target).tolist() == [2.5, 5.0]  # (1 + 4) / 2, (9 + 1) / 2
    assert per_sample_mse(pred.half(), target.half()).dtype == torch.float32


def test_dpo_loss_by_hand_with_sign_and_half():
    # pair 1: the policy lowers the winner's error by 0.002 relative to the reference -> inside = +0.5*2000*0.002 = 2
    # pair 2: the policy favours the loser by the same amount -> inside = -2
    model_w, model_l = f64(0.100, 0.102), f64(0.200, 0.200)
    ref_w, ref_l = f64(0.102, 0.100), f64(0.200, 0.200)
    loss, inside = dpo_loss(model_w, model_l, ref_w, ref_l, beta=2000.0)
    assert inside.tolist() == pytest.approx([2.0, -2.0], abs=1e-12)
    expected = [math.log1p(math.exp(-2.0)), math.log1p(math.exp(2.0))]  # -log sigmoid(x) = log(1 + e^-x)
    assert loss.tolist() == pytest.approx(expected, abs=1e-12)
    assert implicit_accuracy(inside) == 0.5


def test_dpo_loss_is_log2_when_policy_equals_reference():
    g = torch.Generator().manual_seed(0)
    mse_w, mse_l = torch.rand(16, generator=g, dtype=torch.float64), torch.rand(16, generator=g, dtype=torch.float64)
    loss, inside = dpo_loss(mse_w, mse_l, mse_w.clone(), mse_l.clone(), beta=5000.0)
    assert torch.all(inside == 0) and torch.allclose(loss, torch.full_like(loss, math.log(2)))
    assert implicit_accuracy(inside) == 0.0  # ties count as not ranked right, as the official code logs it


def test_beta_scales_the_logits_linearly():
    args = f64(0.3), f64(0.5), f64(0.4), f64(0.4)
    assert preference_logits(*args, beta=4000.0) == pytest.approx(2 * preference_logits(*args, beta=2000.0))
    assert preference_logits(*args, beta=1.0).item() == pytest.approx(-0.5 * ((0.3 - 0.5) - 0.0))


def test_inpo_target_satisfies_the_forward_identity():
    g = torch.Generator().manual_seed(1)
    x0, x_t = (
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 3, 4, 4, generator=g, dtype=torch.float64),
    )
    abar_t = f64(0.99, 0.5, 0.01)
    tau = inpo_target(x_t, x0, abar_t)
    rebuilt = abar_t.sqrt().reshape(-1, 1, 1, 1) * x0 + (1 - abar_t).sqrt().reshape(-1, 1, 1, 1) * tau
    assert torch.allclose(rebuilt, x_t, atol=1e-12)
    assert tau[1, 0, 0, 0].item() == pytest.approx(
        (x_t[1, 0, 0, 0].item() - math.sqrt(0.5) * x0[1, 0, 0, 0].item()) / math.sqrt(0.5)
    )


# --- inversion -------------------------------------------------------------------------------------------


def linear_abar(n=1000):
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, n, dtype=torch.float64), 0)


def test_official_grid_is_the_diffusers_020_rolled_grid():
    assert official_grid(1000, 10) == [-99, 1, 101, 201, 301, 401, 501, 601, 701, 801]


@pytest.mark.parametrize(
    ("t", "calls", "end"),
    [
        (0, 1, 1),
        (1, 1, 1),
        (2, 2, 101),
        (101, 2, 101),
        (102, 3, 201),
        (500, 6, 501),
        (550, 7, 601),
        (850, 10, 901),
        (950, 10, 901),
        (999, 10, 901),
    ],
)
def test_official_schedule_matches_the_table_of_the_dossier(t, calls, end):
    plan = schedule(t, 1000, InversionSettings())
    assert len(plan) == calls and plan[-1][1] == end
    assert all(b - a == 100 for a, b in plan)


def test_official_grid_averages_638_inverse_calls_over_uniform_t():
    # by hand: 1 call for the -99 step at every t, plus min(9, ceil((t-1)/100)) for t >= 2:
    # 100 * (1 + ... + 9) + 98 * 9 = 5382, so (1000 + 5382) / 1000 = 6.382
    mean = np.mean([len(schedule(t, 1000, InversionSettings())) for t in range(1000)])
    assert mean == pytest.approx(6.382, abs=1e-12)
    assert max_steps(1000, InversionSettings()) == 10


def test_exact_schedule_ends_at_t():
    settings = InversionSettings(grid="exact")
    for t in (1, 37, 100, 101, 555, 999):
        plan = schedule(t, 1000, settings)
        assert plan[0][0] == 0 and plan[-1][1] == t and len(plan) == math.ceil(t / 100)
        assert all(b > a for a, b in plan)
    assert schedule(0, 1000, settings) == []


def reference_official_loop(eps_fn, x0, t, abar, eta, noises):
    """research/inpo.md section 2.5, line by line, for one sample."""
    x = x0.clone()
    for k, s in enumerate([g for g in [-99, 1, 101, 201, 301, 401, 501, 601, 701, 801] if g < t]):
        eps = eps_fn(x, s)
        a_s = abar[s] if s >= 0 else abar[0]
        a_n = abar[s + 100]
        x0_hat = (x - torch.sqrt(1 - a_s) * eps) / torch.sqrt(a_s)
        x = torch.sqrt(a_n) * x0_hat + torch.sqrt(1 - a_n) * eps
        a_lo = abar[s] if s >= 0 else abar[0]
        var = (1 - a_lo) / (1 - a_n) * (1 - a_n / a_lo)
        x = x + eta * torch.sqrt(var) * noises[k]
    return x


def toy_eps(x, s):
    """A nonlinear stand-in for a UNet: depends on the input and the timestep."""
    return torch.tanh(0.7 * x) + 0.001 * float(s)


@pytest.mark.parametrize("eta", [0.0, 0.1])
def test_batched_inversion_matches_the_reference_loop(eta):
    abar = linear_abar()
    g = torch.Generator().manual_seed(2)
    t = torch.tensor([0, 1, 57, 101, 102, 480, 999])
    x0 = torch.randn(len(t), 3, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(10, len(t), 3, 4, 4, generator=g, dtype=torch.float64)
    calls = []

    def eps_fn(x, timesteps, index):
        calls.append(len(index))
        return toy_eps(x, 0) + 0.001 * timesteps.to(x.dtype).reshape(-1, 1, 1, 1)

    x_t, evaluations = invert(eps_fn, x0, t, abar, InversionSettings(eta=eta), eta_noise=noise)
    for i, ti in enumerate(t.tolist()):
        expected = reference_official_loop(toy_eps, x0[i], ti, abar, eta, noise[:, i])
        assert torch.allclose(x_t[i], expected, atol=1e-12), ti
    assert evaluations == sum(len(schedule(ti, 1000, InversionSettings())) for ti in t.tolist())
    assert calls[0] == len(t) and calls[-1] == 1  # only samples with steps left reach the UNet


def gaussian_eps(mu, sigma2, abar_of):
    """The exact noise prediction for data ~ N(mu, sigma2 I): E[eps | x_t] is linear in x_t."""

    def eps_fn(x, timesteps, index):
        a = abar_of(timesteps).reshape(-1, 1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * sigma2 + 1 - a)

    return eps_fn


def invert_then_sample(steps):
    abar = linear_abar()

    def abar_of(ts):
        return torch.where(ts >= 0, abar[ts.clamp(min=0)], abar[0])

    eps_fn = gaussian_eps(0.3, 0.25, abar_of)
    g = torch.Generator().manual_seed(3)
    x0 = 0.3 + 0.5 * torch.randn(64, 1, 2, 2, generator=g, dtype=torch.float64)
    t = torch.full((64,), 999)
    settings = InversionSettings(steps=steps, eta=0.0)
    x_t, _ = invert(eps_fn, x0, t, abar, settings)
    x = x_t
    for src, dst in reversed(schedule(999, 1000, settings)):  # DDIM sampling down the same grid
        eps = eps_fn(x, torch.full((64,), dst), None)
        x = ddim_step(x, eps, abar[dst], abar_of(torch.tensor([src])))
    return (x - x0).abs().max().item() / x0.abs().max().item()


def test_inversion_then_sampling_recovers_x0():
    """With the exact denoiser of a Gaussian data distribution, inverting to t = 999 with eta 0 and sampling back
    down the same grid returns to x0 up to DDIM's discretisation error. DDIM is a first-order solver, so the
    relative error halves when the steps double: 0.36 at 10 steps, 0.045 at 100 (stated tolerance 0.05)."""
    errors = {steps: invert_then_sample(steps) for steps in (10, 50, 100)}
    assert errors[100] < 0.05
    assert errors[10] > errors[50] > errors[100]
    assert 1.7 < errors[50] / errors[100] < 2.3


def test_inversion_is_batch_independent():
    abar = linear_abar()
    g = torch.Generator().manual_seed(4)
    t = torch.tensor([5, 350, 999, 120])
    x0 = torch.randn(4, 3, 4, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(10, 4, 3, 4, 4, generator=g, dtype=torch.float64)

    def eps_fn(x, timesteps, index):
        return torch.tanh(x) * (1 + 0.0005 * timesteps.to(x.dtype).reshape(-1, 1, 1, 1))

    together, _ = invert(eps_fn, x0, t, abar, InversionSettings(), eta_noise=noise)
    for i in range(4):
        alone, _ = invert(eps_fn, x0[i : i + 1], t[i : i + 1], abar, InversionSettings(), eta_noise=noise[:, i : i + 1])
        assert torch.allclose(alone[0], together[i], atol=1e-12)


def test_invalid_settings():
    with pytest.raises(ValueError, match="grid"):
        InversionSettings(grid="fancy")
    with pytest.raises(ValueError, match="inversion model"):
        InversionSettings(model="ema")
    with pytest.raises(ValueError, match="eta_noise"):
        invert(lambda x, t, i: x, torch.zeros(1, 1), torch.tensor([500]), linear_abar(), InversionSettings())
