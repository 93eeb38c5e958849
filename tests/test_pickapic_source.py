"""Where Pick-a-Pic shards come from (data/source.py): a hub mirror behind a local stand-in of the hub's HTTP API
(tests/hub_standin.py; the real huggingface_hub client, nothing leaves the machine), a removed repository, the lock
that pins the revision and every shard's SHA-256, and a changed byte stopping the next run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from inpo_bench.data.source import LOCK_NAME, Shard, local_source, manifest, verify
from inpo_bench.errors import DataError
from tests.hub_standin import HubStandIn, Repo
from tests.test_pickapic import pickapic_frame, write_shard

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MIRROR = "mirror-org/pick-a-pic-v2"


@pytest.fixture()
def shards(tmp_path) -> dict[str, bytes]:
    """Two train shards (a tie and a corrupt pair in the first), a test shard and a README, as the mirror lays
    them out."""
    first = write_shard(tmp_path / "a.parquet", pickapic_frame([1.0, 0.5, 0.0, 1.0], corrupt_rows={2}))
    second = write_shard(tmp_path / "b.parquet", pickapic_frame([0.0, 1.0, 1.0]))
    return {
        "data/train-00000-of-00002-0a1b.parquet": first.read_bytes(),
        "data/train-00001-of-00002-2c3d.parquet": second.read_bytes(),
        "data/test-00000-of-00001-4e5f.parquet": second.read_bytes(),
        "README.md": b"# a mirror\n",
    }


def prepare(workdir: Path, hub: HubStandIn | None, *args: str, offline: bool = False) -> subprocess.CompletedProcess:
    """`inpo-bench prepare` as the rule runs it, in a subprocess whose hub endpoint is the stand-in."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1" if offline else "0", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env["HF_ENDPOINT"] = hub.url if hub else "http://127.0.0.1:9"  # port 9: nothing listens
    command = [sys.executable, "-m", "inpo_bench", "prepare", "--cache", "cache", "--out", "data/pairs.parquet"]
    command += ["--report", "data/prepare.json", "--label-source", "pickapic_v2", *args]
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)


def api_calls(hub: HubStandIn) -> list[str]:
    return [r for r in hub.requests if "/api/datasets/" in r]


def test_a_mirror_is_resolved_pinned_recorded_and_read_again_without_the_hub(tmp_path, shards):
    with HubStandIn({MIRROR: Repo(shards, COMMIT)}) as hub:
        first = prepare(tmp_path, hub, "--repo", MIRROR, "--revision", "main")
        assert first.returncode == 0, first.stderr
        report = json.loads((tmp_path / "data" / "prepare.json").read_text())
        source = report["source"]
        assert (source["kind"], source["repo"], source["revision"], source["commit"]) == ("hub", MIRROR, "main", COMMIT)
        assert source["split"] == "train" and source["shards_listed"] == 2 and source["card_rows"] == 959040
        names = [s["name"] for s in source["shards"]]
        assert names == ["data/train-00000-of-00002-0a1b.parquet", "data/train-00001-of-00002-2c3d.parquet"]
        for entry in source["shards"]:
            import hashlib

            data = shards[entry["name"]]
            assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert [s["rows"] for s in source["shards"]] == [4, 3]
        assert report["read"] == 7 and report["ties_removed"] == 1 and report["corrupt_dropped"] == 1
        assert report["kept"] == 5
        pairs = pd.read_parquet(tmp_path / "data" / "pairs.parquet")
        lock = json.loads((tmp_path / "cache" / LOCK_NAME).read_text())
        assert lock["refs"] == {f"{MIRROR}@main": COMMIT}
        recorded = lock["sources"][f"{MIRROR}@{COMMIT}:train"]["shards"]
        assert {k: v["sha256"] for k, v in recorded.items()} == {s["name"]: s["sha256"] for s in source["shards"]}

        # a later run needs no hub call: the lock pins main to the commit and lists the shards; the cache has them
        before = len(hub.requests)
        again = prepare(tmp_path, hub, "--repo", MIRROR, "--revision", "main")
        assert again.returncode == 0, again.stderr
        assert hub.requests[before:] == []
        assert pd.read_parquet(tmp_path / "data" / "pairs.parquet").equals(pairs)

    # and so does an offline node (HF_HUB_OFFLINE=1, no server at all)
    offline = prepare(tmp_path, None, "--repo", MIRROR, "--revision", "main", offline=True)
    assert offline.returncode == 0, offline.stderr
    assert json.loads((tmp_path / "data" / "prepare.json").read_text())["source"] == source


