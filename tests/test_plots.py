"""Figures: each plot function writes a PNG of the expected layout, and the same data gives the same bytes."""

import numpy as np
import pandas as pd
from PIL import Image

from inpo_bench import plots


def wins():
    rows = []
    for promptset in ("toy_seen", "toy_unseen"):
        for model, baseline in (("inpo", "base"), ("dpo", "base")):
            for scorer in ("oracle_reward", "oracle_aesthetic"):
                rows.append(
                    {
                        "model": model,
                        "baseline": baseline,
                        "promptset": promptset,
                        "scorer": scorer,
                        "win_rate": 0.6,
                        "ci_low": 0.5,
                        "ci_high": 0.7,
                    }
                )
    return pd.DataFrame(rows)


def test_win_rate_bars_are_deterministic(tmp_path):
    plots.win_rate_bars(wins(), tmp_path / "a.png")
    plots.win_rate_bars(wins(), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    width, height = Image.open(tmp_path / "a.png").size
    assert height > width / 3  # two stacked panels


def test_training_curves_and_ablation_panels(tmp_path):
    curves = pd.DataFrame(
        {
            "model": ["dpo"] * 3 + ["inpo"] * 3,
            "step": [0, 25, 50] * 2,
            "reward": [0.3, 0.35, 0.4, 0.3, 0.32, 0.31],
            "implicit_acc": [np.nan, 0.6, 0.7] * 2,
        }
    )
    plots.training_curves(curves, tmp_path / "curves.png")
    table = pd.DataFrame(
        {
            "cell": ["default", "beta~500/t_max~999", "beta~5000/t_max~500"],
            "beta": [2000, 500, 5000],
            "t_max": [500, 999, 500],
            "mean": [0.4, 0.35, 0.42],
            "ci_low": [0.38, 0.3, 0.4],
            "ci_high": [0.43, 0.4, 0.45],
        }
    )
    plots.ablation_panels(table, ["beta", "t_max"], tmp_path / "ablation.png", reference=0.4)
    for name in ("curves.png", "ablation.png"):
        image = Image.open(tmp_path / name)
        assert image.size[0] > 300 and image.size[1] > 200


def test_ablation_groups_put_each_cell_beside_the_default_of_its_panel():
    table = pd.DataFrame(
        {
            "cell": ["default", "beta~5000", "beta~500", "t_max~999", "beta~500/t_max~999", "train_seed~1"],
            "beta": [2000, 5000, 500, 2000, 500, 2000],
            "t_max": [500, 500, 500, 999, 999, 500],
            "train_seed": ["default", "default", "default", "default", "default", "1"],
            "mean": [0.4, 0.41, 0.35, 0.38, 0.3, 0.39],
            "ci_low": [0.38, 0.39, 0.3, 0.36, 0.28, 0.37],
            "ci_high": [0.43, 0.43, 0.4, 0.4, 0.32, 0.41],
        }
    )
    groups = plots.ablation_groups(table, ["beta", "t_max", "train_seed"])
    assert list(groups) == ["beta", "t_max", "train_seed", "other"]
    assert groups["beta"].beta.tolist() == [500, 2000, 5000]  # sorted by value, the default among them
    assert groups["t_max"].cell.tolist() == ["default", "t_max~999"]
    assert groups["train_seed"].cell.tolist() == ["default", "train_seed~1"]
    assert groups["other"].cell.tolist() == ["beta~500/t_max~999"]  # changes two parameters at once
    assert "t_max" not in plots.ablation_groups(table[table.cell != "t_max~999"], ["beta", "t_max"])


def test_image_grid_shows_the_given_samples(tmp_path):
    for model, colour in (("base", (255, 0, 0)), ("dpo", (0, 0, 255))):
        folder = tmp_path / model
        folder.mkdir()
        for pid in ("p0", "p1"):
            Image.new("RGB", (16, 16), colour).save(folder / f"{pid}_0.png")
    plots.image_grid(
        {"base": tmp_path / "base", "dpo": tmp_path / "dpo"},
        [("p0", 0), ("p1", 0)],
        tmp_path / "grid.png",
        prompts={"p0": "a red circle", "p1": "a blue square"},
    )
    pixels = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB")).reshape(-1, 3)
    # both models' colours are on the figure
    assert ((pixels == (255, 0, 0)).all(1)).sum() > 100 and ((pixels == (0, 0, 255)).all(1)).sum() > 100
