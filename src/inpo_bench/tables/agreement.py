"""How well a learned scorer agrees with the true reward: the toy world's test of its own stand-in for PickScore.

For every comparison (model vs baseline, the same (prompt, seed) images as the win rates) the learned scorer and
the oracle each pick the better image of a pair; `agreement` is the share of pairs on which they pick the same one
(pairs that either scorer ties are left out), with a 95% bootstrap interval over prompts. Beside it: both win
rates, so a learned scorer that would flip a verdict shows it, and per prompt set the rank correlation of the two
scores over every image of every model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .scores import cluster_bootstrap_mean, read_scores
from .wins import paired_outcomes

AGREEMENT_COLUMNS = [
    "scorer",
    "reference",
    "promptset",
    "comparison",
    "agreement",
    "ci_low",
    "ci_high",
    "n",
    "win_rate",
    "reference_win_rate",
]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties), as the Pearson correlation of the ranks."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def scorer_agreement(
    scores: dict[tuple[str, str, str], str | Path],
    comparisons: list[tuple[str, str]],
    learned: str,
    reference: str,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per prompt set and comparison, plus one 'all images' row per prompt set (agreement: Spearman)."""
    rows = []
    promptsets = sorted({p for _, p, s in scores if s == learned})
    for promptset in promptsets:
        for model, baseline in comparisons:
            keys = [(m, promptset, s) for m in (model, baseline) for s in (learned, reference)]
            if not all(k in scores for k in keys):
                continue
            mine, theirs = (
                paired_outcomes(
                    read_scores(scores[model, promptset, s]), read_scores(scores[baseline, promptset, s]), s
                ).rename(columns={"outcome": s})
                for s in (learned, reference)
            )
            both = mine.merge(theirs, on=["prompt_id", "seed"])
            decided = both[(both[learned] != 0.5) & (both[reference] != 0.5)]
            same = (decided[learned] == decided[reference]).to_numpy(dtype=np.float64)
            low, high = cluster_bootstrap_mean(same, decided["prompt_id"].to_numpy(), n_boot, seed)
            rows.append(
                {
                    "scorer": learned,
                    "reference": reference,
                    "promptset": promptset,
                    "comparison": f"{model} vs {baseline}",
                    "agreement": float(same.mean()) if len(same) else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(same),
                    "win_rate": float(both[learned].mean()),
                    "reference_win_rate": float(both[reference].mean()),
                }
            )
        models = sorted({m for m, p, s in scores if p == promptset and s == learned and (m, p, reference) in scores})
        frames = [
            read_scores(scores[m, promptset, learned]).merge(
                read_scores(scores[m, promptset, reference]), on=["prompt_id", "seed"], suffixes=("", "_ref")
            )
            for m in models
        ]
        if frames:
            every = pd.concat(frames)
            rows.append(
                {
                    "scorer": learned,
                    "reference": reference,
                    "promptset": promptset,
                    "comparison": "all images (Spearman)",
                    "agreement": _spearman(every["score"].to_numpy(), every["score_ref"].to_numpy()),
                    "ci_low": np.nan,
                    "ci_high": np.nan,
                    "n": len(every),
                    "win_rate": np.nan,
                    "reference_win_rate": np.nan,
                }
            )
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
