"""An exponential moving average of trained weights, the weights a pretrained diffusion model is usually released
with (Stable Diffusion's checkpoints are EMA weights).

Follows diffusers training_utils.EMAModel (as train_text_to_image.py uses it): one update after every optimiser
step, with the decay warmed up as min(decay, (1 + n) / (10 + n)) over the n updates made before, so the average
forgets the random initial weights quickly; shadow = shadow - (1 - d) * (shadow - weight). The shadow weights are
kept in float32 beside the model; only parameters that train are averaged (frozen ones and buffers are the
model's own).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class WeightAverage:
    """The average of the parameters that train in `modules` (name -> module), keyed "<module>.<parameter>"."""

    def __init__(self, modules: dict[str, nn.Module], decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        # the live parameters (loading a checkpoint copies into them, so these references stay valid)
        self.params = {
            f"{name}.{k}": p
            for name, module in modules.items()
            for k, p in module.named_parameters()
            if p.requires_grad
        }
        self.shadow = {key: p.detach().float().clone() for key, p in self.params.items()}

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self) -> None:
        d = self.current_decay()
        for key, p in self.params.items():
            self.shadow[key].sub_((1 - d) * (self.shadow[key] - p.float()))
        self.updates += 1

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Overwrite the trained parameters with the average."""
        for key, p in self.params.items():
            p.copy_(self.shadow[key])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The average in the model for the duration (a progress evaluation), the trained weights after."""
        saved = {key: p.detach().clone() for key, p in self.params.items()}
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for key, p in self.params.items():
                    p.copy_(saved[key])

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the checkpoint's weight average holds other parameters than this model's")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {key: v.to(self.params[key].device, torch.float32).clone() for key, v in state["shadow"].items()}
