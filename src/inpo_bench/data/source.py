"""Where the Pick-a-Pic v2 shards come from, and proof that they are the same bytes every time.

A source is a hub dataset repository at a revision (config `data.pickapic.repo`, `data.pickapic.revision`) or a
list of local shards (`data.pickapic.shards`). The first run that resolves a source writes a lock file
(`<data.pickapic.cache>/pickapic.lock.json`): the commit a branch name resolved to, the split's shard listing as the
hub gave it, and for every shard read its name, byte size, SHA-256 and row count. prepare.json carries the same
record (the toy world's shards, which its own DAG writes, are recorded there but not locked). Every later run reads
the lock first:
- a branch name keeps the commit first resolved (delete the lock, or set `revision` to a commit, to move on), and a
  source whose shards the lock already lists needs no hub call at all (so an offline cluster node can prepare from
  a cache filled elsewhere);
- each shard is hashed before its rows are read, and one whose bytes differ from the record stops the job, naming
  the shard; a downloaded shard is also checked against the SHA-256 the hub lists for it.

An unreachable, removed or gated repository stops the job with one message naming the config key, the id tried and
the known mirrors (data/pickapic_v2.json), before any download.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..runtime import sha256, write_json

LOCK_NAME = "pickapic.lock.json"
COMMIT = re.compile(r"[0-9a-f]{40}")


@cache
def manifest() -> dict[str, Any]:
    """What is known of Pick-a-Pic v2: split sizes, columns, the original repository and its mirrors."""
    return json.loads(Path(__file__).with_name("pickapic_v2.json").read_text())


def parquet_mirrors() -> list[str]:
    return [m["repo"] for m in manifest()["mirrors"] if m["layout"].startswith("parquet")]


class Lock:
    """The lock file: `refs` (repo@revision -> commit) and `sources` (source key -> its listing and shards).

    Jobs that share a cache (an SD1.5 and an SDXL run, a prompt set read from the mirror beside the training data)
    read and write it at the same time: every change is a read-modify-write under a file lock beside it, so no
    job's record is lost and the first commit a branch resolves to is the one every job uses."""

    def __init__(self, path: str | Path) -> None:
        from filelock import FileLock

        self.path = Path(path)
        self.guard = FileLock(str(self.path) + ".lock")

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except json.JSONDecodeError as error:
            message = f"{self.path}: not a valid lock file ({error}); delete it to resolve the source anew"
            raise DataError(message) from None
        return {"refs": {}, "sources": {}, **data}

    @contextmanager
    def editing(self) -> Iterator[dict[str, Any]]:
        """The lock's current content, written back when the block ends, with no other job in between."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.guard:
            data = self.read()
            yield data
            write_json(self.path, data)


def recorded_source(data: dict[str, Any], key: str) -> dict[str, Any]:
    return data["sources"].setdefault(key, {"shards": {}})


@dataclass
class Shard:
    name: str  # the repository path (hub) or the file's absolute path (local)
    bytes: int | None = None  # as listed by the hub
    hub_sha256: str | None = None


@dataclass
class Source:
    """A resolved source: its identity, its shards in reading order and the lock that records them."""

    kind: str  # "hub" or "local"
    split: str
    shards: list[Shard]
    lock: Lock | None  # None: shards written by this DAG (the toy world), recorded but never checked
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    cache: Path | None = None
    read: list[dict[str, Any]] = field(default_factory=list)  # the record of every shard verified so far

    @property
    def key(self) -> str:
        return f"{self.repo}@{self.commit}:{self.split}" if self.kind == "hub" else f"local:{self.split}"

    def record(self) -> dict[str, Any]:
        """What prepare.json says of the source; `data_sha256` identifies the bytes read, shard by shard in order."""
        known = manifest()["splits"].get(self.split, {})
        combined = hashlib.sha256("".join(entry["sha256"] for entry in self.read).encode()).hexdigest()
        return {
            "kind": self.kind,
            "repo": self.repo,
            "revision": self.revision,
            "commit": self.commit,
            "split": self.split,
            "lock": str(self.lock.path) if self.lock else None,
            "shards_listed": len(self.shards),
            "shards": self.read,
            "data_sha256": combined,
            "card_rows": known.get("rows"),
        }

    def paths(self) -> Iterator[Path]:
        """Each shard as a verified local file, fetched (hub) when its turn comes; each recorded in the lock as soon
        as it is verified, so a killed job keeps the record of the shards it read."""
        for shard in self.shards:
            path = self._local(shard)
            entry = measure(path, shard)  # hashing a large shard takes a while: outside the file lock
            if self.lock is None:
                check(entry, path, shard, None, None)
            else:
                with self.lock.editing() as data:
                    check(entry, path, shard, recorded_source(data, self.key)["shards"], self.lock.path)
            self.read.append(entry)
            yield path

    def _local(self, shard: Shard) -> Path:
        if self.kind == "local":
            return Path(shard.name)
        target = self.cache / shard.name  # type: ignore[operator]
        if target.is_file():  # fetched by an earlier run; verified below like a fresh download
            return target
        from huggingface_hub import hf_hub_download

        try:
            return Path(
                hf_hub_download(self.repo, shard.name, repo_type="dataset", revision=self.commit, local_dir=self.cache)
            )
        except Exception as error:
            raise hub_error(self.repo, self.commit, error, what=f"download {shard.name} of") from None


def measure(path: Path, shard: Shard) -> dict[str, Any]:
    """A shard's name, size, SHA-256 and row count."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path}: shard not found")
    entry = {"name": shard.name, "bytes": path.stat().st_size, "sha256": sha256(path)}
    try:
        entry["rows"] = pq.ParquetFile(path).metadata.num_rows
    except Exception as error:
        raise DataError(f"{path}: not a readable parquet file ({error})") from None
    return entry


