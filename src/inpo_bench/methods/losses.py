"""Training losses as pure functions of per-sample tensors, so they can be checked against hand computations."""

from __future__ import annotations

import torch


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over every axis but the first, in float32 or wider."""
    diff = pred.float() - target.float()
    return diff.pow(2).reshape(diff.shape[0], -1).mean(dim=1)


def epsilon_loss(eps_pred: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The denoising objective of pretraining and SFT: mean over the batch of the per-sample epsilon MSE."""
    return per_sample_mse(eps_pred, eps).mean()
