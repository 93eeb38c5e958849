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
    "note",
]


def paper_comparison(
    paper: pd.DataFrame,
    wins: pd.DataFrame,
    run: str,
    metrics: dict[str, str],
    models: dict[str, str] | None = None,
    missing: dict[str, str] | None = None,
) -> pd.DataFrame:
    """The paper's win rates next to this run's, cell by cell: (model vs baseline, prompt set, metric).

    `metrics` maps the paper's metric names to this suite's scorers (the paper does not say which HPS version or
    which CLIP it used, so that choice is a config value). `models` maps the paper's models (inpo, dpo, ...) to the
    run's models standing for them (released checkpoints: inpo -> inpo_release); `missing` says why a paper model
    cannot be in the run (no SFT checkpoint was released). A cell the run does not cover keeps an empty value and
    says why in `note`.
    """
    models, missing = models or {}, missing or {}
    rows = []
    for r in paper[paper.run == run].itertuples():
        scorer = metrics.get(r.paper_metric)
        model, baseline = models.get(r.model, r.model), models.get(r.baseline, r.baseline)
        match = (
            wins[
                (wins.model == model)
                & (wins.baseline == baseline)
                & (wins.promptset == r.promptset)
                & (wins.scorer == scorer)
            ]
            if scorer
            else wins.iloc[0:0]
        )
        reasons = [f"{m}: {missing[m]}" for m in (r.model, r.baseline) if m in missing]
        if not len(match) and not reasons:
            reasons = [
                f"no win rate {model}:{baseline} on {r.promptset} with {scorer or 'a scorer for ' + r.paper_metric}"
            ]
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
                "note": "" if len(match) else "; ".join(reasons),
            }
        )
    return pd.DataFrame(rows, columns=PAPER_COLUMNS).astype({"n": "Int64"})


INDEPENDENT_COLUMNS = ["source", "model", "promptset", "scorer", "published", "mean", "ci_low", "ci_high", "n", "note"]


def independent_comparison(
    reference: pd.DataFrame, means: pd.DataFrame, run: str, models: dict[str, str] | None = None
) -> pd.DataFrame:
    """Mean scores others published for released checkpoints (results/paper/independent_means.csv) beside this
    run's, in the published unit (`scale` x ours). `models` maps their model names to this run's (as for the
    paper comparison); a row the run does not cover stays empty and says why."""
    models = models or {}
    rows = []
    for r in reference[reference.run == run].itertuples():
        model = models.get(r.model, r.model)
        match = means[(means.model == model) & (means.promptset == r.promptset) & (means.scorer == r.scorer)]
        ours = match.iloc[0] if len(match) else None
        rows.append(
            {
                "source": r.source,
                "model": model,
                "promptset": r.promptset,
                "scorer": r.scorer,
                "published": r.published,
                "mean": r.scale * ours["mean"] if ours is not None else np.nan,
                "ci_low": r.scale * ours.ci_low if ours is not None else np.nan,
                "ci_high": r.scale * ours.ci_high if ours is not None else np.nan,
                "n": int(ours.n) if ours is not None else pd.NA,
                "note": "" if ours is not None else f"no mean score of {model} on {r.promptset} with {r.scorer}",
            }
        )
    return pd.DataFrame(rows, columns=INDEPENDENT_COLUMNS).astype({"n": "Int64"})