def check(
    entry: dict[str, Any], path: Path, shard: Shard, recorded: dict[str, Any] | None, lock_path: Path | None
) -> None:
    """Compare a measured shard with the lock's record and the hub's listing; record it when new."""
    before = (recorded or {}).get(shard.name)
    if before is not None and (before["sha256"], before["bytes"]) != (entry["sha256"], entry["bytes"]):
        raise DataError(
            f"{path}: shard {shard.name} changed since it was first read (SHA-256 {entry['sha256']}, {entry['bytes']} "
            f"bytes; recorded {before['sha256']}, {before['bytes']} bytes in {lock_path}). Restore the original "
            "bytes (delete a downloaded shard to fetch it again), or remove its entry from the lock if the change is "
            "intended."
        )
    if shard.hub_sha256 is not None and entry["sha256"] != shard.hub_sha256:
        raise DataError(
            f"{path}: its SHA-256 {entry['sha256']} is not the {shard.hub_sha256} the hub lists for {shard.name} "
            "(a partial or altered download); delete the file so the next run fetches it again"
        )
    if recorded is not None:
        recorded[shard.name] = {k: entry[k] for k in ("bytes", "sha256", "rows")}


def verify(path: Path, shard: Shard, recorded: dict[str, Any] | None, lock_path: Path | None) -> dict[str, Any]:
    """measure() then check(): the shard's entry, recorded in `recorded` when new."""
    entry = measure(path, shard)
    check(entry, path, shard, recorded, lock_path)
    return entry


def local_source(shards: list[str], split: str, lock_path: str | Path | None) -> Source:
    """Local shards (`lock_path` None: written by this DAG, not locked), each checked to exist before any work."""
    paths = [Path(s).resolve() for s in shards]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"data.pickapic.shards: shard(s) not found: {missing}")
    return Source("local", split, [Shard(str(p)) for p in paths], Lock(lock_path) if lock_path else None)


