"""Paper scale's progress evaluation: how a run is watched while it trains (config `progress_eval`, each method's
`eval_every`).

A fixed subset of a real prompt set (evenly spread, as `prompts.limit` picks), one noise seed of its own, sampled
from the model being trained with the run's DDIM sampler (steps and guidance of `progress_eval`; under the training's
mixed precision as autocast, where the sample rule casts the weights) and scored by a configured model scorer
(PickScore by default). Its rows go to eval_log.csv beside the toy world's oracle measurements, and from there into
the training-curve table, figure and report. The scorer is loaded at the first measurement, on the main process
only, and stays resident.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image


def spread(frame: pd.DataFrame, count: int) -> list[tuple[str, str]]:
    """`count` rows of a prompt table, evenly spread (every style or category stays represented)."""
    picks = np.unique(np.linspace(0, len(frame) - 1, min(count, len(frame))).round().astype(int))
    return list(zip(frame.prompt_id.iloc[picks], frame.prompt.iloc[picks]))


class ScoredProgress:
    def __init__(
        self,
        model: Any,
        prompts: list[tuple[str, str]],
        scorer: str,
        scorer_spec: dict[str, Any],
        seed: int,
        steps: int,
        guidance: float,
        batch_size: int = 16,
        dtype: str = "float32",
        scorer_dtype: str = "float32",
        score_batch_size: int = 16,
    ) -> None:
        from ..sample import SamplerSettings

        self.model, self.prompts, self.seed = model, prompts, seed
        self.scorer_name, self.scorer_spec = scorer, scorer_spec
        self.dtype, self.scorer_dtype = dtype, scorer_dtype
        self.settings = SamplerSettings(steps=steps, guidance=guidance, batch_size=batch_size)
        self.score_batch_size = score_batch_size
        self.scorer: Any = None
        from ..runtime import fingerprint

        self.fingerprint = fingerprint(**self.describe())  # marks each row: a resumed run drops another setting's

    def describe(self) -> dict[str, Any]:
        """What train.json records of the measurements."""
        return {
            "prompts": [pid for pid, _ in self.prompts],
            "seed": self.seed,
            "steps": self.settings.steps,
            "guidance": self.settings.guidance,
            "scorer": self.scorer_name,
            "dtype": self.dtype,
        }

    def _autocast(self) -> Any:
        device = self.model.unet.device
        half = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(self.dtype)
        return torch.autocast(device.type, dtype=half) if half is not None and device.type == "cuda" else nullcontext()

    def __call__(self, step: int, *_: object) -> dict[str, Any]:
        from ..sample import generate
        from . import load_scorer

        start = time.perf_counter()
        device = str(self.model.unet.device)
        if self.scorer is None:
            self.scorer = load_scorer(self.scorer_name, self.scorer_spec, device, self.scorer_dtype)
        modules = [*self.model.frozen_modules(), self.model.unet]
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        with self._autocast():
            items = list(generate(self.model, self.prompts, [self.seed], self.settings))
        for m, mode in zip(modules, modes):
            m.train(mode)
        scores = []
        for first in range(0, len(items), self.score_batch_size):
            block = items[first : first + self.score_batch_size]
            scores.extend(self.scorer.score([Image.fromarray(i[3]) for i in block], [i[2] for i in block]))
        values = np.asarray(scores, dtype=np.float64)
        return {
            "step": step,
            "scorer": self.scorer_name,
            "score": float(values.mean()),
            "score_se": float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan"),
            "images": len(values),
            "eval_seconds": round(time.perf_counter() - start, 3),
            "settings": self.fingerprint,
        }
