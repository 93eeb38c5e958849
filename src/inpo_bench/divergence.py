"""How far a trained model has moved from its base: the KL between the two models' DDPM reverse chains.

With shared variances sigma_t^2, the chain KL is a sum of Gaussian KLs (Ho et al. 2020, the L_{t-1} terms of the ELBO):

    KL(p_theta || p_ref) = sum_{t >= 1} E_{x_t} [ ||mu_theta - mu_ref||^2 / (2 sigma_t^2) ]
                         = sum_{t >= 1} w_t E_{x_t} ||eps_theta(x_t, t) - eps_ref(x_t, t)||^2,
    w_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - abar_t)),   sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t)

(DDPM's posterior variance). Why this estimate: it is in nats, like the KL of best-of-n and of the reward-tilted
frontier it is drawn beside (tables/headroom.py), and by the data-processing inequality it bounds the KL between the
two models' images from above, so a model's share of the frontier at this divergence is not flattered. How it is
estimated: x_t by noising the model's own evaluation samples (its images, encoded as training encodes them), the
conditional noise predictions (no guidance), the sum over t as a quadrature on `points` geometrically spaced levels
(w_t is largest at small t), each standing for the levels nearest it: their exact sum of w_t times the squared
difference measured at it; one noise draw per image and level (seeded). Its companion, the mean squared difference
of the two noise predictions per value averaged over the same levels, is the unweighted "per-timestep
noise-prediction MSE to the base".
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import numpy as np
import torch

from .diffusion import add_noise

EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t, context) -> eps


def chain_weights(abar: torch.Tensor) -> torch.Tensor:
    """w_t of every level t (float64); w_0 = 0: the chain's last step, to the data, is not a Gaussian transition."""
    abar = abar.double()
    prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    beta = 1 - abar / prev
    alpha = 1 - beta
    sigma2 = beta * (1 - prev) / (1 - abar)
    w = beta**2 / (2 * sigma2.clamp_min(1e-30) * alpha * (1 - abar))
    w[0] = 0.0
    return w


@torch.no_grad()
def divergence(
    eps_model: EpsFn,
    eps_reference: EpsFn,
    x0: torch.Tensor,
    context: torch.Tensor,
    abar: torch.Tensor,
    points: int = 100,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """{"chain_kl": nats per image, "eps_mse": per value} of a model against a reference on images x0."""
    steps = len(abar)
    levels = np.unique(np.geomspace(1, steps - 1, points).round().astype(int))
    edges = np.concatenate([[1], (levels[1:] + levels[:-1] + 1) // 2, [steps]])  # level k: edges[k] .. edges[k+1]
    weights = chain_weights(abar)
    represented = [float(weights[a:b].sum()) for a, b in pairwise(edges)]
    generator = torch.Generator().manual_seed(seed)
    kl_terms, mse_terms = [], []
    for t, weight in zip(levels, represented):
        sq = []
        for start in range(0, len(x0), batch_size):
            x = x0[start : start + batch_size]
            noise = torch.randn(x.shape, generator=generator).to(x)
            tt = torch.full((len(x),), int(t), dtype=torch.long, device=x.device)
            x_t = add_noise(x, noise, abar[tt].to(x))
            ctx = context[start : start + batch_size]
            diff = eps_model(x_t, tt, ctx).double() - eps_reference(x_t, tt, ctx).double()
            sq.append(diff.pow(2).flatten(1).sum(1).cpu())
        per_image = torch.cat(sq)
        kl_terms.append(weight * float(per_image.mean()))
        mse_terms.append(float(per_image.mean()) / x0[0].numel())
    return {
        "chain_kl": float(np.sum(kl_terms)),
        "eps_mse": float(np.mean(mse_terms)),
        "levels": len(levels),
        "images": len(x0),
    }