def hub_source(repo: str, revision: str, split: str, max_shards: int, cache_dir: str | Path) -> Source:
    """Resolve `repo` at `revision` to a commit and list the split's shards: from the lock when it has them (no hub
    call), else from the hub (recorded in the lock, under its file lock, so concurrent jobs agree on the commit).
    When a listed shard is not in the cache yet, the repository is checked up front, so that a removed one stops
    the job before it reads any shard. Any hub failure is one DataError naming the config key."""
    cache_dir = Path(cache_dir)
    lock = Lock(cache_dir / LOCK_NAME)
    with lock.editing() as data:
        commit = revision if COMMIT.fullmatch(revision) else data["refs"].get(f"{repo}@{revision}")
        listing = recorded_source(data, f"{repo}@{commit}:{split}").get("listing") if commit else None
        if listing is None:
            commit, listing = _ask_hub(repo, revision, commit, split)
            data["refs"].setdefault(f"{repo}@{revision}", commit)
            recorded_source(data, f"{repo}@{commit}:{split}")["listing"] = listing
            asked = True
        else:
            asked = False
    shards = [Shard(item["name"], item["bytes"], item["sha256"]) for item in listing[: max_shards or None]]
    missing = [s.name for s in shards if not (cache_dir / repo / s.name).is_file()]
    if missing and not asked:
        _reachable(repo, commit)
    return Source("hub", split, shards, lock, repo, revision, commit, cache_dir / repo)


def _reachable(repo: str, commit: str) -> None:
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(repo, revision=commit)
    except Exception as error:
        raise hub_error(repo, commit, error, what="fetch the shards missing from the cache of") from None


def _ask_hub(repo: str, revision: str, commit: str | None, split: str) -> tuple[str, list[dict[str, Any]]]:
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        commit = commit or api.dataset_info(repo, revision=revision).sha
        files = api.list_repo_tree(repo, "data", revision=commit, repo_type="dataset")
        listing = [
            {"name": f.path, "bytes": f.size, "sha256": f.lfs.sha256 if f.lfs else None}
            for f in files
            if getattr(f, "size", None) is not None and _of_split(f.path, split)
        ]
    except Exception as error:
        raise hub_error(repo, revision, error) from None
    if not listing:
        raise DataError(
            f"data.pickapic.repo: the hub dataset {repo!r} at {commit} has no data/{split}-*.parquet shards; is it a "
            f"parquet copy of Pick-a-Pic v2? Known mirrors: {', '.join(parquet_mirrors())}"
        )
    return commit, sorted(listing, key=lambda item: item["name"])


def _of_split(path: str, split: str) -> bool:
    return path.startswith(f"data/{split}-") and path.endswith(".parquet")


def data_identity(prepare_json: str | Path) -> dict[str, Any] | None:
    """The training data's source in a few fields (for train.json and the models table), from prepare.json."""
    path = Path(prepare_json)
    if not path.is_file():
        return None
    source = json.loads(path.read_text()).get("source") or {}
    keys = ("kind", "repo", "revision", "commit", "split", "shards_listed", "data_sha256")
    return {key: source.get(key) for key in keys}


def hub_error(repo: str | None, revision: str | None, error: Exception, what: str = "read") -> DataError:
    """One message for every way a hub dataset cannot be read: which key, which id, what to do."""
    from huggingface_hub import errors

    key = "data.pickapic.repo"
    if isinstance(error, errors.GatedRepoError):
        reason = "it is gated: accept its terms on the hub page and log in (`hf auth login`)"
    elif isinstance(error, errors.RepositoryNotFoundError):
        reason = "the hub has no such dataset (404: removed, renamed or private)"
    elif isinstance(error, errors.RevisionNotFoundError):
        key, reason = "data.pickapic.revision", f"it has no revision {revision!r}"
    elif isinstance(error, errors.OfflineModeIsEnabled):
        reason = "HF_HUB_OFFLINE is set and the lock file does not list this source's shards yet"
    else:
        reason = f"the hub could not be reached or answered {type(error).__name__}: {error}"
    original = manifest()["original"]["repo"]
    return DataError(
        f"{key}: cannot {what} the hub dataset {repo!r} at revision {revision!r}: {reason}. Pick-a-Pic v2's original "
        f"{original} has answered 404 since 2025-04-30; known parquet mirrors: {', '.join(parquet_mirrors())}. Set "
        "data.pickapic.repo (and revision) to one of them, or list local shards in data.pickapic.shards."
    )
