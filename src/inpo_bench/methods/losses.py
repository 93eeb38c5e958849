"""Loss pieces several methods share, as pure functions of per-sample tensors (each method's own loss lives in its
module: dpo.dpo_loss, kto.kto_loss, ...), so they can be checked against hand computations.

Conventions (as the official Diffusion-DPO code, SalesforceAIResearch/DiffusionDPO train.py):
- per-sample MSE = mean over every axis but the batch axis;
- preference losses take the per-sample MSEs of the preferred (w) and dispreferred (l) images under the policy
  and the frozen reference, and beta in the official `-0.5 * beta` convention (diffusers' SD1.5 DPO script drops the
  0.5, so its beta is half of ours for the same loss).
"""

from __future__ import annotations

import torch


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every axis but the first, in float32 or wider."""
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    diff = pred.to(dtype) - target.to(dtype)
    return diff.pow(2).reshape(diff.shape[0], -1).mean(dim=1)


def epsilon_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The denoising objective of pretraining and SFT: mean over the batch of the per-sample epsilon MSE."""
    return per_sample_mse(eps_pred, eps).mean()


def preference_logits(
    model_w: torch.Tensor, model_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor, beta: float | torch.Tensor
) -> torch.Tensor:
    """inside = -0.5 * beta * ((model_w - model_l) - (ref_w - ref_l)), one value per pair.

    Positive when the policy lowered the winner's error relative to the loser's more than the reference did.
    beta may be a per-pair tensor (SmPO's smoothed labels scale it pair by pair).
    """
    return -0.5 * beta * ((model_w - model_l) - (ref_w - ref_l))


def implicit_accuracy(inside: torch.Tensor) -> torch.Tensor:
    """Share of pairs the policy ranks right relative to the reference (inside > 0), as the official code logs it;
    a 0-dim tensor on inside's device (the trainer moves metrics to the host once per optimiser step)."""
    return (inside.detach() > 0).float().mean()


def sdpo_loser_scale(
    pred_w: torch.Tensor, pred_l: torch.Tensor, target_w: torch.Tensor, target_l: torch.Tensor, mu: float
) -> torch.Tensor:
    """Diffusion-SDPO's safeguard (AIDC-AI/Diffusion-SDPO train.py, get_adaptive_lose_l_scale): the factor lambda in
    [0, 1] on the loser's gradient such that, to first order in output space, a step does not raise the winner's
    error: with A = mean((pred_w - target_w)^2) and B = mean((pred_l - target_l)^2) over the whole half-batch,

        lambda = clip((1 - mu) |dA/dpred_w|^2 / (<dB/dpred_l, dA/dpred_w> + 1e-9), 0, 1)   if the inner product > 0,
        lambda = 1                                                                         otherwise.

    One detached scalar per micro-batch, as the official code (winner i is paired with loser i element-wise).
    """
    with torch.no_grad():
        n = pred_w.numel()
        grad_a = 2.0 / n * (pred_w.float() - target_w.float())
        grad_b = 2.0 / n * (pred_l.float() - target_l.float())
        numerator = grad_a.pow(2).sum()
        inner = (grad_b * grad_a).sum()
        capped = (1.0 - mu) * numerator / (inner + 1e-9)
        scale = torch.where(inner > 0, capped, torch.ones_like(capped))
        return scale.clamp(0.0, 1.0)


def scale_gradient(value: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """`value` in the forward pass, `scale` times its gradient in the backward pass (SDPO's detach trick)."""
    return value.detach() + scale * (value - value.detach())
