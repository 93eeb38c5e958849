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


# --- the files shipped with the package ------------------------------------------------------------------------


def test_shipped_sets_load_with_their_published_counts_and_hashes():
    import hashlib

    from inpo_bench.data.prompts import REAL_SETS, shipped_path, shipped_sources

    counts = {"pickapic_test_unique": 487, "parti": 1632, "hpdv2": 3200, **{f"hpdv2_{s}": 800 for s in HPD_STYLES}}
    for name, expected in counts.items():
        frame, record = build_promptset(name, None, {"cache": "unused", "limit": 0})
        assert len(frame) == record["count"] == expected and frame.prompt_id.is_unique, name
        (file,) = record["sha256"]
        assert file == REAL_SETS[name].shipped and record["origin"]["commit"] == shipped_sources()[file]["commit"]
        assert record["sha256"][file] == hashlib.sha256(shipped_path(file).read_bytes()).hexdigest()
    parti, _ = build_promptset("parti", None, {"cache": "unused", "limit": 0})
    # the one prompt that starts with a quoted word keeps its quotes (a CSV reader with quoting drops them)
    assert parti.prompt.str.startswith('"G I G G L E" painted').sum() == 1
    assert (parti.prompt == "A photo of a lotus flower made of water. ").sum() == 1  # upstream's trailing space kept


def test_shipped_hpd_styles_sit_where_published_prompt_indices_put_them():
    """Six (style, index, prompt) triples published by SiD-LSG (prompts/fig6-prompts.md, indices into HPSv2's
    benchmark files), independent of the shipped file: its four 800-prompt blocks are the styles in this order."""
    frame, _ = build_promptset("hpdv2", None, {"cache": "unused", "limit": 0})
    prompts = dict(zip(frame.prompt_id, frame.prompt))
    published = {
        "concept-art-668": "Half-length head portrait of the goddess of autumn with wheat ears on her head",
        "anime-329": "Walter White dressed as a medieval-style king.",
        "paintings-291": "A serene meadow with a tree, river, bridge, and mountains in the background",
        "paintings-288": "A closeup portrait of a gray owl with spreaded wings attacking in cinematic lighting",
        "anime-057": "A hyena fursona sitting in the grass in a savannah at sunset.",
        "photo-165": "Large dog looking at television show in living room.",
    }
    for prompt_id, start in published.items():
        assert prompts[prompt_id].startswith(start), prompt_id
    photo, _ = build_promptset("hpdv2_photo", None, {"cache": "unused", "limit": 0})
    assert photo.prompt.tolist() == frame.prompt[frame.prompt_id.str.startswith("photo-")].tolist()


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch):
    from inpo_bench.data import prompts

    copy = tmp_path / "papv2.json"
    copy.write_bytes(prompts.shipped_path("papv2.json").read_bytes().replace(b"library", b"Library", 1))
    monkeypatch.setattr(prompts, "shipped_path", lambda name: copy)
    with pytest.raises(DataError, match=r"papv2\.json: SHA-256 .* is not the shipped file's"):
        build_promptset("pickapic_test_unique", None, {"cache": "unused", "limit": 0})


def test_pickapic_prompts_from_the_hub_come_from_the_mirror_verified(tmp_path):
    """`prompts.pickapic_test_unique: hub` reads test_unique from the training data's mirror (a loopback stand-in
    of the hub here) and locks it as the training shards are."""
    import os
    import subprocess
    import sys

    import pandas as pd

    from tests.hub_standin import HubStandIn, Repo

    parquet = pickapic_file(tmp_path / "t.parquet").read_bytes()
    repo = Repo({"data/test_unique-00000-of-00001-abcd.parquet": parquet}, "f" * 40)
    spec = {"cache": "prompts-cache", "limit": 0, "pickapic_test_unique": "hub", "parti": None, "hpdv2": None}
    spec["pickapic"] = {"repo": "some/mirror", "revision": "main", "cache": "pickapic-cache"}
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    command = [sys.executable, "-m", "inpo_bench", "prompts", "--name", "pickapic_test_unique", "--out", "p.csv"]
    with HubStandIn({"some/mirror": repo}) as hub:
        result = subprocess.run(
            [*command, "--spec", json.dumps(spec)],
            cwd=tmp_path,
            env={**env, "HF_ENDPOINT": hub.url},
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert len(frame) == 500 and frame.prompt.iloc[7] == "a photo of a cat number 7"
    lock = json.loads((tmp_path / "pickapic-cache" / "pickapic.lock.json").read_text())
    assert lock["refs"] == {"some/mirror@main": "f" * 40}
    assert list(lock["sources"]["some/mirror@" + "f" * 40 + ":test_unique"]["shards"]) == [
        "data/test_unique-00000-of-00001-abcd.parquet"
    ]
