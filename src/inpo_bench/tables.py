"""Result tables: mean scores with bootstrap confidence intervals, as long-format CSV and readable Markdown.

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


CURVE_COLUMNS = ["model", "step", "reward", "fidelity", "aesthetic", "all_correct", "implicit_acc", "loss"]


def training_curves(models: dict[str, tuple[str | Path, str | Path]], window: int = 10) -> pd.DataFrame:
    """models: id -> (eval_log.csv, train_log.csv). The oracle's measurements during training, with the training
    loss and implicit accuracy averaged over the `window` steps up to each measurement (step 0: none)."""
    rows = []
    for model, (eval_path, train_path) in models.items():
        evals, log = pd.read_csv(eval_path), pd.read_csv(train_path)
        for r in evals.itertuples():
            recent = log[(log.step > r.step - window) & (log.step <= r.step)]
            rows.append(
                {
                    "model": model,
                    "step": int(r.step),
                    "reward": r.reward,
                    "fidelity": r.fidelity,
                    "aesthetic": r.aesthetic,
                    "all_correct": r.all_correct,
                    "implicit_acc": recent.implicit_acc.mean() if len(recent) else np.nan,
                    "loss": recent.loss.mean() if len(recent) else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def steps_to_reach(
    curves: pd.DataFrame,
    reference: str = "dpo",
    fractions: tuple[float, ...] = (0.5, 1.0),
    seconds: dict[str, float] | None = None,
) -> pd.DataFrame:
    """For each model, the first measured step whose reward reaches start + f * (reference's final gain).

    The start is the model's own step-0 reward (every aligned model starts from the base). NaN: never reached.
    With `seconds` (model -> training seconds per step) the table also gives the training time to get there.
    """
    ref = curves[curves.model == reference].sort_values("step")
    if ref.empty:
        raise ValueError(f"no training curve for the reference model {reference!r}")
    gain = ref.reward.iloc[-1] - ref.reward.iloc[0]
    rows = []
    for model, block in curves.groupby("model", sort=False):
        block = block.sort_values("step")
        start = block.reward.iloc[0]
        for f in fractions:
            target = start + f * gain
            reached = block[(block.step > 0) & (block.reward >= target)] if gain > 0 else block.iloc[0:0]
            step = int(reached.step.iloc[0]) if len(reached) else np.nan
            row = {
                "model": model,
                "reference": reference,
                "fraction_of_reference_gain": f,
                "target_reward": target,
                "step": step,
                "final_step": int(block.step.iloc[-1]),
                "final_reward": block.reward.iloc[-1],
            }
            if seconds is not None:
                row["seconds"] = step * seconds[model] if len(reached) else np.nan
            rows.append(row)
    return pd.DataFrame(rows).astype({"step": "Int64"})


def _verdict(low: float, high: float) -> str:
    if np.isnan(low):
        return "not measured"
    if low > 0.5:
        return "holds"
    if high < 0.5:
        return "does not hold"
    return "inconclusive"


def toy_claims(
    win: pd.DataFrame,
    steps: pd.DataFrame,
    seconds_per_step: dict[str, float],
    scorer: str = "oracle_reward",
    method: str = "inpo",
    reference: str = "dpo",
) -> pd.DataFrame:
    """Which of the paper's qualitative claims hold in the toy world, judged on the true reward.

    Win-rate claims hold when the whole 95% interval is above 50%, fail when it is below, and are inconclusive
    otherwise. The efficiency claim compares the optimiser steps (and training seconds) each method needs to
    reach the reference's final gain over the base, measured during training.
    """

    def cell(model: str, baseline: str, promptset: str) -> tuple[str, str]:
        row = win[
            (win.model == model) & (win.baseline == baseline) & (win.promptset == promptset) & (win.scorer == scorer)
        ]
        if row.empty:
            return "not measured", "no such comparison in this run"
        r = row.iloc[0]
        return _verdict(r.ci_low, r.ci_high), (
            f"win rate {100 * r.win_rate:.1f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}], n={r.n}"
        )

    rows = []
    for claim, baseline, promptset in (
        ("DDIM-InPO improves on the base model", "base", "toy_seen"),
        ("DDIM-InPO beats SFT", "sft", "toy_seen"),
        ("DDIM-InPO beats Diffusion-DPO", reference, "toy_seen"),
        ("DDIM-InPO's gain carries over to held-out compositions", "base", "toy_unseen"),
    ):
        verdict, evidence = cell(method, baseline, promptset)
        rows.append(
            {
                "claim": claim,
                "verdict": verdict,
                "evidence": f"{method} vs {baseline}, {promptset}, {scorer}: {evidence}",
            }
        )

    full = steps[steps.fraction_of_reference_gain == 1.0].set_index("model")
    if method in full.index and reference in full.index:
        ours, theirs = full.loc[method, "step"], full.loc[reference, "step"]
        if pd.isna(theirs):
            verdict, evidence = "not measured", f"{reference} gained nothing over its start"
        elif pd.isna(ours):
            verdict = "does not hold"
            evidence = (
                f"{reference} reached its final gain (reward {full.loc[reference, 'target_reward']:.3f}) at step"
                f" {int(theirs)}; {method} never did (its final reward: {full.loc[method, 'final_reward']:.3f})"
            )
        else:
            verdict = "holds" if ours <= theirs / 4 else "does not hold"
            evidence = f"{method} reached it at step {int(ours)}, {reference} at step {int(theirs)}"
        rows.append(
            {
                "claim": "DDIM-InPO reaches Diffusion-DPO's gain in at most a quarter of its steps",
                "verdict": verdict,
                "evidence": evidence,
            }
        )
        if not pd.isna(theirs) and not pd.isna(ours):
            ours_s, theirs_s = ours * seconds_per_step[method], theirs * seconds_per_step[reference]
            rows.append(
                {
                    "claim": "DDIM-InPO reaches Diffusion-DPO's gain in less training time",
                    "verdict": "holds" if ours_s < theirs_s else "does not hold",
                    "evidence": f"{method} {ours_s:.0f} s, {reference} {theirs_s:.0f} s of training",
                }
            )
    return pd.DataFrame(rows, columns=["claim", "verdict", "evidence"])


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
    from .ablations import cell_config, key_path, parse_cell

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
