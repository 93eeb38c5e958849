"""Toy preference data in the Pick-a-Pic v2 format: two base-model samples per row, labelled by the oracle.

Pick-a-Pic pairs are two images generated for one prompt and judged by a person. Here the images come from the
toy base model and the judge is a simulated annotator: a Bradley-Terry draw on the oracle's true rewards, so
labels are noisy like human ones, with ties more likely when the two images are equally good. Like AlpacaFarm's
simulated annotators (13 personas, 25% label flips), the annotator can be a mix of personas that weight the oracle's
terms differently (each pair judged by one persona, drawn by its share) and flip a share of its decided labels.
The rows carry the Pick-a-Pic v2 columns (ties as label 0.5) plus each image's true reward, and go through the same
preparation step as the real dataset.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from .oracle import OracleScore

PICKAPIC_SCHEMA = pa.schema(
    [
        ("are_different", pa.bool_()),
        ("best_image_uid", pa.string()),
        ("caption", pa.string()),
        ("created_at", pa.timestamp("ns")),
        ("has_label", pa.bool_()),
        ("image_0_uid", pa.string()),
        ("image_0_url", pa.string()),
        ("image_1_uid", pa.string()),
        ("image_1_url", pa.string()),
        ("jpg_0", pa.binary()),
        ("jpg_1", pa.binary()),
        ("label_0", pa.float64()),
        ("label_1", pa.float64()),
        ("model_0", pa.string()),
        ("model_1", pa.string()),
        ("ranking_id", pa.int64()),
        ("user_id", pa.int64()),
        ("num_example_per_prompt", pa.int64()),
    ]
)
# columns the toy world adds: what the hidden oracle says of each image
TOY_SCHEMA = PICKAPIC_SCHEMA.append(pa.field("true_reward_0", pa.float64())).append(
    pa.field("true_reward_1", pa.float64())
)


TERMS = ("fg_colour", "bg_colour", "shape", "clean", "sharp", "centred")


@dataclass(frozen=True)
class Persona:
    """An annotator who judges by `terms` (weights of the oracle's terms, normalised to sum 1) and gives `share`
    of the labels."""

    share: float
    terms: dict[str, float]

    def reward(self, score: OracleScore) -> float:
        total = sum(self.terms.values())
        return sum(weight * getattr(score, term) for term, weight in self.terms.items()) / total


def personas(cfg: dict[str, Any]) -> list[Persona]:
    return [Persona(p["share"], dict(p["terms"])) for p in cfg.get("personas") or []]


def annotate(s0: OracleScore, s1: OracleScore, rng: np.random.Generator, cfg: dict[str, Any]) -> float:
    """label_0 of one pair: a persona drawn by its share (none configured: the oracle's reward judges) makes a
    Bradley-Terry draw, and a decided label is flipped with probability cfg['flip_rate']. With neither personas
    nor flips the random draws, and so the labels, are those of bradley_terry_label alone."""
    judges = personas(cfg)
    r0, r1 = s0.reward, s1.reward
    if judges:
        shares = np.asarray([p.share for p in judges], dtype=np.float64)
        judge = judges[int(rng.choice(len(judges), p=shares / shares.sum()))]
        r0, r1 = judge.reward(s0), judge.reward(s1)
    label = bradley_terry_label(r0, r1, rng, cfg["bt_temperature"], cfg["tie_rate"], cfg["tie_scale"])
    flip = cfg.get("flip_rate", 0.0)
    if flip > 0 and label != 0.5 and rng.random() < flip:
        label = 1.0 - label
    return label


def bradley_terry_label(
    r0: float, r1: float, rng: np.random.Generator, temperature: float, tie_rate: float, tie_scale: float
) -> float:
    """label_0 of one pair: 0.5 (tie) with probability tie_rate * exp(-|r0 - r1| / tie_scale), else
    1.0 with probability sigmoid((r0 - r1) / temperature) and 0.0 otherwise."""
    gap = r0 - r1
    if rng.random() < tie_rate * np.exp(-abs(gap) / tie_scale):
        return 0.5
    return 1.0 if rng.random() < 1.0 / (1.0 + np.exp(-gap / temperature)) else 0.0


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _uid(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:16]


def pickapic_rows(
    pairs: list[tuple[str, np.ndarray, np.ndarray, OracleScore, OracleScore]],
    cfg: dict[str, Any],
    seed: int,
    model_name: str,
) -> pd.DataFrame:
    """Label (caption, image_0, image_1, oracle score 0, oracle score 1) tuples (annotate) and lay them out as
    Pick-a-Pic rows carrying each image's true reward."""
    rng = np.random.default_rng(seed)
    created = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    per_caption = pd.Series([p[0] for p in pairs]).value_counts()
    rows = []
    for ranking_id, (caption, im0, im1, s0, s1) in enumerate(pairs):
        label_0 = annotate(s0, s1, rng, cfg)
        r0, r1 = s0.reward, s1.reward
        b0, b1 = png_bytes(im0), png_bytes(im1)
        uid0, uid1 = _uid(b0), _uid(b1)
        rows.append(
            {
                "are_different": not np.array_equal(im0, im1),
                "best_image_uid": {1.0: uid0, 0.0: uid1}.get(label_0, ""),
                "caption": caption,
                "created_at": created,
                "has_label": True,
                "image_0_uid": uid0,
                "image_0_url": "",
                "image_1_uid": uid1,
                "image_1_url": "",
                "jpg_0": b0,
                "jpg_1": b1,
                "label_0": label_0,
                "label_1": 1.0 - label_0,
                "model_0": model_name,
                "model_1": model_name,
                "ranking_id": ranking_id,
                "user_id": 0,
                "num_example_per_prompt": int(per_caption[caption]),
                "true_reward_0": r0,
                "true_reward_1": r1,
            }
        )
    return pd.DataFrame(rows, columns=TOY_SCHEMA.names)
