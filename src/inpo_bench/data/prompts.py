"""Evaluation prompt sets, written as `prompts/{promptset}.csv` (prompt_id, prompt) plus a JSON record of where
the prompts came from.

Toy sets come from the world (seen and held-out compositions). The real sets come, by config key `prompts.<set>`:
- null (the default): from the files shipped with the package (inpo_bench/promptsets/, listed with source, commit,
  licence, count and SHA-256 in its sources.json), so sampling needs no hub;
- a path: from a local file in the upstream format;
- "hub": downloaded into `prompts.cache` (Pick-a-Pic from the configured mirror, verified as data/source.py does).

| set | shipped file (prompts) | upstream format (prompts) |
|---|---|---|
| pickapic_test_unique | Diffusion-SDPO `prompts/papv2.json`: test_unique deduplicated (487) | its parquet (500) |
| parti | google-research/parti `PartiPrompts.tsv` (1632) | the same file |
| hpdv2 | Diffusion-SDPO `prompts/hpsv2.json`: the four styles in order (3200) | `benchmark/<style>.json` (4 x 800) |
| hpdv2_<style> | one 800-prompt block of that file | one of those four files (800) |

A file whose prompt count differs from the table, whose bytes differ from the shipped record, or that does not
parse, is an error naming the file.

The four HPDv2 styles are subsets of hpdv2 (their prompt ids keep the `<style>-` prefix): a run that evaluates
hpdv2 derives each style's scores from hpdv2's images instead of sampling the same prompts again
(`derived_promptsets`); a style evaluated without hpdv2 is sampled on its own.
"""

from __future__ import annotations

import csv
import json
import urllib.request
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..runtime import sha256
from ..toyworld.world import PROMPT_SETS as TOY_PROMPT_SETS
from ..toyworld.world import World

HPD_STYLES = ("anime", "concept-art", "paintings", "photo")
HPD_STYLE_SIZE = 800
# the commit the shipped file comes from (promptsets/sources.json), so a download is the same bytes
PARTI_URL = (
    "https://raw.githubusercontent.com/google-research/parti/5a657978134374ce28973948331b319adef164bd/PartiPrompts.tsv"
)
HPD_REPO = "zhwang/HPDv2"


@dataclass(frozen=True)
class RealSet:
    source: str  # key of the config's `prompts` section that locates the file
    expected: int  # prompts in the upstream-format file
    shipped: str  # the file of inpo_bench/promptsets/ it is read from by default
    subset_of: str | None = None  # a set whose prompts include these, under the same ids
    id_prefix: str = ""  # how this set's prompt ids start within subset_of


REAL_SETS: dict[str, RealSet] = {
    "pickapic_test_unique": RealSet("pickapic_test_unique", 500, "papv2.json"),
    "parti": RealSet("parti", 1632, "PartiPrompts.tsv"),
    "hpdv2": RealSet("hpdv2", 3200, "hpsv2.json"),
    **{f"hpdv2_{style}": RealSet("hpdv2", HPD_STYLE_SIZE, "hpsv2.json", "hpdv2", f"{style}-") for style in HPD_STYLES},
}


@cache
def shipped_sources() -> dict[str, Any]:
    """inpo_bench/promptsets/sources.json: where each shipped file comes from, its count and SHA-256."""
    return json.loads(resources.files("inpo_bench").joinpath("promptsets/sources.json").read_text())["files"]


def shipped_path(name: str) -> Path:
    return Path(str(resources.files("inpo_bench").joinpath("promptsets", name)))


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
    try:  # no quote handling: one prompt starts with a quoted word ('"G I G G L E" painted ...')
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    except Exception as error:
        raise DataError(f"{path}: not a readable PartiPrompts TSV ({error})") from None
    if "Prompt" not in frame.columns:
        raise DataError(f"{path}: no 'Prompt' column; PartiPrompts.tsv has Prompt, Category, Challenge, Note")
    return [(f"{i:04d}", p) for i, p in enumerate(frame["Prompt"])]


def read_hpd_style(folder: Path, style: str) -> list[str]:
    path = folder / f"{style}.json"
    if not path.is_file():
        raise DataError(f"{path}: missing; the HPDv2 benchmark folder holds {[s + '.json' for s in HPD_STYLES]}")
    prompts = _read_json(path)
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise DataError(f"{path}: expected a JSON list of prompt strings")
    if len(prompts) != HPD_STYLE_SIZE:
        raise DataError(f"{path}: {len(prompts)} prompts, the HPDv2 benchmark has {HPD_STYLE_SIZE} per style")
    return prompts


def read_prompt_records(path: Path) -> list[str]:
    """A JSON list of records with a 'prompt' field (Diffusion-SDPO's prompts/*.json)."""
    records = _read_json(path)
    valid = isinstance(records, list) and all(isinstance(r, dict) and isinstance(r.get("prompt"), str) for r in records)
    if not valid:
        raise DataError(f"{path}: expected a JSON list of records with a 'prompt' string")
    return [r["prompt"] for r in records]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def hpd_rows(name: str, prompts_of: Any) -> list[tuple[str, str]]:
    """(style-000, prompt) rows of hpdv2 or of one style; prompts_of(style) gives a style's 800 prompts."""
    styles = [name.removeprefix("hpdv2_")] if name != "hpdv2" else list(HPD_STYLES)
    return [(f"{style}-{i:03d}", p) for style in styles for i, p in enumerate(prompts_of(style))]


