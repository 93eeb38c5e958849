"""The learning-rate choice of `snakemake tune`: window means of the progress evaluation, the choice, the verdicts."""

import json

import pandas as pd
import pytest
from PIL import Image

from inpo_bench.cli import main
from inpo_bench.tables.tune import lr_choice, lr_curves, lr_verdicts


def write_log(path, rewards, every=25):
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"step": [every * i for i in range(len(rewards))], "images": 32, "reward": rewards}).to_csv(
        path, index=False
    )
    return path


@pytest.fixture
def grid(tmp_path):
    """Two methods: DPO at three lrs (the middle one best in the window, the largest best at its last step alone),
    InPO at two lrs tied in the window."""
    logs = {
        ("dpo", 3e-6): [0.50, 0.50, 0.51, 0.50, 0.50, 0.51, 0.52],
        ("dpo", 1e-5): [0.50, 0.52, 0.53, 0.55, 0.56, 0.57, 0.54],
        ("dpo", 3e-5): [0.50, 0.45, 0.40, 0.42, 0.44, 0.48, 0.60],
        ("inpo", 1e-5): [0.50, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50],
        ("inpo", 3e-5): [0.50, 0.60, 0.40, 0.50, 0.75, 0.25, 0.50],  # exact in binary: the same mean, 0.5
    }
    runs = {}
    for (method, lr), rewards in logs.items():
        model = f"{method}/lr~{lr:g}"
        runs[method, lr] = (model, write_log(tmp_path / "models" / model / "eval_log.csv", rewards))
    return runs


def test_the_window_mean_is_the_mean_of_the_measurements_inside_it(grid):
    table = lr_choice(lr_curves(grid), (100, 150), {"dpo": 3e-5, "inpo": 1e-5})
    row = table[(table.method == "dpo") & (table.lr == 1e-5)].iloc[0]
    # steps 100, 125, 150 are the 5th to 7th measurements
    assert row.window_mean == pytest.approx((0.56 + 0.57 + 0.54) / 3)
    assert row.start == 0.50 and row.window_gain == pytest.approx(row.window_mean - 0.50)
    assert row.measurements == 3


def test_the_choice_is_the_best_window_mean_and_a_tie_goes_to_the_smaller_lr(grid):
    table = lr_choice(lr_curves(grid), (100, 150), {"dpo": 3e-5, "inpo": 1e-5})
    chosen = table[table.chosen].set_index("method").lr
    assert chosen["dpo"] == 1e-5  # not 3e-5, whose last measurement alone is the highest
    assert chosen["inpo"] == 1e-5  # a tie
    assert table.chosen.sum() == 2 and table.configured.sum() == 2
    verdicts = lr_verdicts(table).set_index("method")
    assert not verdicts.loc["dpo", "agrees"] and verdicts.loc["dpo", "configured_lr"] == 3e-5
    assert verdicts.loc["inpo", "agrees"]
    assert verdicts.edge.tolist() == ["", "smallest"]  # DPO's best is inside its grid, InPO's at its low end


def test_a_window_without_measurements_names_the_run(grid):
    with pytest.raises(ValueError, match=r"dpo/lr~3e-06: no progress measurement at steps 160-170"):
        lr_choice(lr_curves(grid), (160, 170), {})


def test_the_cli_writes_the_tables_and_the_figure(grid, tmp_path):
    runs = [f"{m}:{lr!r}:{path.parent}" for (m, lr), (_, path) in grid.items()]
    out, figure = tmp_path / "tune" / "tables", tmp_path / "tune" / "figures" / "lr_curves.png"
    configured = json.dumps({"dpo": 3e-5, "inpo": 1e-5})
    main(["tune", "--runs", *runs, "--configured", configured, "--window", "100", "150", "--out-dir", str(out),
          "--figure", str(figure)])  # fmt: skip
    table = pd.read_csv(out / "lr_choice.csv")
    assert len(table) == 5 and set(table.model) == {model for model, _ in grid.values()}
    assert pd.read_csv(out / "lr_verdicts.csv").agrees.tolist() == [False, True]
    assert "Learning-rate choice" in (out / "lr_choice.md").read_text()
    assert Image.open(figure).size[0] > 500


def test_the_cli_refuses_a_malformed_run():
    with pytest.raises(SystemExit):
        main(
            [
                "tune",
                "--runs",
                "dpo-1e-5",
                "--configured",
                "{}",
                "--window",
                "1",
                "2",
                "--out-dir",
                "x",
                "--figure",
                "y",
            ]
        )
