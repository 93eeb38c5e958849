"""Ablation grids: cell ids, typed merging into the method config, and row-level validation."""

import pytest

from inpo_bench.ablations import cell_config, parse_cell, read_table, read_tables
from inpo_bench.errors import ConfigError
from tests.conftest import REPO


def test_cell_round_trip_and_typing(default_config):
    cell = "beta~500/t_max~999/inv_grid~exact/inv_eta~0.0/lr~1e-5"
    assert parse_cell(cell) == {"beta": "500", "t_max": "999", "inv_grid": "exact", "inv_eta": "0.0", "lr": "1e-5"}
    merged = cell_config(default_config["inpo"], cell)
    assert merged["beta"] == 500 and isinstance(merged["beta"], int)
    assert merged["inversion"]["grid"] == "exact" and merged["inversion"]["eta"] == 0.0
    assert merged["lr"] == 1e-5 and merged["inversion"]["model"] == default_config["inpo"]["inversion"]["model"]
    assert default_config["inpo"]["beta"] != 500  # the default config is not modified
    with pytest.raises(ConfigError, match="name~value"):
        parse_cell("beta500")


def test_read_table_lists_cells_in_row_order_with_only_their_set_fields(tmp_path, default_config):
    table = tmp_path / "grid.tsv"
    table.write_text("beta\tinv_model\n500\t\n5000\treference\n\treference\n")
    assert read_table(table, default_config, "inpo") == [
        "beta~500",
        "beta~5000/inv_model~reference",
        "inv_model~reference",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("beta\tinv_grid\n500\tfancy\n", r"(?s)line 2 .*inpo.inversion.grid: 'fancy' is not one of"),
        ("betta\n500\n", r"unknown key\(s\) \['betta'\]"),
        ("beta\n-3\n", "inpo.beta"),
        ("beta\n500\n500\n", "duplicated rows"),
        ("beta\tt_max\n2000\t500\n", r"line 2: beta 2000 is this run's own inpo\.beta; leave the field empty"),
        ("inv_eta\n0.1\n", r"inv_eta 0\.1 is this run's own inpo\.inversion\.eta"),
        ("beta\tt_max\n\t\n", "every field is empty"),
        ("inversion.model\npolicy\n", "must be an identifier"),
        ("beta\n", "no rows"),
    ],
)
def test_bad_tables_name_file_row_and_key(tmp_path, default_config, text, message):
    table = tmp_path / "grid.tsv"
    table.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_table(table, default_config, "inpo")


def test_missing_table(tmp_path, default_config):
    with pytest.raises(ConfigError, match="does not exist"):
        read_table(tmp_path / "nope.tsv", default_config, "inpo")


def test_several_tables_of_one_method_keep_their_own_columns(tmp_path, default_config):
    (tmp_path / "grid.tsv").write_text("beta\n500\n")
    (tmp_path / "seeds.tsv").write_text("train_seed\n1\n2\n")
    cells = read_tables(["grid.tsv", "seeds.tsv"], default_config, "inpo", tmp_path)
    assert cells == ["beta~500", "train_seed~1", "train_seed~2"]
    seeded = cell_config(default_config["inpo"], cells[1])
    assert seeded["train_seed"] == 1 and seeded["beta"] == default_config["inpo"]["beta"]
    assert read_tables("grid.tsv", default_config, "inpo", tmp_path) == ["beta~500"]
    with pytest.raises(ConfigError, match="also in another table"):
        read_tables(["grid.tsv", "grid.tsv"], default_config, "inpo", tmp_path)


SHIPPED = [
    ["config.yaml"],
    ["config.yaml", "sd15.yaml"],
    ["config.yaml", "sdxl.yaml"],
    ["config.yaml", "smoke-sd.yaml"],
]


@pytest.mark.parametrize("files", SHIPPED, ids=lambda f: f[-1])
def test_every_shipped_cell_differs_from_its_config_in_exactly_its_swept_keys(files):
    """The SDXL table once hard-coded SD1.5's beta, so every SDXL cell also changed beta and its `beta~5000`
    retrained the default model; each cell must now change what it names and nothing else."""
    from inpo_bench.ablations import key_path
    from inpo_bench.config import load_config

    config = load_config(*(REPO / "config" / f for f in files))
    checked = 0
    for method, paths in config["ablations"].items():
        for cell in read_tables(paths, config, method, REPO):
            merged = cell_config(config[method], cell)
            swept = {key_path(column) for column in parse_cell(cell)}
            changed = set(_differences(config[method], merged))
            assert changed == swept, (files[-1], method, cell, changed)
            checked += 1
    assert checked > 0


def _differences(a: dict, b: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key in a.keys() | b.keys():
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], (*prefix, key))
        elif a.get(key) != b.get(key):
            out.append((*prefix, key))
    return out
