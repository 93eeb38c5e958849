"""Ablation tables: one row per cell, its swept parameters, mean score and win rates against base and default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .scores import cluster_bootstrap_mean, markdown_table, read_scores
from .wins import win_rate


def ablation_table(
    method: str,
    cells: list[str],
    method_config: dict,
    scores: dict[tuple[str, str, str], str | Path],
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (cell, prompt set, scorer): the swept parameters, the mean score and the win rates against
    the base and against the method's default configuration (the first row of each block, cell 'default')."""
    from ..ablations import cell_config, key_path, parse_cell

    parameters = list(dict.fromkeys(k for cell in cells for k in parse_cell(cell)))

    def value(config: dict, column: str) -> object:
        for name in key_path(column):
            config = config[name]
        # an unset key (train_seed: null, the run's seed) reads "default", so the column keeps its integers
        return "default" if config is None else config

    models = {"default": method, **{cell: f"{method}/{cell}" for cell in cells}}
    rows = []
    for promptset, scorer in sorted({(p, s) for m, p, s in scores if m == method}):
        base = read_scores(scores["base", promptset, scorer]) if ("base", promptset, scorer) in scores else None
        default = read_scores(scores[method, promptset, scorer])
        for label, model in models.items():
            if (model, promptset, scorer) not in scores:
                continue
            own = read_scores(scores[model, promptset, scorer])
            values = own["score"].to_numpy(dtype=np.float64)
            low, high = cluster_bootstrap_mean(values, own["prompt_id"].to_numpy(), n_boot, seed)
            config = method_config if label == "default" else cell_config(method_config, label)
            row = {
                "cell": label,
                **{p: value(config, p) for p in parameters},
                "promptset": promptset,
                "scorer": scorer,
                "mean": float(values.mean()),
                "ci_low": low,
                "ci_high": high,
            }
            for name, other in (("base", base), ("default", default)):
                if other is None or (name == "default" and label == "default"):
                    row.update(
                        {f"win_vs_{name}": np.nan, f"win_vs_{name}_ci_low": np.nan, f"win_vs_{name}_ci_high": np.nan}
                    )
                    continue
                result = win_rate(own, other, n_boot, seed, what=f"{model} vs {name} on {promptset}/{scorer}")
                row.update(
                    {
                        f"win_vs_{name}": result["win_rate"],
                        f"win_vs_{name}_ci_low": result["ci_low"],
                        f"win_vs_{name}_ci_high": result["ci_high"],
                    }
                )
            rows.append(row)
    return pd.DataFrame(rows)


def ablation_parameters(table: pd.DataFrame) -> list[str]:
    """The swept-parameter columns of an ablation table, in order."""
    fixed = {"cell", "promptset", "scorer", "mean", "ci_low", "ci_high"}
    return [c for c in table.columns if c not in fixed and not c.startswith("win_vs_")]


def ablation_markdown(method: str, table: pd.DataFrame, scorer: str) -> str:
    parameters = ablation_parameters(table)
    parts = [
        f"# Ablations of {method}",
        "",
        f"One row per cell of the grid ('default' is the {method} model of the main tables). Mean {scorer} with "
        "a 95% bootstrap interval over prompts; win rates (ties 1/2) against the base model and against the "
        "default configuration, on images from the same initial noise.",
        "",
    ]

    def pct(r: object, name: str) -> str:
        v = getattr(r, name)
        if np.isnan(v):
            return ""
        return f"{100 * v:.1f} [{100 * getattr(r, name + '_ci_low'):.1f}, {100 * getattr(r, name + '_ci_high'):.1f}]"

    for promptset, block in table[table.scorer == scorer].groupby("promptset", sort=False):
        rows = [
            [
                *(str(getattr(r, p)) for p in parameters),
                f"{r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]",
                pct(r, "win_vs_base"),
                pct(r, "win_vs_default"),
            ]
            for r in block.itertuples()
        ]
        header = [*parameters, f"mean {scorer}", "win % vs base", f"win % vs default {method}"]
        parts += [f"## {promptset}", "", markdown_table(header, rows), ""]
    return "\n".join(parts)
