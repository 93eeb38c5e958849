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
    """The progress measurement (the toy world's true reward, or paper scale's scorer, with its standard error) and
    the implicit accuracy against optimiser steps, one line per model."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    scored = "score" in curves.columns
    for model, block in curves.groupby("model", sort=False):
        block = block.sort_values("step")
        if scored:
            top.errorbar(block.step, block.score, yerr=block.score_se, marker="o", markersize=3, capsize=2, label=model)
        else:
            top.plot(block.step, block.reward, marker="o", markersize=3, label=model)
        bottom.plot(block.step, block.implicit_acc, marker="o", markersize=3, label=model)
    top.set_ylabel(f"{curves.scorer.iloc[0]} (mean)" if scored and len(curves) else "oracle reward")
    top.set_title("measured during training on the progress prompts (one seed)", fontsize=9)
    bottom.set_ylabel("implicit accuracy")
    bottom.set_xlabel("optimiser step")
    top.legend(fontsize=8)
    _save(fig, path)


def reward_vs_kl(headroom: pd.DataFrame, models: pd.DataFrame, path: str | Path) -> None:
    """Per toy prompt set: the base's two frontiers (best of n, the reward tilt) as true-reward gain against KL from
    the base, and each trained model at its divergence with its 95% interval."""
    promptsets = list(dict.fromkeys(headroom.promptset))
    fig, axes = plt.subplots(1, len(promptsets), figsize=(5.5 * len(promptsets), 4.2), squeeze=False)
    for ax, promptset in zip(axes[0], promptsets):
        rows = headroom[headroom.promptset == promptset]
        for selection, style in (("best_of_n", "s--"), ("tilt", "o-")):
            curve = rows[rows.selection == selection].sort_values("kl")
            ax.plot(curve.kl, curve.gain, style, color="grey", markersize=3, label=selection.replace("_", "-"))
        for r in models[models.promptset == promptset].itertuples():
            ax.errorbar(
                r.chain_kl, r.gain, yerr=[[r.gain - r.ci_low], [r.ci_high - r.gain]], fmt="o", capsize=3, label=r.model
            )
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlabel("KL from the base (nats; models: chain KL, an upper bound)")
        ax.set_ylabel("true reward gain over the base")
        ax.set_title(promptset, fontsize=9)
        ax.legend(fontsize=7)
    _save(fig, path)


def efficiency_curves(summary: pd.DataFrame, path: str | Path) -> None:
    """The study's curves (tables/study.py curve_summary): the progress evaluation's reward against optimiser
    steps, UNet forward-equivalents and training seconds, one line per method (mean over its training seeds)
    with its 95% interval across seeds as a band."""
    axes_of = (("step", "optimiser steps"), ("unet_forwards", "UNet forward-equivalents"), ("seconds", "training s"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True, constrained_layout=True)
    for method, block in summary.groupby("method", sort=False):
        block = block.sort_values("step")
        for ax, (axis, _) in zip(axes, axes_of):
            (line,) = ax.plot(block[axis], block.reward, marker="o", markersize=3, label=method)
            ax.fill_between(
                block[axis], block.reward_ci_low, block.reward_ci_high, color=line.get_color(), alpha=0.15, lw=0
            )
    for ax, (_, label) in zip(axes, axes_of):
        ax.set_xlabel(label)
    seeds = int(summary.seeds.max()) if len(summary) else 0
    axes[0].set_ylabel("oracle reward (progress prompts)")
    axes[1].set_title(f"mean over training seeds (up to {seeds}), 95% t-interval across them", fontsize=9)
    axes[2].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _save(fig, path)


def lr_curves(curves: pd.DataFrame, window: tuple[int, int], path: str | Path) -> None:
    """The tune target's curves (tables/tune.py lr_curves): one panel per method, the progress reward against
    optimiser steps for each learning rate of its grid, the chosen one bold, the window the choice averages shaded."""
    methods = list(dict.fromkeys(curves.method))
    cols = min(4, max(1, len(methods)))
    rows = -(-len(methods) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False, sharey=True, constrained_layout=True
    )
    for ax, method in zip(axes.flat, methods):
        block = curves[curves.method == method]
        for lr, run in block.groupby("lr"):
            run = run.sort_values("step")
            bold = bool(run.chosen.iloc[0]) if "chosen" in run else False
            ax.plot(
                run.step,
                run.reward,
                marker="o",
                markersize=2.5,
                linewidth=2.2 if bold else 1.0,
                label=f"{lr:.0e}" + (" (chosen)" if bold else ""),
            )
        ax.axvspan(*window, color="grey", alpha=0.12, lw=0)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.legend(fontsize=7)
    for ax in axes.flat[len(methods) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("oracle reward (progress prompts)")
    _save(fig, path)


def noise_schedules(alphas_cumprod: np.ndarray, resolution: int, path: str | Path) -> None:
    """log-SNR against t: the toy base's schedule, Stable Diffusion's on 64 x 64 latents, and SD's raised by the
    resolution factor 2 ln(64 / resolution) (toyworld/schedule.py): the toy curve that carries SD's information."""
    from .toyworld import schedule

    sd = schedule.log_snr(schedule.scaled_linear())
    fig, ax = plt.subplots(figsize=(7, 4))
    t = np.arange(len(sd))
    ax.plot(t, sd, label="Stable Diffusion 1.5 / SDXL (scaled linear, 64 x 64 latents)", color="black")
    ax.plot(
        t,
        sd + 2 * np.log(schedule.SD_LATENT_SIDE / resolution),
        ls="--",
        color="grey",
        label=f"SD's information at {resolution} x {resolution} (+ 2 ln({schedule.SD_LATENT_SIDE}/{resolution}))",
    )
    own = schedule.log_snr(alphas_cumprod)
    ax.plot(np.arange(len(own)), own, label="this toy base", color="tab:red")
    ax.axhline(0, lw=0.5, color="grey")
    ax.set_xlabel("timestep t")
    ax.set_ylabel("log SNR = log(abar / (1 - abar))")
    ax.legend(fontsize=8)
    _save(fig, path)


