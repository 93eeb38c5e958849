"""The toy world's learning-rate choice: each method's lr grid judged on the progress evaluation alone.

The progress evaluation (config `progress_eval`) has its own prompts and noise seed, so choosing on it never sees
the images that the tables, win rates and study are computed from (issue 13, item 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LR_COLUMNS = [
    "method",
    "lr",
    "model",
    "start",
    "window_mean",
    "window_gain",
    "measurements",
    "chosen",
    "configured",
]


def lr_curves(runs: dict[tuple[str, float], tuple[str, str | Path]]) -> pd.DataFrame:
    """runs: (method, lr) -> (model id, its eval_log.csv). The progress reward of every run at every measured
    step, as rows method, lr, model, step, reward."""
    frames = []
    for (method, lr), (model, path) in runs.items():
        log = pd.read_csv(path)
        if "reward" not in log or "step" not in log:
            raise ValueError(f"{path}: not a progress log (needs columns step and reward)")
        frames.append(
            pd.DataFrame({"method": method, "lr": lr, "model": model, "step": log.step, "reward": log.reward})
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["method", "lr", "model", "step", "reward"])
    )


def lr_choice(curves: pd.DataFrame, window: tuple[int, int], configured: dict[str, float]) -> pd.DataFrame:
    """Per method and lr: the progress reward at step 0 (`start`), the mean of its measurements at steps in
    [window[0], window[1]] (`window_mean`) and that minus the start. `chosen` marks each method's largest window
    mean (a tie goes to the smaller lr, the cautious step); `configured` marks the lr the config trains today, so
    a row with configured and not chosen says the config disagrees with its own rule."""
    low, high = window
    if low > high:
        raise ValueError(f"tune window {list(window)}: its first step is after its last")
    rows = []
    for (method, lr), block in curves.groupby(["method", "lr"], sort=False):
        inside = block[(block.step >= low) & (block.step <= high)]
        if inside.empty:
            raise ValueError(
                f"{block.model.iloc[0]}: no progress measurement at steps {low}-{high}; set the method's "
                "eval_every so that one falls in the tune window, or move the window"
            )
        at_start = block[block.step == 0].reward
        start = float(at_start.iloc[0]) if len(at_start) else np.nan
        mean = float(inside.reward.mean())
        rows.append(
            {
                "method": method,
                "lr": float(lr),
                "model": block.model.iloc[0],
                "start": start,
                "window_mean": mean,
                "window_gain": mean - start,
                "measurements": len(inside),
                "chosen": False,
                "configured": bool(np.isclose(lr, configured.get(method, np.nan), rtol=1e-9, atol=0.0)),
            }
        )
    table = pd.DataFrame(rows, columns=LR_COLUMNS).sort_values(["method", "lr"], kind="stable", ignore_index=True)
    for _, block in table.groupby("method", sort=False):
        table.loc[block.window_mean.idxmax(), "chosen"] = True  # idxmax: the first maximum, i.e. the smaller lr
    return table


def lr_verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per method: the chosen lr, the configured one, whether they agree, and whether the choice is the
    grid's smallest or largest lr (`edge`: the grid may not bracket the best lr; extend it on that side)."""
    rows = []
    for method, block in table.groupby("method", sort=False):
        chosen = block[block.chosen].iloc[0]
        configured = block[block.configured]
        edge = "smallest" if chosen.lr == block.lr.min() else "largest" if chosen.lr == block.lr.max() else ""
        rows.append(
            {
                "method": method,
                "chosen_lr": chosen.lr,
                "chosen_window_mean": chosen.window_mean,
                "chosen_window_gain": chosen.window_gain,
                "configured_lr": configured.lr.iloc[0] if len(configured) else np.nan,
                "agrees": bool(len(configured) and configured.chosen.iloc[0]),
                "edge": edge if len(block) > 1 else "",
            }
        )
    columns = ["method", "chosen_lr", "chosen_window_mean", "chosen_window_gain", "configured_lr", "agrees", "edge"]
    return pd.DataFrame(rows, columns=columns)