def read_shipped(name: str) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """A real set from the package's own file, checked against sources.json; (rows, record fields)."""
    real = REAL_SETS[name]
    info = shipped_sources()[real.shipped]
    path = shipped_path(real.shipped)
    digest = sha256(path)
    if digest != info["sha256"]:
        raise DataError(f"{path}: SHA-256 {digest} is not the shipped file's {info['sha256']}; reinstall the package")
    if real.source == "parti":
        rows = read_parti(path)
    elif real.source == "hpdv2":
        prompts = read_prompt_records(path)
        rows = hpd_rows(name, lambda style: _style_block(prompts, style))
    else:
        rows = [(f"{i:03d}", p) for i, p in enumerate(read_prompt_records(path))]
    expected = info["count"] if real.subset_of is None else real.expected
    if len(rows) != expected:
        raise DataError(f"{path}: {len(rows)} prompts, its record in sources.json says {expected}")
    origin = {k: info[k] for k in ("source", "commit", "path", "licence")}
    return rows, {"source": f"shipped: {real.shipped}", "origin": origin, "sha256": {real.shipped: digest}}


def _style_block(prompts: list[str], style: str) -> list[str]:
    start = HPD_STYLES.index(style) * HPD_STYLE_SIZE
    return prompts[start : start + HPD_STYLE_SIZE]


def fetch(source: str, cache_dir: Path, pickapic: dict[str, Any] | None = None) -> Path:
    """Download an upstream prompt file into the cache (once) and return its local path (`prompts.<set>: hub`).
    Pick-a-Pic's test_unique comes from the configured mirror (`pickapic`: data.pickapic's repo, revision and
    cache), resolved, locked and hashed as the training shards are."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if source == "parti":
        target = cache_dir / "PartiPrompts.tsv"
        if not target.is_file():
            tmp = target.with_suffix(".tmp")
            urllib.request.urlretrieve(PARTI_URL, tmp)  # a fixed https URL
            tmp.replace(target)
        return target
    if source == "pickapic_test_unique":
        from .source import hub_source

        if not pickapic:
            raise DataError("prompts.pickapic_test_unique: hub needs the run's data.pickapic repo and revision")
        found = hub_source(pickapic["repo"], pickapic["revision"], "test_unique", 0, pickapic["cache"])
        paths = list(found.paths())
        if len(paths) != 1:
            raise DataError(f"{pickapic['repo']}: expected one test_unique parquet file, found {len(paths)}")
        return paths[0]
    if source == "hpdv2":
        from huggingface_hub import hf_hub_download

        for style in HPD_STYLES:
            hf_hub_download(
                HPD_REPO, f"{style}.json", subfolder="benchmark", repo_type="dataset", local_dir=cache_dir / "HPDv2"
            )
        return cache_dir / "HPDv2" / "benchmark"
    raise ValueError(f"unknown prompt source {source!r}")


def read_upstream(name: str, path: Path) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """A real set from a file (or the HPDv2 folder) in its upstream format; (rows, record fields)."""
    real = REAL_SETS[name]
    if not path.exists():
        raise DataError(f"{path} (config key prompts.{real.source}) does not exist")
    if real.source == "pickapic_test_unique":
        rows = read_pickapic(path)
    elif real.source == "parti":
        rows = read_parti(path)
    else:
        rows = hpd_rows(name, lambda style: read_hpd_style(path, style))
    if len(rows) != real.expected:
        raise DataError(f"{path}: {len(rows)} prompts, {name} has {real.expected}; is it the right (complete) file?")
    files = [path] if path.is_file() else [path / f"{s}.json" for s in HPD_STYLES]
    return rows, {"source": str(path), "sha256": {f.name: sha256(f) for f in files if f.is_file()}}


def build_promptset(name: str, world: World | None, cfg: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The prompt set as (prompt_id, prompt) rows and a record of its origin."""
    if name in TOY_PROMPT_SETS:
        if world is None:
            raise ValueError(f"{name} is a toy prompt set and needs world.json")
        frame = world.prompt_set(name)
        return frame, {"promptset": name, "source": "toy world", "count": len(frame), "used": len(frame)}
    if name not in REAL_SETS:
        raise ValueError(f"unknown prompt set {name!r}; known: {known_promptsets()}")
    choice = cfg.get(REAL_SETS[name].source)
    if choice is None:
        rows, origin = read_shipped(name)
    elif choice == "hub":
        path = fetch(REAL_SETS[name].source, Path(cfg["cache"]), cfg.get("pickapic"))
        rows, origin = read_upstream(name, path)
    else:
        rows, origin = read_upstream(name, Path(choice).expanduser())
    record = {"promptset": name, **origin, "count": len(rows)}
    limit = cfg.get("limit", 0)
    if limit and limit < len(rows):  # an evenly spread subset, so every style and category stays represented
        picks = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
        rows = [rows[i] for i in picks]
    record["used"] = len(rows)
    return pd.DataFrame(rows, columns=["prompt_id", "prompt"]), record
