"""Win rates: per (prompt, seed) the model against the baseline from the same initial noise, ties 1/2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .scores import cluster_bootstrap_mean, markdown_table, read_scores

WIN_COLUMNS = ["model", "baseline", "promptset", "scorer", "win_rate", "ci_low", "ci_high", "n", "ties", "n_prompts"]


def paired_outcomes(model: pd.DataFrame, baseline: pd.DataFrame, what: str = "") -> pd.DataFrame:
    """Per (prompt_id, seed): 1 if the model scores higher, 0.5 on an exact tie, 0 if lower.

    Both sides must hold exactly the same (prompt_id, seed) keys: an image without its counterpart means the two
    runs did not sample the same thing, which is an error, not something to drop silently.
    """
    keys = ["prompt_id", "seed"]
    merged = model.merge(baseline, on=keys, how="outer", suffixes=("_model", "_baseline"), indicator="side")
    unpaired = merged[merged["side"] != "both"]
    if len(unpaired):
        examples = [
            f"{r.prompt_id}/{r.seed} ({'model' if r.side == 'left_only' else 'baseline'} only)"
            for r in unpaired.head(5).itertuples()
        ]
        raise ValueError(f"{what}: {len(unpaired)} image(s) without a counterpart, e.g. {examples}")
    a, b = merged["score_model"].to_numpy(), merged["score_baseline"].to_numpy()
    outcome = np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))
    return pd.DataFrame({"prompt_id": merged["prompt_id"], "seed": merged["seed"], "outcome": outcome})


def win_rate(
    model: pd.DataFrame, baseline: pd.DataFrame, n_boot: int = 2000, seed: int = 0, what: str = ""
) -> dict[str, float]:
    """Win rate of `model` over `baseline` with ties counting 0.5 and a 95% bootstrap interval over prompts."""
    pairs = paired_outcomes(model, baseline, what)
    values = pairs["outcome"].to_numpy()
    low, high = cluster_bootstrap_mean(values, pairs["prompt_id"].to_numpy(), n_boot, seed)
    return {
        "win_rate": float(values.mean()) if len(values) else np.nan,
        "ci_low": low,
        "ci_high": high,
        "n": len(values),
        "ties": int((values == 0.5).sum()),
        "n_prompts": pairs["prompt_id"].nunique(),
    }


def win_rates(
    scores: dict[tuple[str, str, str], str | Path],
    comparisons: list[tuple[str, str]],
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """scores: (model, promptset, scorer) -> CSV. One row per comparison x prompt set x scorer present for both."""
    rows = []
    cells = sorted({(p, s) for _, p, s in scores}, key=lambda c: (c[0], c[1]))
    for model, baseline in comparisons:
        for promptset, scorer in cells:
            if (model, promptset, scorer) not in scores or (baseline, promptset, scorer) not in scores:
                continue
            result = win_rate(
                read_scores(scores[model, promptset, scorer]),
                read_scores(scores[baseline, promptset, scorer]),
                n_boot,
                seed,
                what=f"{model} vs {baseline} on {promptset}/{scorer}",
            )
            rows.append({"model": model, "baseline": baseline, "promptset": promptset, "scorer": scorer, **result})
    return pd.DataFrame(rows, columns=WIN_COLUMNS)


def win_rates_markdown(table: pd.DataFrame) -> str:
    parts = [
        "# Win rates",
        "",
        "Share of (prompt, seed) images on which the model scores higher than the baseline, both sampled from the "
        "same initial noise; ties count 1/2. In brackets: 95% bootstrap interval over prompts. Above 50%: the "
        "model wins.",
        "",
    ]
    for promptset, block in table.groupby("promptset", sort=False):
        scorers = list(dict.fromkeys(block["scorer"]))
        pairs = list(dict.fromkeys(zip(block["model"], block["baseline"])))
        cells = {
            (r.model, r.baseline, r.scorer): f"{100 * r.win_rate:.1f} [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}]"
            for r in block.itertuples()
        }
        n = block.groupby(["model", "baseline"])["n"].max()
        rows = [[f"{m} vs {b}", str(n[m, b]), *(cells.get((m, b, s), "") for s in scorers)] for m, b in pairs]
        parts += [f"## {promptset}", "", markdown_table(["comparison", "n", *scorers], rows), ""]
    return "\n".join(parts)
