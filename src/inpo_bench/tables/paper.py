"""The paper's win rates beside this run's, cell by cell."""

from __future__ import annotations

import numpy as np
import pandas as pd

PAPER_COLUMNS = [
    "paper_model",
    "paper_baseline",
    "promptset",
    "paper_metric",
    "scorer",
    "paper_win_rate",
    "win_rate",
    "ci_low",
    "ci_high",
    "n",
    "difference",
]


def paper_comparison(paper: pd.DataFrame, wins: pd.DataFrame, run: str, metrics: dict[str, str]) -> pd.DataFrame:
    """The paper's win rates next to this run's, cell by cell: (model vs baseline, prompt set, metric).

    `metrics` maps the paper's metric names to this suite's scorers (the paper does not say which HPS version or
    which CLIP it used, so that choice is a config value). A cell the run does not cover keeps an empty value.
    """
    rows = []
    for r in paper[paper.run == run].itertuples():
        scorer = metrics.get(r.paper_metric)
        match = (
            wins[
                (wins.model == r.model)
                & (wins.baseline == r.baseline)
                & (wins.promptset == r.promptset)
                & (wins.scorer == scorer)
            ]
            if scorer
            else wins.iloc[0:0]
        )
        ours = match.iloc[0] if len(match) else None
        rate = 100 * ours.win_rate if ours is not None else np.nan
        rows.append(
            {
                "paper_model": r.paper_model,
                "paper_baseline": r.paper_baseline,
                "promptset": r.promptset,
                "paper_metric": r.paper_metric,
                "scorer": scorer or "",
                "paper_win_rate": r.win_rate,
                "win_rate": rate,
                "ci_low": 100 * ours.ci_low if ours is not None else np.nan,
                "ci_high": 100 * ours.ci_high if ours is not None else np.nan,
                "n": int(ours.n) if ours is not None else pd.NA,
                "difference": rate - r.win_rate,
            }
        )
    return pd.DataFrame(rows, columns=PAPER_COLUMNS).astype({"n": "Int64"})
