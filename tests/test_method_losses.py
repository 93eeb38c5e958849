"""The zoo's losses (Diffusion-KTO, MaPO, DSPO, SmPO's labels, Diffusion-SDPO's safeguard, ReNoise inversion)
against float64 hand computations: known values at policy == reference, sign conventions, gradient directions."""

import math

import pytest
import torch

from inpo_bench.diffusion import ddim_step
from inpo_bench.methods.dspo import dspo_loss
from inpo_bench.methods.inversion import InversionSettings, invert
from inpo_bench.methods.kto import kto_loss, reference_point
from inpo_bench.methods.losses import preference_logits, scale_gradient, sdpo_loser_scale
from inpo_bench.methods.mapo import mapo_loss, mapo_margin
from inpo_bench.methods.smpo import smoothed_scale


def f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# --- Diffusion-KTO --------------------------------------------------------------------------------------------


def test_kto_by_hand_with_the_clamped_batch_reference_point():
    m, r = f64(0.10, 0.30, 0.20), f64(0.12, 0.25, 0.20)  # g = r - m = 0.02, -0.05, 0.0; mean -0.01 -> z = 0
    desirable = torch.tensor([True, False, True])
    z = reference_point(m, r)
    assert z.item() == 0.0
    loss = kto_loss(m, r, desirable, 100.0, z, lambda_desirable=1.0, lambda_undesirable=2.0)
    expected = [1 - sigmoid(100 * 0.02), 2 * (1 - sigmoid(-100 * -0.05)), 1 - sigmoid(0.0)]
    assert loss.tolist() == pytest.approx(expected, abs=1e-12)
    # a positive batch mean becomes the reference point
    assert reference_point(f64(0.1, 0.1), f64(0.2, 0.3)).item() == pytest.approx(0.15)


def test_kto_at_policy_equals_reference_and_its_gradient_signs():
    m = f64(0.2, 0.2).requires_grad_(True)
    desirable = torch.tensor([True, False])
    loss = kto_loss(m, m.detach().clone(), desirable, 1000.0, reference_point(m, m.detach()))
    assert loss.tolist() == pytest.approx([0.5, 0.5])  # utility sigmoid(0)
    loss.sum().backward()
    # lowering a desirable image's error lowers the loss; lowering an undesirable one's raises it
    assert m.grad[0] > 0 and m.grad[1] < 0
    assert m.grad[0].item() == pytest.approx(1000 * 0.25)  # d/dm (1 - sigmoid(beta (r - m))) = beta s(1-s)


# --- MaPO ---------------------------------------------------------------------------------------------------


def test_mapo_by_hand():
    s = 0.5
    assert mapo_margin(f64(0.2), s).item() == pytest.approx(0.1 / (math.exp(0.1) - 1), rel=1e-12)
    m_w, m_l = f64(0.10, 0.30), f64(0.12, 0.25)
    loss, odds = mapo_loss(m_w, m_l, beta=0.1, snr_value=s, num_timesteps=1000)

    def f(x):
        return s * x / (math.exp(s * x) - 1)

    expected_odds = [1000 * (f(0.10) - f(0.12)), 1000 * (f(0.30) - f(0.25))]
    assert odds.tolist() == pytest.approx(expected_odds, rel=1e-10)
    log_sigmoid = [math.log(sigmoid(o)) for o in expected_odds]
    assert loss.item() == pytest.approx(0.2 - 0.1 * sum(log_sigmoid) / 2, rel=1e-10)
    assert expected_odds[0] > 0 > expected_odds[1]  # the winner's lower error is the positive margin


def test_mapo_at_equal_errors_and_its_gradient_signs():
    m_w, m_l = f64(0.2).requires_grad_(True), f64(0.2).requires_grad_(True)
    loss, _ = mapo_loss(m_w, m_l, beta=0.1, snr_value=0.5, num_timesteps=1000)
    assert loss.item() == pytest.approx(0.2 + 0.1 * math.log(2))
    loss.backward()
    assert m_w.grad > 0 and m_l.grad < 0  # lower the winner's error, raise the loser's


# --- DSPO ---------------------------------------------------------------------------------------------------


def test_dspo_sd15_by_hand_and_at_init():
    g = torch.Generator().manual_seed(0)
    pred, ref, eps = (torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64) for _ in range(3))
    inside = f64(0.7, -1.2)
    beta = 0.5
    loss = dspo_loss(pred, ref, eps, inside, beta, "sd15")
    keep = (1 - torch.sigmoid(inside)).reshape(2, 1, 1, 1)
    by_hand = ((pred - eps) - beta * keep * (pred - ref)) ** 2
    assert loss.item() == pytest.approx(by_hand.mean().item(), rel=1e-12)
    # policy == reference: the correction vanishes and DSPO is the winner's denoising loss
    assert dspo_loss(pred, pred, eps, f64(0.0, 0.0), beta, "sd15").item() == pytest.approx(
        ((pred - eps) ** 2).mean().item(), rel=1e-12
    )


