"""The chain-KL divergence estimate (divergence.py) against an independent route through DDPM's posterior mean."""

import numpy as np
import pytest
import torch

from inpo_bench.divergence import chain_weights, divergence


def posterior_mean(x_t, eps, abar, t):
    """Ho et al. 2020 eq. 7: mu = c0 x0_hat + c1 x_t, with x0_hat from eps; a different algebra from w_t's."""
    a_t, a_prev = abar[t], abar[t - 1]
    beta = 1 - a_t / a_prev
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    c0 = a_prev.sqrt() * beta / (1 - a_t)
    c1 = (1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)
    return c0 * x0_hat + c1 * x_t, beta * (1 - a_prev) / (1 - a_t)


def test_chain_weights_are_the_gaussian_kl_of_the_posterior_means():
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.2, 12, dtype=torch.float64), 0)
    w = chain_weights(abar)
    assert w[0] == 0
    g = torch.Generator().manual_seed(0)
    x_t, e1, e2 = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3))
    for t in range(1, 12):
        m1, var = posterior_mean(x_t, e1, abar, t)
        m2, _ = posterior_mean(x_t, e2, abar, t)
        kl = ((m1 - m2) ** 2).sum() / (2 * var)
        assert float(w[t] * ((e1 - e2) ** 2).sum()) == pytest.approx(float(kl), rel=1e-9)


def test_divergence_is_zero_for_the_same_model_and_exact_for_a_constant_offset():
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.2, 10), 0)
    x0 = torch.randn(7, 2, 3, 3, generator=torch.Generator().manual_seed(1))
    context = torch.zeros(7, 1, 1)

    def same(x, t, c):
        return 0.1 * x + t[:, None, None, None] * 0.01

    def offset(x, t, c):
        return same(x, t, c) + 0.05

    assert divergence(same, same, x0, context, abar)["chain_kl"] == 0.0
    result = divergence(offset, same, x0, context, abar, points=100)
    assert result["levels"] == 9  # every level 1..9: the quadrature is the exact sum
    expected = float(chain_weights(abar)[1:].sum()) * 18 * 0.05**2  # 18 values per image
    assert result["chain_kl"] == pytest.approx(expected, rel=1e-5)
    assert result["eps_mse"] == pytest.approx(0.05**2, rel=1e-5)
    # on a coarser grid each level stands for its neighbours: still exact for a difference that does not depend on t
    coarse = divergence(offset, same, x0, context, abar, points=4)
    assert coarse["levels"] == 4 and coarse["chain_kl"] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(coarse["eps_mse"])
