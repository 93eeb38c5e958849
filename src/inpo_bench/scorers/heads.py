"""The small MLP head that ImageReward and the LAION aesthetic predictor put on an embedding, and strict loading."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError


class RewardHead(nn.Module):
    """Linear(d, 1024) Dropout Linear(1024, 128) Dropout Linear(128, 64) Dropout Linear(64, 16) Linear(16, 1).

    No activations, so in eval mode it is one affine map; the layer indices (0, 2, 4, 6, 7) are those of the
    upstream checkpoints, which therefore load with their own key names.
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict=True) with an error that names the file and the offending keys."""
    expected, given = set(module.state_dict()), set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    if missing or unexpected:
        raise ModelError(
            f"{what}: checkpoint does not match the model; missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:  # shape mismatches
        raise ModelError(f"{what}: {error}") from None


def torch_load(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a .pt/.pth/.bin checkpoint without executing pickled code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ModelError(f"{path}: not a loadable weights-only checkpoint ({error})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # open_clip / HPS wrap the weights
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ModelError(f"{path}: expected a state dict of tensors")
    return state
