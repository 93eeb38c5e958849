"""What a method module declares (`METHOD = Method(...)`) for the registry in methods/__init__.py.

Every method trains one UNet on data/pairs.parquet with the shared loop (train.py); its module holds its loss as
pure functions of per-sample tensors, the objective that draws a micro-batch and computes that loss, the JSON
schema of its config keys beyond the shared ones (`$defs/method_keys` in schemas/config.schema.yaml), and what the
training job must prepare for it (a frozen reference, the losers, pair scores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import IMPLICIT_DEFAULTS


@dataclass
class Context:
    """What a training job hands a method's `build`: the policy UNet and everything around it."""

    unet: Any  # the UNet that trains
    data: Any  # a pair source of data/pairs.py
    config: dict[str, Any]  # the method's config section
    model: Any  # the T2IModel the UNet belongs to (noise schedule, conditioning)
    reference_dtype: Any = None  # torch dtype of the frozen reference under mixed precision (None: float32)
    pair_scores: Any = None  # methods that ask for them: a data.pair_scores.PairScores

    def common(self) -> dict[str, Any]:
        """The arguments every pair objective takes (methods/objectives.py `PairObjective`)."""
        cfg = self.config
        return {
            "data": self.data,
            "abar": self.model.alphas_cumprod,
            "batch_size": cfg["batch_size"],
            "caption_dropout": cfg["caption_dropout"],
            "t_min": cfg["t_min"],
            "t_max": cfg["t_max"],
            "t_table": self.timestep_table(),
            "eps_fn": self.model.eps,
        }

    def timestep_table(self) -> Any:
        """The trained timestep of each drawn one under the config's t_sampling (None: the drawn one itself)."""
        if self.config.get("t_sampling", IMPLICIT_DEFAULTS["t_sampling"]) == "uniform":
            return None
        import torch

        from ..toyworld.schedule import sd_equivalent_timesteps

        abar = self.model.alphas_cumprod.double().numpy()
        return torch.from_numpy(sd_equivalent_timesteps(abar, self.model.resolution))


@dataclass(frozen=True)
class Method:
    name: str  # config section, model id, CLI choice
    title: str  # how tables and figures name it
    order: int  # position in the registry's lists (tables, figures)
    source: str  # the official repository and file its loss follows
    build: Callable[[Context], Any]  # -> the objective (an nn.Module with draw / forward / trainable_modules)
    schema: dict[str, Any] = field(default_factory=dict)  # JSON-schema properties of its own keys
    losers: bool = True  # reads the dispreferred image of each pair
    pair_scores: bool = False  # needs each pair's two images scored by `label_scorer` (data/pair_scores.py)
    runtime_keys: tuple[str, ...] = ()  # its keys that cannot change the weights (none so far)
