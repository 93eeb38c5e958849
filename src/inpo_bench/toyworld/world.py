"""The toy world as one object: grammar choices, the seen/unseen split, the oracle weight; saved as world.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .grammar import Composition, all_compositions, parse_prompt, split_compositions, vocabulary
from .oracle import OracleScore, score_image
from .render import render, sample_nuisance

PROMPT_SETS = ("toy_seen", "toy_unseen")


@dataclass(frozen=True)
class World:
    resolution: int
    seen: tuple[Composition, ...]
    unseen: tuple[Composition, ...]
    fidelity_weight: float
    foreground_colours: tuple[str, ...]
    background_colours: tuple[str, ...]
    shapes: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: dict[str, Any], seed: int) -> World:
        comps = all_compositions(cfg["foreground_colours"], cfg["shapes"], cfg["background_colours"])
        seen, unseen = split_compositions(comps, cfg["unseen_compositions"], seed)
        return cls(
            resolution=cfg["resolution"],
            seen=tuple(seen),
            unseen=tuple(unseen),
            fidelity_weight=cfg["oracle"]["fidelity_weight"],
            foreground_colours=tuple(cfg["foreground_colours"]),
            background_colours=tuple(cfg["background_colours"]),
            shapes=tuple(cfg["shapes"]),
        )

    @property
    def compositions(self) -> tuple[Composition, ...]:
        return self.seen + self.unseen

    @property
    def words(self) -> list[str]:
        return vocabulary(list(self.compositions))

    def score(self, image: np.ndarray, prompt: str) -> OracleScore:
        return score_image(image, parse_prompt(prompt), self.fidelity_weight)

    def prompt_set(self, name: str) -> pd.DataFrame:
        """prompt_id, prompt for `toy_seen` (compositions in the training data) or `toy_unseen` (held out)."""
        if name not in PROMPT_SETS:
            raise ValueError(f"unknown toy prompt set {name!r}; known: {list(PROMPT_SETS)}")
        comps = self.seen if name == "toy_seen" else self.unseen
        return pd.DataFrame({"prompt_id": [c.id for c in comps], "prompt": [c.prompt for c in comps]})

    def to_json(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "fidelity_weight": self.fidelity_weight,
            "foreground_colours": list(self.foreground_colours),
            "background_colours": list(self.background_colours),
            "shapes": list(self.shapes),
            "seen": [c.prompt for c in self.seen],
            "unseen": [c.prompt for c in self.unseen],
        }

    @classmethod
    def load(cls, path: str | Path) -> World:
        data = json.loads(Path(path).read_text())
        return cls(
            resolution=data["resolution"],
            seen=tuple(parse_prompt(p) for p in data["seen"]),
            unseen=tuple(parse_prompt(p) for p in data["unseen"]),
            fidelity_weight=data["fidelity_weight"],
            foreground_colours=tuple(data["foreground_colours"]),
            background_colours=tuple(data["background_colours"]),
            shapes=tuple(data["shapes"]),
        )

    def pretraining_set(
        self,
        n: int,
        nuisance_rates: dict[str, float],
        wrong_caption_rate: float,
        seed: int,
        flaws: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, list[str]]:
        """n renders of seen compositions with nuisances, captioned with one attribute wrong at the given rate.

        The wrong captions are what keep the base model's prompt following imperfect: an aligned model can
        only beat it by learning from preferences what the captions did not teach. `flaws` (config
        pretrain.learned_flaws) adds systematic, whole-image errors the base learns from its data, as Stable
        Diffusion learned its flaws from LAION: `colour_swap`, the share of images showing the caption's two colours
        the other way round; `default_shape`, the share showing the world's first shape whatever shape the caption
        names. With no flaws the random stream, and so the set, is that of the worlds before flaws existed.
        """
        flaws = {k: v for k, v in (flaws or {}).items() if v > 0}
        rng = np.random.default_rng(seed)
        images = np.empty((n, self.resolution, self.resolution, 3), dtype=np.uint8)
        captions = []
        for i in range(n):
            comp = self.seen[int(rng.integers(len(self.seen)))]
            nuisance = sample_nuisance(rng, self.resolution, nuisance_rates)
            render_seed = int(rng.integers(2**31))
            shown = self._flawed(comp, flaws, rng) if flaws else comp
            images[i] = render(shown, self.resolution, nuisance, seed=render_seed)
            captions.append(self._corrupt(comp, rng).prompt if rng.random() < wrong_caption_rate else comp.prompt)
        return images, captions

    def _flawed(self, comp: Composition, flaws: dict[str, float], rng: np.random.Generator) -> Composition:
        """The composition an image captioned `comp` shows under the learned flaws. A flaw that would show a held-out
        composition is not applied: no image of an unseen composition enters pretraining."""
        shown = comp
        draws = {name: rng.random() for name in ("colour_swap", "default_shape")}  # fixed draws per image
        if draws["colour_swap"] < flaws.get("colour_swap", 0.0):
            shown = Composition(fg=shown.bg, shape=shown.shape, bg=shown.fg)
        if draws["default_shape"] < flaws.get("default_shape", 0.0):
            shown = Composition(fg=shown.fg, shape=self.shapes[0], bg=shown.bg)
        return shown if shown in self.seen else comp

    def _corrupt(self, comp: Composition, rng: np.random.Generator) -> Composition:
        """The same composition with one attribute replaced by another value of the world."""
        while True:
            attr = ("fg", "shape", "bg")[int(rng.integers(3))]
            options = {"fg": self.foreground_colours, "shape": self.shapes, "bg": self.background_colours}[attr]
            value = options[int(rng.integers(len(options)))]
            new = Composition(**{**comp.__dict__, attr: value})
            if new != comp and new.fg != new.bg:
                return new