def test_a_changed_byte_in_a_recorded_shard_stops_the_next_run(tmp_path, shards):
    with HubStandIn({MIRROR: Repo(shards, COMMIT)}) as hub:
        assert prepare(tmp_path, hub, "--repo", MIRROR).returncode == 0
        pairs_before = (tmp_path / "data" / "pairs.parquet").read_bytes()
        cached = tmp_path / "cache" / MIRROR / "data" / "train-00001-of-00002-2c3d.parquet"
        data = bytearray(cached.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit in the middle of the second shard
        cached.write_bytes(bytes(data))
        result = prepare(tmp_path, hub, "--repo", MIRROR)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("inpo-bench prepare: error:") and "train-00001-of-00002-2c3d.parquet" in message
    assert "changed since it was first read" in message and LOCK_NAME in message
    assert (tmp_path / "data" / "pairs.parquet").read_bytes() == pairs_before  # the earlier result is untouched
    assert not (tmp_path / "data" / "pairs.parquet.tmp").exists()


@pytest.mark.parametrize(
    ("repos", "revision", "key", "reason"),
    [
        ({}, "main", "data.pickapic.repo", "no such dataset (404"),
        ({MIRROR: "gated"}, "main", "data.pickapic.repo", "gated"),
        ({MIRROR: "open"}, "v9", "data.pickapic.revision", "no revision 'v9'"),
    ],
)
def test_an_unreadable_repository_is_one_message_naming_the_key_and_the_mirrors(
    tmp_path, shards, repos, revision, key, reason
):
    stand_in = {name: Repo(shards, COMMIT, gated=kind == "gated") for name, kind in repos.items()}
    with HubStandIn(stand_in) as hub:
        result = prepare(tmp_path, hub, "--repo", MIRROR, "--revision", revision)
        assert [r for r in hub.requests if "/resolve/" in r] == []  # nothing was downloaded
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and message.startswith(f"inpo-bench prepare: error: {key}:")
    assert repr(MIRROR) in message and reason in message
    assert "yuvalkirstain/pickapic_v2" in message and "liuhuohuo2/pick-a-pic-v2" in message
    assert not (tmp_path / "data").exists()


def test_an_unreachable_hub_is_the_same_message(tmp_path):
    result = prepare(tmp_path, None, "--repo", MIRROR)  # nothing listens on the endpoint's port
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "data.pickapic.repo: cannot read the hub dataset" in result.stderr
    assert "could not be reached" in result.stderr


def test_a_shard_the_hub_lists_with_another_hash_is_refused(tmp_path, shards):
    path = tmp_path / "shard.parquet"
    path.write_bytes(shards["data/test-00000-of-00001-4e5f.parquet"])
    with pytest.raises(DataError, match=r"not the 0{64} the hub lists for data/x\.parquet"):
        verify(path, Shard("data/x.parquet", 10, "0" * 64), {}, None)


def test_local_shards_are_locked_too(tmp_path, shards):
    path = tmp_path / "mine.parquet"
    path.write_bytes(shards["data/train-00000-of-00002-0a1b.parquet"])
    lock = tmp_path / "cache" / LOCK_NAME
    first = local_source([str(path)], "train", lock)
    assert list(first.paths()) == [path.resolve()] and first.record()["shards"][0]["rows"] == 4
    path.write_bytes(shards["data/train-00001-of-00002-2c3d.parquet"])  # another file under the same name
    with pytest.raises(DataError, match=r"mine.parquet changed since it was first read"):
        list(local_source([str(path)], "train", lock).paths())
    # unlocked (the toy world's own shards): recorded, never checked
    assert len(list(local_source([str(path)], "train", None).paths())) == 1
    with pytest.raises(DataError, match=r"data.pickapic.shards: shard\(s\) not found"):
        local_source([str(tmp_path / "missing.parquet")], "train", lock)


def test_the_manifest_holds_the_cards_facts():
    splits = manifest()["splits"]
    assert {name: s["rows"] for name, s in splits.items()} == {
        "train": 959040,
        "validation": 20596,
        "test": 20716,
        "validation_unique": 500,
        "test_unique": 500,
    }
    assert splits["train"]["shards"] == 645 and len(manifest()["columns"]) == 18
    from inpo_bench.toyworld.preferences import PICKAPIC_SCHEMA

    assert manifest()["columns"] == PICKAPIC_SCHEMA.names  # the toy world writes the card's columns


def _verify_all(args):
    paths, lock = args
    return len(list(local_source(paths, "train", lock).paths()))


def test_jobs_sharing_a_lock_keep_each_others_records(tmp_path, shards):
    """Two processes recording different shards into one lock at the same time: every record survives."""
    from concurrent.futures import ProcessPoolExecutor

    data = shards["data/train-00000-of-00002-0a1b.parquet"]
    groups = []
    for job in range(2):
        paths = []
        for i in range(6):
            path = tmp_path / f"job{job}-{i}.parquet"
            path.write_bytes(data)
            paths.append(str(path))
        groups.append(paths)
    lock = tmp_path / "cache" / LOCK_NAME
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(_verify_all, [(g, lock) for g in groups])) == [6, 6]
    recorded = json.loads(lock.read_text())["sources"]["local:train"]["shards"]
    assert sorted(recorded) == sorted(str(Path(p).resolve()) for g in groups for p in g)


def test_a_removed_repository_stops_before_any_shard_when_the_cache_lacks_one(tmp_path, shards):
    with HubStandIn({MIRROR: Repo(shards, COMMIT)}) as hub:
        assert prepare(tmp_path, hub, "--repo", MIRROR).returncode == 0
    pairs_before = (tmp_path / "data" / "pairs.parquet").read_bytes()
    (tmp_path / "cache" / MIRROR / "data" / "train-00001-of-00002-2c3d.parquet").unlink()
    with HubStandIn({}) as gone:  # the repository has been removed since
        result = prepare(tmp_path, gone, "--repo", MIRROR)
    assert result.returncode == 1 and "the hub has no such dataset (404" in result.stderr
    assert "fetch the shards missing from the cache" in result.stderr
    assert (tmp_path / "data" / "pairs.parquet").read_bytes() == pairs_before
