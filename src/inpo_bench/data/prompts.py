"""Evaluation prompt sets, written as `prompts/{promptset}.csv` (prompt_id, prompt) plus a JSON record of where
the prompts came from.

Toy sets come from the world (seen and held-out compositions). The real sets are read from a local file in the
upstream format, or downloaded into a cache on first use:

| set | upstream file | prompts |
|---|---|---|
| pickapic_test_unique | Pick-a-Pic v2 `data/test_unique-*.parquet` (column `caption`) | 500 |
| parti | PartiPrompts `PartiPrompts.tsv` (columns Prompt, Category, Challenge, Note) | 1632 |
| hpdv2 | HPDv2 benchmark `{anime,concept-art,paintings,photo}.json` (JSON lists) | 3200 |
| hpdv2_<style> | one of those four files | 800 |

A file whose prompt count differs from the table, or that does not parse, is an error naming the file.

The four HPDv2 styles are subsets of hpdv2 (their prompt ids keep the `<style>-` prefix): a run that evaluates
hpdv2 derives each style's scores from hpdv2's images instead of sampling the same prompts again
(`derived_promptsets`); a style evaluated without hpdv2 is sampled on its own.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..runtime import sha256
from ..toyworld.world import PROMPT_SETS as TOY_PROMPT_SETS
from ..toyworld.world import World

HPD_STYLES = ("anime", "concept-art", "paintings", "photo")
PARTI_URL = "https://raw.githubusercontent.com/google-research/parti/main/PartiPrompts.tsv"
PICKAPIC_REPO = "yuvalkirstain/pickapic_v2"
HPD_REPO = "zhwang/HPDv2"


@dataclass(frozen=True)
class RealSet:
    source: str  # key of the config's `prompts` section that locates the upstream file
    expected: int
    subset_of: str | None = None  # a set whose prompts include these, under the same ids
    id_prefix: str = ""  # how this set's prompt ids start within subset_of


REAL_SETS: dict[str, RealSet] = {
    "pickapic_test_unique": RealSet("pickapic_test_unique", 500),
    "parti": RealSet("parti", 1632),
    "hpdv2": RealSet("hpdv2", 3200),
    **{f"hpdv2_{style}": RealSet("hpdv2", 800, "hpdv2", f"{style}-") for style in HPD_STYLES},
}


def known_promptsets() -> list[str]:
    return [*TOY_PROMPT_SETS, *REAL_SETS]


def derived_promptsets(promptsets: list[str]) -> dict[str, str]:
    """Prompt sets of a run that are subsets of another set of the same run: name -> the set to derive from."""
    return {
        name: REAL_SETS[name].subset_of
        for name in promptsets
        if name in REAL_SETS and REAL_SETS[name].subset_of in promptsets
    }


def subset_rows(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows (by prompt_id) of a superset's table that belong to the subset `name`."""
    return frame[frame.prompt_id.astype(str).str.startswith(REAL_SETS[name].id_prefix)].reset_index(drop=True)


def read_pickapic(path: Path) -> list[tuple[str, str]]:
    try:
        captions = pd.read_parquet(path, columns=["caption"])["caption"].tolist()
    except Exception as error:
        raise DataError(f"{path}: not a Pick-a-Pic parquet file with a 'caption' column ({error})") from None
    return [(f"{i:03d}", str(c)) for i, c in enumerate(captions)]


def read_parti(path: Path) -> list[tuple[str, str]]:
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except Exception as error:
        raise DataError(f"{path}: not a readable PartiPrompts TSV ({error})") from None
    if "Prompt" not in frame.columns:
        raise DataError(f"{path}: no 'Prompt' column; PartiPrompts.tsv has Prompt, Category, Challenge, Note")
    return [(f"{i:04d}", p) for i, p in enumerate(frame["Prompt"])]


def read_hpd_style(folder: Path, style: str) -> list[str]:
    path = folder / f"{style}.json"
    if not path.is_file():
        raise DataError(f"{path}: missing; the HPDv2 benchmark folder holds {[s + '.json' for s in HPD_STYLES]}")
    try:
        prompts = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise DataError(f"{path}: expected a JSON list of prompt strings")
    if len(prompts) != 800:
        raise DataError(f"{path}: {len(prompts)} prompts, the HPDv2 benchmark has 800 per style")
    return prompts


def fetch(source: str, cache: Path) -> Path:
    """Download an upstream prompt file into the cache (once) and return its local path."""
    cache.mkdir(parents=True, exist_ok=True)
    if source == "parti":
        target = cache / "PartiPrompts.tsv"
        if not target.is_file():
            tmp = target.with_suffix(".tmp")
            urllib.request.urlretrieve(PARTI_URL, tmp)  # a fixed https URL
            tmp.replace(target)
        return target
    from huggingface_hub import hf_hub_download, snapshot_download

    if source == "pickapic_test_unique":
        folder = Path(
            snapshot_download(
                PICKAPIC_REPO,
                repo_type="dataset",
                allow_patterns=["data/test_unique-*"],
                local_dir=cache / "pickapic_v2",
            )
        )
        files = sorted((folder / "data").glob("test_unique-*.parquet"))
        if len(files) != 1:
            raise DataError(f"{folder}/data: expected one test_unique parquet file, found {len(files)}")
        return files[0]
    if source == "hpdv2":
        for style in HPD_STYLES:
            hf_hub_download(
                HPD_REPO, f"{style}.json", subfolder="benchmark", repo_type="dataset", local_dir=cache / "HPDv2"
            )
        return cache / "HPDv2" / "benchmark"
    raise ValueError(f"unknown prompt source {source!r}")


def build_promptset(name: str, world: World | None, cfg: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The prompt set as (prompt_id, prompt) rows and a record of its origin."""
    if name in TOY_PROMPT_SETS:
        if world is None:
            raise ValueError(f"{name} is a toy prompt set and needs world.json")
        frame = world.prompt_set(name)
        return frame, {"promptset": name, "source": "toy world", "count": len(frame), "used": len(frame)}
    if name not in REAL_SETS:
        raise ValueError(f"unknown prompt set {name!r}; known: {known_promptsets()}")
    real = REAL_SETS[name]
    local = cfg.get(real.source)
    path = Path(local).expanduser() if local else fetch(real.source, Path(cfg["cache"]))
    if not path.exists():
        raise DataError(f"{path} (config key prompts.{real.source}) does not exist")
    if real.source == "pickapic_test_unique":
        rows = read_pickapic(path)
    elif real.source == "parti":
        rows = read_parti(path)
    else:
        styles = [name.removeprefix("hpdv2_")] if name != "hpdv2" else list(HPD_STYLES)
        rows = [(f"{style}-{i:03d}", p) for style in styles for i, p in enumerate(read_hpd_style(path, style))]
    if len(rows) != real.expected:
        raise DataError(f"{path}: {len(rows)} prompts, {name} has {real.expected}; is it the right (complete) file?")
    files = [path] if path.is_file() else [path / f"{s}.json" for s in HPD_STYLES]
    record = {
        "promptset": name,
        "source": str(path),
        "sha256": {f.name: sha256(f) for f in files if f.is_file()},
        "count": len(rows),
    }
    limit = cfg.get("limit", 0)
    if limit and limit < len(rows):  # an evenly spread subset, so every style and category stays represented
        picks = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
        rows = [rows[i] for i in picks]
    record["used"] = len(rows)
    return pd.DataFrame(rows, columns=["prompt_id", "prompt"]), record
