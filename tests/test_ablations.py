"""Ablation grids: cell ids, typed merging into the method config, and row-level validation."""

import pytest

from inpo_bench.ablations import cell_config, parse_cell, read_table, read_tables
from inpo_bench.errors import ConfigError


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


def test_read_table_lists_cells_in_row_order(tmp_path, default_config):
    table = tmp_path / "grid.tsv"
    table.write_text("beta\tinv_model\n500\tpolicy\n5000\treference\n")
    assert read_table(table, default_config, "inpo") == ["beta~500/inv_model~policy", "beta~5000/inv_model~reference"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("beta\tinv_grid\n500\tfancy\n", r"(?s)line 2 .*inpo.inversion.grid: 'fancy' is not one of"),
        ("betta\n500\n", r"unknown key\(s\) \['betta'\]"),
        ("beta\n-3\n", "inpo.beta"),
        ("beta\n500\n500\n", "duplicated rows"),
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