def ablation_groups(table: pd.DataFrame, parameters: list[str]) -> dict[str, pd.DataFrame]:
    """The rows each ablation panel shows: per parameter, the default and every cell that differs from the default
    in that parameter alone (sorted by its value when all values are numbers); cells that change several
    parameters at once go to a panel 'other'. Parameters no cell changes alone get no panel."""
    default = table[table.cell == "default"]
    cells = table[table.cell != "default"]
    if default.empty:
        return {"other": cells} if len(cells) else {}
    base = default.iloc[0]
    changed = {
        index: [p for p in parameters if str(row[p]) != str(base[p])] for index, row in cells.iterrows()
    }  # compared as text: the CSV may read 2000 back as 2000.0 in a column with 'default' in it
    groups = {}
    for parameter in parameters:
        alone = [index for index, names in changed.items() if names == [parameter]]
        if not alone:
            continue
        rows = pd.concat([default, cells.loc[alone]])
        numeric = pd.to_numeric(rows[parameter], errors="coerce")
        if numeric.notna().all():
            rows = rows.assign(_order=numeric.to_numpy()).sort_values("_order", kind="stable").drop(columns="_order")
        groups[parameter] = rows
    other = [index for index, names in changed.items() if len(names) != 1]
    if other:
        groups["other"] = cells.loc[other]
    return groups


def ablation_panels(
    table: pd.DataFrame,
    parameters: list[str],
    path: str | Path,
    reference: float | None = None,
    label: str = "mean score",
) -> None:
    """One panel per swept parameter: the default (black) and the cells that change only that parameter, each
    with its mean and 95% CI; the dashed line is the default's mean."""
    groups = ablation_groups(table, parameters)
    if not groups:
        raise ValueError("an ablation figure needs at least one cell")
    fig, axes = plt.subplots(1, len(groups), figsize=(2.4 * len(groups) + 1, 3), squeeze=False, sharey=True)
    for ax, (parameter, rows) in zip(axes[0], groups.items()):
        x = np.arange(len(rows))
        colours = ["black" if cell == "default" else "tab:blue" for cell in rows.cell]
        for xi, (_, row), colour in zip(x, rows.iterrows(), colours):
            err = [[row["mean"] - row.ci_low], [row.ci_high - row["mean"]]]
            ax.errorbar(xi, row["mean"], yerr=err, fmt="o", capsize=2, color=colour)
        names = rows.cell if parameter == "other" else rows[parameter].astype(str)
        ax.set_xticks(x, names, rotation=45 if parameter == "other" else 0, fontsize=7)
        ax.set_xlim(-0.6, len(rows) - 0.4)
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