def test_dspo_sdxl_branches_on_the_batch_gap():
    pred = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    inside = f64(0.0, 2.0)
    keep2 = (1 - torch.sigmoid(inside)) ** 2
    near = dspo_loss(pred, pred + 0.1, pred, inside, 5000.0, "sdxl")  # gap 0.01 < 0.1: the DPO-like branch
    assert near.item() == pytest.approx(keep2.mean().item(), rel=1e-12)
    far = dspo_loss(pred, pred + 1.0, pred, inside, 5000.0, "sdxl")  # gap 1.0 >= 0.1: weighted by the gap
    assert far.item() == pytest.approx((keep2 * 1.0).mean().item(), rel=1e-12)


def test_dspo_logit_is_not_detached():
    """The official code keeps sigmoid(z) in the graph: the loser's error reaches the loss through it."""
    m_l = f64(0.3).requires_grad_(True)
    inside = preference_logits(f64(0.2), m_l, f64(0.25), f64(0.25), 2.0)
    pred = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    dspo_loss(pred, torch.zeros_like(pred), torch.zeros_like(pred), inside, 2.0, "sd15").backward()
    assert m_l.grad is not None and m_l.grad.abs() > 0


# --- Diffusion-SDPO's safeguard -------------------------------------------------------------------------------


def test_sdpo_scale_by_hand():
    pred_w, target_w = f64(1.0, 2.0), f64(0.0, 0.0)
    pred_l, target_l = f64(3.0, 0.0), f64(0.0, 0.0)
    n = 2
    ga = [2 / n * 1.0, 2 / n * 2.0]
    gb = [2 / n * 3.0, 0.0]
    num, inner = ga[0] ** 2 + ga[1] ** 2, gb[0] * ga[0]
    mu = 0.2
    expected = min(1.0, (1 - mu) * num / (inner + 1e-9))
    assert sdpo_loser_scale(pred_w, pred_l, target_w, target_l, mu).item() == pytest.approx(expected, rel=1e-7)
    # a loser gradient pointing away from the winner's (inner product <= 0) is left alone
    assert sdpo_loser_scale(pred_w, -pred_l, target_w, target_l, mu).item() == 1.0
    # a large aligned loser gradient is cut to the first-order winner-preserving bound
    big = sdpo_loser_scale(pred_w, f64(100.0, 0.0), target_w, target_l, mu).item()
    assert big == pytest.approx((1 - mu) * num / (2 / n * 100 * ga[0]), rel=1e-6) and big < 1


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    x = f64(2.0).requires_grad_(True)
    y = scale_gradient(x**2, 0.25)
    assert y.item() == 4.0
    y.backward()
    assert x.grad.item() == pytest.approx(0.25 * 4.0)


# --- SmPO's smoothed labels -------------------------------------------------------------------------------------

LO, HI = 0.11543526500463486, 0.28201571106910706  # the official raw-PickScore-cosine constants


def test_smoothed_scale_by_hand():
    a, b = (0.25 - LO) / (HI - LO), (0.20 - LO) / (HI - LO)
    p = math.exp(a) / (math.exp(a) + math.exp(b))
    assert smoothed_scale(f64(0.25), f64(0.20), LO, HI).item() == pytest.approx((2 * p - 1) * 10, rel=1e-12)
    assert smoothed_scale(f64(0.2), f64(0.2), LO, HI).item() == 0.0  # a tie carries no preference
    # only the gap matters: (2 sigmoid(gap / range) - 1) * 10
    assert smoothed_scale(f64(HI), f64(LO), LO, HI).item() == pytest.approx((2 * sigmoid(1.0) - 1) * 10, rel=1e-12)


# --- ReNoise inversion --------------------------------------------------------------------------------------------


def test_renoise_averages_a_second_evaluation_at_the_stepped_latent():
    abar = torch.linspace(0.9999, 0.01, 1000, dtype=torch.float64)
    x0 = torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64)
    settings = InversionSettings(steps=5, eta=0.0, renoise=True)
    calls = []

    def eps_fn(x, t, index):  # depends on x, so the second evaluation differs from the first
        calls.append((x.clone(), t.clone()))
        return 0.3 * x

    x_t, evaluations = invert(eps_fn, x0, torch.tensor([150]), abar, settings)
    # t = 150 on the 5-step grid [-199, 1, 201, ...]: steps from -199 and from 1, two evaluations each
    assert evaluations == 4 and [int(t) for _, t in calls] == [-199, -199, 1, 1]
    x = x0.clone()
    for src, dst in ((-199, 1), (1, 201)):
        a_src, a_dst = abar[max(src, 0)], abar[dst]
        e1 = 0.3 * x
        e2 = 0.3 * ddim_step(x, e1, a_src, a_dst)
        x = ddim_step(x, (e1 + e2) / 2, a_src, a_dst)
    assert torch.allclose(x_t, x, atol=1e-12)
    plain, n = invert(lambda x, t, i: 0.3 * x, x0, torch.tensor([150]), abar, InversionSettings(steps=5, eta=0.0))
    assert n == 2 and not torch.allclose(plain, x_t)
