"""Training curves (the toy world's oracle measurements, or paper scale's progress scores), and in the toy world the
steps to reach a reward and the paper's claims judged on the true reward."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

ORACLE_MEASURES = ["reward", "fidelity", "aesthetic", "all_correct"]  # the toy world's eval_log
SCORED_MEASURES = ["scorer", "score", "score_se"]  # paper scale's (scorers/progress.py)
CURVE_COLUMNS = ["model", "step", "unet_forwards", "seconds", *ORACLE_MEASURES, "implicit_acc", "loss"]
SCORED_CURVE_COLUMNS = ["model", "step", "unet_forwards", "seconds", *SCORED_MEASURES, "implicit_acc", "loss"]
SCORED_CURVE_COLUMNS += ["reward_margin"]


def training_curves(models: dict[str, tuple[str | Path, str | Path]], window: int = 10) -> pd.DataFrame:
    """models: id -> (eval_log.csv, train_log.csv). The measurements during training (the toy world's oracle, or
    paper scale's progress scorer), with the training loss and implicit accuracy (paper scale also the reward
    margin) averaged over the `window` steps up to each measurement (step 0: none), and the compute spent up to it:
    UNet forward-equivalents and training seconds (the train log's running totals; a log written before forwards
    were counted gives NaN)."""
    rows = []
    scored = False
    for model, (eval_path, train_path) in models.items():
        evals, log = pd.read_csv(eval_path), pd.read_csv(train_path)
        scored = "score" in evals.columns
        measures = SCORED_MEASURES if scored else ORACLE_MEASURES
        averaged = ["implicit_acc", "loss", "reward_margin"] if scored else ["implicit_acc", "loss"]
        totals = log.set_index("step").reindex(columns=["unet_forwards", "seconds"])
        for r in evals.to_dict("records"):
            recent = log[(log.step > r["step"] - window) & (log.step <= r["step"])]
            step = r["step"]
            spent = totals.loc[step] if step in totals.index else pd.Series({"unet_forwards": 0, "seconds": 0})
            row = {"model": model, "step": int(step)}
            row.update(unet_forwards=float(spent.unet_forwards), seconds=float(spent.seconds))
            row.update({k: r[k] for k in measures})
            row.update({k: recent[k].mean() if len(recent) and k in recent else np.nan for k in averaged})
            rows.append(row)
    return pd.DataFrame(rows, columns=SCORED_CURVE_COLUMNS if scored else CURVE_COLUMNS)


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
