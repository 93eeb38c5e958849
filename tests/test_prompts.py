"""Prompt sets from files in their exact upstream formats, written here with the real counts."""

from __future__ import annotations

import json

import pytest

from inpo_bench.data.prompts import HPD_STYLES, build_promptset
from inpo_bench.errors import DataError
from inpo_bench.smoke.prompts import hpd_folder, parti_file, pickapic_file


@pytest.fixture()
def sources(tmp_path):
    return {
        "cache": str(tmp_path / "cache"),
        "limit": 0,
        "pickapic_test_unique": str(pickapic_file(tmp_path / "test_unique-00000-of-00001.parquet")),
        "parti": str(parti_file(tmp_path / "PartiPrompts.tsv")),
        "hpdv2": str(hpd_folder(tmp_path / "HPDv2")),
    }


def test_real_sets_read_their_upstream_formats(sources):
    frame, record = build_promptset("pickapic_test_unique", None, sources)
    assert len(frame) == 500 and frame.prompt.iloc[7] == "a photo of a cat number 7" and frame.prompt_id.is_unique
    assert record["count"] == 500 and record["used"] == 500 and record["source"].endswith(".parquet")
    frame, record = build_promptset("parti", None, sources)
    assert len(frame) == 1632 and frame.prompt.iloc[-1] == "a red car on the street 1631"
    assert len(record["sha256"]["PartiPrompts.tsv"]) == 64
    frame, _ = build_promptset("hpdv2", None, sources)
    assert len(frame) == 3200 and frame.prompt_id.iloc[800] == "concept-art-000"
    frame, _ = build_promptset("hpdv2_photo", None, sources)
    assert len(frame) == 800 and frame.prompt.str.startswith("a photo painting").all()


def test_limit_takes_an_evenly_spread_subset(sources):
    frame, record = build_promptset("hpdv2", None, {**sources, "limit": 8})
    assert len(frame) == 8 and record["count"] == 3200 and record["used"] == 8
    # two prompts of every style survive
    assert frame.prompt_id.str.rsplit("-", n=1).str[0].value_counts().to_dict() == {s: 2 for s in HPD_STYLES}


@pytest.mark.parametrize(
    ("name", "breaks", "message"),
    [
        ("pickapic_test_unique", lambda p: pickapic_file(p, 499), "499 prompts, pickapic_test_unique has 500"),
        ("parti", lambda p: parti_file(p, 1600), "1600 prompts, parti has 1632"),
        ("parti", lambda p: p.write_text("Text\tCategory\nx\ty\n"), "no 'Prompt' column"),
        ("pickapic_test_unique", lambda p: p.write_text("not parquet"), "not a Pick-a-Pic parquet"),
    ],
)
def test_wrong_or_malformed_files_name_the_file(tmp_path, sources, name, breaks, message):
    bad = tmp_path / "bad_file"
    breaks(bad)
    with pytest.raises(DataError, match=message) as error:
        build_promptset(name, None, {**sources, name: str(bad)})
    assert str(bad) in str(error.value)


def test_broken_hpd_style_file(tmp_path, sources):
    folder = hpd_folder(tmp_path / "broken")
    (folder / "paintings.json").write_text("{not json")
    with pytest.raises(DataError, match=r"paintings\.json: not valid JSON"):
        build_promptset("hpdv2", None, {**sources, "hpdv2": str(folder)})
    (folder / "paintings.json").write_text(json.dumps(["only one"]))
    with pytest.raises(DataError, match="1 prompts, the HPDv2 benchmark has 800"):
        build_promptset("hpdv2_paintings", None, {**sources, "hpdv2": str(folder)})
    with pytest.raises(DataError, match="does not exist"):
        build_promptset("parti", None, {**sources, "parti": str(tmp_path / "nope.tsv")})
