"""Evaluation prompt sets, written as `prompts/{promptset}.csv` (prompt_id, prompt)."""

from __future__ import annotations

import pandas as pd

from ..toyworld.world import PROMPT_SETS as TOY_PROMPT_SETS
from ..toyworld.world import World


def known_promptsets() -> list[str]:
    return list(TOY_PROMPT_SETS)


def build_promptset(name: str, world: World) -> pd.DataFrame:
    if name in TOY_PROMPT_SETS:
        return world.prompt_set(name)
    raise ValueError(f"unknown prompt set {name!r}; known: {known_promptsets()}")
