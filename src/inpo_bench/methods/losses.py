"""Training losses as pure functions of per-sample tensors, so they can be checked against hand computations.

Conventions (as the official Diffusion-DPO and InPO code):
- per-sample MSE = mean over every axis but the batch axis;
- preference losses take the per-sample MSEs of the preferred (w) and dispreferred (l) images under the policy
  and the frozen reference, and beta in the official `-0.5 * beta` convention (diffusers' SD1.5 DPO script drops the
  0.5, so its beta is half of ours for the same loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every axis but the first, in float32 or wider."""
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    diff = pred.to(dtype) - target.to(dtype)
    return diff.pow(2).reshape(diff.shape[0], -1).mean(dim=1)


def epsilon_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The denoising objective of pretraining and SFT: mean over the batch of the per-sample epsilon MSE."""
    return per_sample_mse(eps_pred, eps).mean()


def preference_logits(
    model_w: torch.Tensor, model_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float
) -> torch.Tensor:
    """inside = -0.5 * beta * ((model_w - model_l) - (ref_w - ref_l)), one value per pair.

    Positive when the policy lowered the winner's error relative to the loser's more than the reference did.
    """
    return -0.5 * beta * ((model_w - model_l) - (ref_w - ref_l))


def dpo_loss(
    model_w: torch.Tensor, model_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Diffusion-DPO's loss per pair, -logsigmoid(inside), and the logits `inside` (for implicit accuracy).

    DDIM-InPO uses the same function; it differs only in the latents and targets the MSEs are taken on.
    """
    inside = preference_logits(model_w, model_l, ref_w, ref_l, beta)
    return -F.logsigmoid(inside), inside


def implicit_accuracy(inside: torch.Tensor) -> float:
    """Share of pairs the policy ranks right relative to the reference (inside > 0), as the official code logs it."""
    return float((inside > 0).float().mean())


def inpo_target(x_t: torch.Tensor, x0: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
    """DDIM-InPO's reparametrised noise: tau = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), per sample.

    It is the epsilon for which a one-step x0 prediction from x_t at level t recovers the data x0 exactly, so the
    identity x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) tau holds by construction.
    """
    abar_t = abar_t.to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
    return (x_t - abar_t.sqrt() * x0) / (1 - abar_t).sqrt()
