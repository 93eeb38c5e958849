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
    def __init__(self, modules: dict[str, nn.Module], decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {
            name: {k: p.detach().float().clone() for k, p in module.named_parameters() if p.requires_grad}
            for name, module in modules.items()
        }

    def current_decay(self) -> float:
        n = self.updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, modules: dict[str, nn.Module]) -> None:
        d = self.current_decay()
        for name, module in modules.items():
            shadow = self.shadow[name]
            for k, p in module.named_parameters():
                if k in shadow:
                    shadow[k].sub_((1 - d) * (shadow[k] - p.detach().float()))
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, modules: dict[str, nn.Module]) -> None:
        """Overwrite the modules' trained parameters with the average."""
        for name, module in modules.items():
            for k, p in module.named_parameters():
                if k in self.shadow[name]:
                    p.copy_(self.shadow[name][k])

    @contextmanager
    def applied(self, modules: dict[str, nn.Module]) -> Iterator[None]:
        """The average in the modules for the duration (a progress evaluation), the trained weights after."""
        saved = {
            name: {k: p.detach().clone() for k, p in module.named_parameters() if k in self.shadow[name]}
            for name, module in modules.items()
        }
        self.copy_to(modules)
        try:
            yield
        finally:
            with torch.no_grad():
                for name, module in modules.items():
                    for k, p in module.named_parameters():
                        if k in saved[name]:
                            p.copy_(saved[name][k])

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state["shadow"]) != set(self.shadow) or any(
            set(state["shadow"][name]) != set(self.shadow[name]) for name in self.shadow
        ):
            raise ValueError("the checkpoint's weight average holds other parameters than this model's")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {
            name: {k: v.to(self.shadow[name][k].device, torch.float32).clone() for k, v in group.items()}
            for name, group in state["shadow"].items()
        }
