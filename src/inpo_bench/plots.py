"""Figures (matplotlib, PNG) drawn from the tables: win-rate bars, training curves, ablations, image grids."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or wanted
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image


def _save(fig: plt.Figure, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Software": None})  # no version stamp: same bytes
    plt.close(fig)


def win_rate_bars(table: pd.DataFrame, path: str | Path) -> None:
    """One panel per prompt set: a group of bars per comparison, one bar per scorer, 95% CI whiskers."""
    promptsets = list(dict.fromkeys(table.promptset))
    scorers = list(dict.fromkeys(table.scorer))
    groups = table.groupby(["model", "baseline"]).ngroups
    fig, axes = plt.subplots(
        len(promptsets),
        1,
        figsize=(max(6.0, 1.6 * groups + 2), 3.4 * len(promptsets)),
        squeeze=False,
        constrained_layout=True,
    )
    width = 0.8 / max(1, len(scorers))
    for ax, promptset in zip(axes[:, 0], promptsets):
        block = table[table.promptset == promptset]
        comparisons = list(dict.fromkeys(zip(block.model, block.baseline)))
        for k, scorer in enumerate(scorers):
            rows = block[block.scorer == scorer].set_index(["model", "baseline"]).reindex(comparisons)
            x = np.arange(len(comparisons)) + (k - (len(scorers) - 1) / 2) * width
            rate = 100 * rows.win_rate.to_numpy()
            err = np.vstack([rate - 100 * rows.ci_low.to_numpy(), 100 * rows.ci_high.to_numpy() - rate])
            ax.bar(x, rate, width, yerr=err, capsize=2, label=scorer)
        ax.axhline(50, color="black", linewidth=0.8, linestyle="--")
        ax.set_xticks(np.arange(len(comparisons)), [f"{m}\nvs {b}" for m, b in comparisons])
        ax.set_ylim(0, 100)
        ax.set_ylabel("win rate (%)")
        ax.set_title(f"{promptset}: ties count 1/2, 95% bootstrap CI over prompts", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def training_curves(curves: pd.DataFrame, path: str | Path) -> None:
    """True (oracle) reward and implicit accuracy against optimiser steps, one line per model."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for model, block in curves.groupby("model", sort=False):
        block = block.sort_values("step")
        top.plot(block.step, block.reward, marker="o", markersize=3, label=model)
        bottom.plot(block.step, block.implicit_acc, marker="o", markersize=3, label=model)
    top.set_ylabel("oracle reward")
    top.set_title("measured during training on the progress prompts (one seed)", fontsize=9)
    bottom.set_ylabel("implicit accuracy")
    bottom.set_xlabel("optimiser step")
    top.legend(fontsize=8)
    _save(fig, path)


def ablation_panels(
    table: pd.DataFrame,
    parameters: list[str],
    path: str | Path,
    reference: float | None = None,
    label: str = "mean score",
) -> None:
    """One panel per swept parameter: every cell's mean (95% CI) against that parameter's value in the cell; the
    dashed line is the default configuration."""
    fig, axes = plt.subplots(1, len(parameters), figsize=(3.2 * len(parameters), 3), squeeze=False, sharey=True)
    cells = table[table.cell != "default"]
    x = np.arange(len(cells))
    for ax, parameter in zip(axes[0], parameters):
        ax.errorbar(
            x, cells["mean"], yerr=[cells["mean"] - cells.ci_low, cells.ci_high - cells["mean"]], fmt="o", capsize=2
        )
        ax.set_xticks(x, cells[parameter].astype(str), rotation=45, fontsize=7)
        ax.set_title(parameter, fontsize=9)
        if reference is not None:
            ax.axhline(reference, color="black", linewidth=0.8, linestyle="--")
    axes[0, 0].set_ylabel(label)
    _save(fig, path)


def image_grid(
    columns: dict[str, Path],
    items: list[tuple[str, int]],
    path: str | Path,
    scale: int = 4,
    prompts: dict[str, str] | None = None,
) -> None:
    """Rows: (prompt_id, seed); columns: models; every cell is the image that model made from the same noise."""
    fig, axes = plt.subplots(
        len(items), len(columns), figsize=(1.3 * len(columns) + 2.5, 1.3 * len(items)), squeeze=False
    )
    for j, (model, folder) in enumerate(columns.items()):
        for i, (prompt_id, seed) in enumerate(items):
            ax = axes[i, j]
            image = Image.open(Path(folder) / f"{prompt_id}_{seed}.png").convert("RGB")
            ax.imshow(np.asarray(image.resize((image.width * scale, image.height * scale), Image.NEAREST)))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(model, fontsize=8)
            if j == 0:
                label = (prompts or {}).get(prompt_id, prompt_id)
                ax.set_ylabel(f"{label}\nseed {seed}", fontsize=6, rotation=0, ha="right", va="center")
    _save(fig, path)
