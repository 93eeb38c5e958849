"""The toy world's oracle as scorers: every OracleScore field of every sampled image, one CSV per scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..toyworld.world import World
from . import ORACLE_SCORERS


def oracle_scores(index: pd.DataFrame, sample_dir: str | Path, world: World) -> dict[str, pd.DataFrame]:
    """Score the images of a samples index; returns scorer name -> (prompt_id, seed, score)."""
    sample_dir = Path(sample_dir)
    records = []
    for row in index.itertuples(index=False):
        image = np.asarray(Image.open(sample_dir / row.file).convert("RGB"))
        records.append(world.score(image, row.prompt).as_dict())
    fields = pd.DataFrame.from_records(records)
    keys = index[["prompt_id", "seed"]].reset_index(drop=True)
    return {
        name: keys.assign(score=fields[field].astype(float).to_numpy()) if len(fields) else keys.assign(score=[])
        for name, field in ORACLE_SCORERS.items()
    }


QUALITY_FIELDS = ("reward", "fidelity", "aesthetic", "fg_correct", "bg_correct", "shape_correct", "all_correct")


def oracle_quality(
    images: list[np.ndarray], prompts: list[str], world: World, fields: tuple[str, ...] = QUALITY_FIELDS
) -> dict[str, float]:
    """Mean of each oracle field over images (and the noisy share): the 'how good is this model' summary of the toy
    world; `fields` any OracleScore.as_dict keys (bench/oracle_terms.py asks for the aesthetic's terms too)."""
    records = [world.score(image, prompt).as_dict() for image, prompt in zip(images, prompts)]
    noisy = float(np.mean([r["noisy"] for r in records]))
    return {
        "images": len(records),
        **{f: float(np.mean([r[f] for r in records])) for f in fields},
        "noisy": noisy,
    }


class OracleProgress:
    """Evaluate a model during training with the oracle: the reward-vs-step curve of the toy world.

    A fixed, evenly spread subset of the seen prompts with `seeds` noise seeds of its own (seed, seed + 1, ...),
    sampled like the evaluation stage; the model's modules are switched to eval mode for the measurement and
    restored afterwards. A world of few prompts needs several seeds for a curve that is not mostly noise.
    """

    def __init__(
        self, model, world: World, prompts: int, seed: int, steps: int, guidance: float, seeds: int = 1
    ) -> None:
        from ..sample import SamplerSettings

        table = world.prompt_set("toy_seen")
        picks = np.unique(np.linspace(0, len(table) - 1, min(prompts, len(table))).round().astype(int))
        self.prompts = list(zip(table.prompt_id.iloc[picks], table.prompt.iloc[picks]))
        self.model, self.world, self.seeds = model, world, [seed + k for k in range(seeds)]
        self.settings = SamplerSettings(steps=steps, guidance=guidance)
        self.rows: list[dict[str, float]] = []

    def __call__(self, step: int, *_: object) -> dict[str, float]:
        from ..sample import generate

        modules = [self.model.unet, self.model.text_encoder]
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        items = list(generate(self.model, self.prompts, self.seeds, self.settings))
        for m, mode in zip(modules, modes):
            m.train(mode)
        row = {"step": step, **oracle_quality([i[3] for i in items], [i[2] for i in items], self.world)}
        self.rows.append(row)
        return row

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)
