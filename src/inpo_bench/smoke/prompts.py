"""The three real prompt sets in their upstream file formats, with their real counts and made-up prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..data.prompts import HPD_STYLES


def pickapic_file(path: Path, n: int = 500) -> Path:
    """test_unique as the dataset ships it: one parquet file, a caption per row, plus other columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"caption": [f"a photo of a cat number {i}" for i in range(n)], "label_0": 0.5, "jpg_0": [b"x"] * n}
    ).to_parquet(path)
    return path


def parti_file(path: Path, n: int = 1632) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["Prompt\tCategory\tChallenge\tNote"] + [
        f"a red car on the street {i}\tVehicles\tSimple Detail\t" for i in range(n)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def hpd_folder(path: Path, n: int = 800) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for style in HPD_STYLES:
        (path / f"{style}.json").write_text(json.dumps([f"a {style} painting of a dog {i}" for i in range(n)]))
    return path
