"""The toy world's prompt grammar: "a {colour} {shape} on a {colour} background".

A composition is one (foreground colour, shape, background colour) triple. Some compositions are held out
("unseen"): they never appear in pretraining or preference data, only in evaluation, so the tables can tell
whether alignment generalises to new combinations of known attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# sRGB colours, far enough apart that the nearest-palette classification of a clean render is unambiguous: every
# two are at least 0.32 apart in RGB on [0, 1] (yellow-orange; the oracle's colour score falls to 1/e at 0.2). The
# last four widen the default world's grammar and are each at least 0.40 from all others; the oracle's
# colour scores measure distances to the prompt's colour, so adding them changes no reward of an older world,
# only which name a wrong colour is nearest to (the *_correct shares).
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 50, 190),
    "orange": (240, 130, 20),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "cyan": (40, 200, 210),
    "pink": (245, 150, 200),
    "brown": (120, 70, 30),
    "grey": (128, 128, 128),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

_PROMPT_RE = re.compile(r"^a (?P<fg>[a-z]+) (?P<shape>[a-z]+) on a (?P<bg>[a-z]+) background$")


@dataclass(frozen=True, order=True)
class Composition:
    fg: str
    shape: str
    bg: str

    @property
    def prompt(self) -> str:
        return f"a {self.fg} {self.shape} on a {self.bg} background"

    @property
    def id(self) -> str:
        return f"{self.fg}-{self.shape}-{self.bg}"


def parse_prompt(prompt: str) -> Composition:
    """Inverse of Composition.prompt; raises ValueError for text outside the grammar."""
    match = _PROMPT_RE.match(prompt.strip().lower())
    if match is None or match["fg"] not in PALETTE or match["bg"] not in PALETTE or match["shape"] not in SHAPES:
        raise ValueError(f"prompt {prompt!r} is not in the toy grammar 'a <colour> <shape> on a <colour> background'")
    return Composition(match["fg"], match["shape"], match["bg"])


def all_compositions(fg_colours: list[str], shapes: list[str], bg_colours: list[str]) -> list[Composition]:
    """Every triple whose background differs from its foreground, in a fixed order."""
    for name in [*fg_colours, *bg_colours]:
        if name not in PALETTE:
            raise ValueError(f"unknown colour {name!r}; the palette has {sorted(PALETTE)}")
    for name in shapes:
        if name not in SHAPES:
            raise ValueError(f"unknown shape {name!r}; known shapes are {list(SHAPES)}")
    return [Composition(f, s, b) for f in fg_colours for s in shapes for b in bg_colours if b != f]


def split_compositions(
    compositions: list[Composition], n_unseen: int, seed: int
) -> tuple[list[Composition], list[Composition]]:
    """Hold out n_unseen compositions such that every attribute value still occurs in the seen ones.

    Greedy over a seeded permutation: a composition is held out only if removing it leaves each of its
    foreground colour, shape and background colour in at least two seen compositions.
    """
    if not 0 <= n_unseen < len(compositions):
        raise ValueError(f"unseen_compositions must be in [0, {len(compositions) - 1}], got {n_unseen}")
    order = np.random.default_rng(seed).permutation(len(compositions))
    seen = set(compositions)
    unseen: list[Composition] = []

    def count(attr: str, value: str) -> int:
        return sum(getattr(c, attr) == value for c in seen)

    for i in order:
        if len(unseen) == n_unseen:
            break
        c = compositions[i]
        if all(count(a, getattr(c, a)) > 2 for a in ("fg", "shape", "bg")):
            seen.remove(c)
            unseen.append(c)
    if len(unseen) < n_unseen:
        raise ValueError(f"cannot hold out {n_unseen} compositions and keep every attribute seen")
    return sorted(seen), sorted(unseen)


def vocabulary(compositions: list[Composition]) -> list[str]:
    """Every word the grammar can produce, for building the tokenizer."""
    words = {"a", "on", "background"}
    for c in compositions:
        words.update((c.fg, c.shape, c.bg))
    return sorted(words)
