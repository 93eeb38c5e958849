"""Mean scores with bootstrap intervals over prompts, and the Markdown rendering every table shares.

Uncertainty comes from the prompts: a bootstrap replicate resamples prompts with replacement and keeps all seeds
of a drawn prompt together, because images of one prompt are not independent evidence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SCORE_COLUMNS = ["prompt_id", "seed", "score"]


MEAN_COLUMNS = ["model", "promptset", "scorer", "mean", "ci_low", "ci_high", "n", "n_prompts"]


def read_scores(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype={"prompt_id": str})
    missing = set(SCORE_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; a score file has {SCORE_COLUMNS}")
    if frame.duplicated(["prompt_id", "seed"]).any():
        raise ValueError(f"{path}: more than one score for some (prompt_id, seed)")
    return frame[SCORE_COLUMNS]


def cluster_bootstrap_mean(
    values: np.ndarray, clusters: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of `values` when whole clusters (prompts) are resampled."""
    if len(values) == 0:
        return (np.nan, np.nan)
    _, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=values.astype(np.float64))
    counts = np.bincount(inverse).astype(np.float64)
    draws = np.random.default_rng(seed).integers(0, len(sums), size=(n_boot, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def mean_scores(entries: list[tuple[str, str, str, str | Path]], n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """entries: (model, promptset, scorer, score CSV) -> one row each with mean, 95% CI, n images, n prompts."""
    rows = []
    for model, promptset, scorer, path in entries:
        scores = read_scores(path)
        values = scores["score"].to_numpy(dtype=np.float64)
        low, high = cluster_bootstrap_mean(values, scores["prompt_id"].to_numpy(), n_boot, seed)
        rows.append(
            {
                "model": model,
                "promptset": promptset,
                "scorer": scorer,
                "mean": float(values.mean()) if len(values) else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n": len(values),
                "n_prompts": scores["prompt_id"].nunique(),
            }
        )
    return pd.DataFrame(rows, columns=MEAN_COLUMNS)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def mean_scores_markdown(table: pd.DataFrame) -> str:
    """One section per prompt set: models as rows, scorers as columns, 'mean [95% CI]' in each cell."""
    parts = [
        "# Mean scores",
        "",
        "Mean over all images (prompts x seeds) with a 95% bootstrap interval over prompts.",
        "",
    ]
    for promptset, block in table.groupby("promptset", sort=False):
        scorers = list(dict.fromkeys(block["scorer"]))
        models = list(dict.fromkeys(block["model"]))
        cells = {(r.model, r.scorer): f"{r.mean:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]" for r in block.itertuples()}
        n = block.groupby("model")["n"].max()
        rows = [[m, str(n[m]), *(cells.get((m, s), "") for s in scorers)] for m in models]
        parts += [f"## {promptset}", "", markdown_table(["model", "n", *scorers], rows), ""]
    return "\n".join(parts)


def frame_markdown(title: str, note: str, frame: pd.DataFrame, floats: str = "{:.3f}") -> str:
    """A generic Markdown rendering of a table, floats rounded."""

    def fmt(v: object) -> str:
        if v is pd.NA:
            return ""
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else floats.format(v)
        return str(v)

    rows = [[fmt(v) for v in row] for row in frame.itertuples(index=False)]
    return "\n".join([f"# {title}", "", note, "", markdown_table(list(frame.columns), rows), ""])
