"""Ablation grids: TSV tables whose rows are variants of a method's config, one output path per row.

A method may have several tables (e.g. a hyperparameter grid and training-seed repeats); their cells form one
ablation table of that method. A cell sets only what it sweeps: an empty field, like a key the table does not
name, keeps the run's config value, so one table serves configs with other defaults (SD1.5's beta 2000, SDXL's
5000) without silently changing them. A field equal to the config's value is refused: that cell would retrain the
default model (the ablation table's `default` row) under another name.

A row's set fields are encoded in its model id, e.g. `inpo/beta~500` or `inpo/t_max~500/inv_grid~exact`, so that
rerunning one cell reruns only that cell and the tables. Columns name keys of the method's config section; a
column `inv_<key>` names `inversion.<key>` (ids need identifier-like names). Values keep their TSV spelling in
paths and are typed (int, float, else string) when merged into the config.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd

from .config import validate_config
from .errors import ConfigError

NESTED_PREFIX = {"inv_": "inversion"}


def key_path(column: str) -> tuple[str, ...]:
    for prefix, section in NESTED_PREFIX.items():
        if column.startswith(prefix):
            return (section, column[len(prefix) :])
    return (column,)


def typed(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            continue
    return value


def parse_cell(cell: str) -> dict[str, str]:
    """'beta~500/inv_grid~exact' -> {'beta': '500', 'inv_grid': 'exact'}."""
    pairs = [part.split("~", 1) for part in cell.split("/")]
    if any(len(p) != 2 or not p[0] for p in pairs):
        raise ConfigError(f"ablation cell {cell!r} is not of the form name~value/name~value")
    return dict(pairs)


def cell_config(method_config: dict[str, Any], cell: str) -> dict[str, Any]:
    """The method's config with the cell's values merged in."""
    merged = copy.deepcopy(method_config)
    for column, value in parse_cell(cell).items():
        *parents, leaf = key_path(column)
        target = merged
        for name in parents:
            target = target.setdefault(name, {})
        target[leaf] = typed(value)
    return merged


def _lookup(method_config: dict[str, Any], column: str) -> Any:
    value: Any = method_config
    for name in key_path(column):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def read_table(path: str | Path, config: dict[str, Any], method: str) -> list[str]:
    """The cell ids of an ablation TSV, after checking every row as a full config (before any job runs)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"ablation table {path} (config key ablations.{method}) does not exist")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if table.empty:
        raise ConfigError(f"ablation table {path} has no rows")
    for column in table.columns:
        if not column.isidentifier():
            raise ConfigError(f"{path}: column {column!r} must be an identifier (use inv_<key> for inversion.<key>)")
    cells = []
    for line, row in enumerate(table.to_dict("records"), start=2):
        fields = {column: value.strip() for column, value in row.items() if value.strip()}
        if not fields:
            raise ConfigError(f"{path} line {line}: every field is empty; a cell sets at least one key")
        for column, value in fields.items():
            default = _lookup(config[method], column)
            if typed(value) == default:
                raise ConfigError(
                    f"{path} line {line}: {column} {value} is this run's own {method}.{'.'.join(key_path(column))}; "
                    "leave the field empty (the default model is the ablation table's 'default' row)"
                )
        cell = "/".join(f"{column}~{value}" for column, value in fields.items())
        if cell in cells:
            raise ConfigError(f"{path} line {line}: duplicated rows ({cell})")
        candidate = {**config, method: cell_config(config[method], cell)}
        try:
            validate_config(candidate)
        except ConfigError as error:
            raise ConfigError(f"{path} line {line} ({cell}):\n{error}") from None
        cells.append(cell)
    return cells


def read_tables(paths: str | list[str], config: dict[str, Any], method: str, root: str | Path = ".") -> list[str]:
    """The cell ids of a method's ablation tables (one path or a list, relative to `root`), in order."""
    cells: list[str] = []
    for path in [paths] if isinstance(paths, str) else paths:
        for cell in read_table(Path(root) / path, config, method):
            if cell in cells:
                raise ConfigError(
                    f"ablation cell {method}/{cell} of {path} is also in another table of ablations.{method}"
                )
            cells.append(cell)
    return cells
