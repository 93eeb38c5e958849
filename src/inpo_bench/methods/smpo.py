"""SmPO-Diffusion: DDIM-InPO with smoothed preference labels from a reward model and ReNoise inversion.

Follows JaydenLyh/SmPO train.py (8922d54) and " preprocessing.py":
- each pair's images are scored by a reward model (PickScore's raw cosine at paper scale: data/pair_scores.py) and
  the pair is ordered by those scores, the higher first (the human label only removed ties before);
- with the scores min-max normalised by the range [lo, hi] (official constants 0.11543526500463486 and
  0.28201571106910706 of raw cosine), p = softmax of the normalised pair = sigmoid((s_w - s_l) / (hi - lo)), and
  the DPO scale becomes -0.5 * beta * (2p - 1) * 10 per pair (`smoothed_scale`): a pair the reward model calls a
  tie adds nothing;
- inversion as DDIM-InPO's with ReNoise (two evaluations per step, averaged, methods/inversion.py), no eta jitter,
  on a 5-step grid for SD1.5 ([-199, 1, 201, 401, 601]) and the 10-step grid for SDXL.

Deviations: the official code reads the label of the batch's first pair for the whole batch (it trains one pair per
GPU); here every pair has its own. In the toy world the reward model is the learned toy reward model (the toy
world's PickScore, models/toy_reward.py), never the hidden oracle; its range is taken from the scored pairs
(`label_range: null`).
"""

from __future__ import annotations

from typing import Any

import torch

from .base import Context, Method
from .dpo import BETA
from .inpo import INVERSION, InPO
from .inversion import InversionSettings
from .objectives import Generators

SMOOTHING = 10.0  # the official `* 10`


def smoothed_scale(score_w: torch.Tensor, score_l: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """(2p - 1) * 10 with p = exp(a) / (exp(a) + exp(b)), a and b the scores min-max normalised by [lo, hi]."""
    a, b = (score_w - lo) / (hi - lo), (score_l - lo) / (hi - lo)
    p = torch.exp(a) / (torch.exp(a) + torch.exp(b))
    return (2 * p - 1) * SMOOTHING


class SmPO(InPO):
    name = "smpo"

    def __init__(
        self,
        unet: torch.nn.Module,
        beta: float,
        inversion: InversionSettings,
        pair_scores: Any,
        label_range: tuple[float, float],
        timestep_offset: int = 1,
        reference_dtype: torch.dtype | None = None,
        **common: Any,
    ) -> None:
        super().__init__(unet, beta, inversion, timestep_offset, reference_dtype, **common)
        if pair_scores is None:
            raise ValueError("SmPO needs pair scores (the score_pairs rule)")
        lo, hi = label_range
        if not hi > lo:
            raise ValueError(f"SmPO's label range [{lo}, {hi}] is empty")
        self.scores_w = torch.as_tensor(pair_scores.w)
        self.scores_l = torch.as_tensor(pair_scores.l)
        self.lo, self.hi = lo, hi

    def draw(self, fetched: Any, generators: Generators, indices: Any = None) -> dict[str, Any]:
        batch = super().draw(fetched, generators, indices)
        index = torch.as_tensor(indices)
        s_w, s_l = self.scores_w[index], self.scores_l[index]
        swap = s_l > s_w  # the reward model's order replaces the human one
        where = swap.reshape(-1, *[1] * (batch["x0_w"].ndim - 1))
        batch["x0_w"], batch["x0_l"] = (
            torch.where(where, batch["x0_l"], batch["x0_w"]),
            torch.where(where, batch["x0_w"], batch["x0_l"]),
        )
        high, low = torch.maximum(s_w, s_l), torch.minimum(s_w, s_l)
        batch["label_scale"] = smoothed_scale(high, low, self.lo, self.hi).float()
        return batch

    def pair_beta(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.beta * batch["label_scale"]


def build(ctx: Context) -> SmPO:
    cfg = ctx.config
    label_range = tuple(cfg["label_range"]) if cfg["label_range"] else ctx.pair_scores.range()
    offset = int(ctx.model.scheduler.config.steps_offset)
    inversion = InversionSettings(**cfg["inversion"])
    return SmPO(
        ctx.unet, cfg["beta"], inversion, ctx.pair_scores, label_range, offset, ctx.reference_dtype, **ctx.common()
    )


METHOD = Method(
    name="smpo",
    title="SmPO",
    order=4,
    source="JaydenLyh/SmPO train.py and ' preprocessing.py'",
    build=build,
    pair_scores=True,
    schema={
        "beta": BETA,
        "inversion": {
            **INVERSION,
            "required": [*INVERSION["required"], "renoise"],
            "properties": {
                **INVERSION["properties"],
                "renoise": {
                    "description": "ReNoise: average a second UNet evaluation per inverse step (official true).",
                    "type": "boolean",
                },
            },
        },
        "label_scorer": {
            "description": "The reward model that scores each pair (pickscore_cosine at paper scale, "
            "toy_reward in the toy world; never the oracle).",
            "type": "string",
        },
        "label_range": {
            "description": "[lo, hi] of its min-max normalisation (official raw PickScore cosine "
            "[0.1154..., 0.2820...]); null: the range of the scored pairs.",
            "oneOf": [{"type": "null"}, {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}],
        },
    },
)
