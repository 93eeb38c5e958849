"""A local stand-in of the Hugging Face Hub's HTTP API for dataset repositories, on loopback, so the real
huggingface_hub client code path (revision lookup, tree listing, file download) runs in tests with nothing
leaving the machine: point HF_ENDPOINT at `HubStandIn.url` (and unset HF_HUB_OFFLINE) in a subprocess.

It answers what huggingface_hub 2.x asks of a dataset repository:
- GET  /api/datasets/{repo}/revision/{rev}        the commit a revision resolves to
- GET  /api/datasets/{repo}/tree/{rev}/{folder}   the files of a folder, with size and LFS SHA-256
- HEAD /datasets/{repo}/resolve/{rev}/{path}      commit, ETag and size headers; GET: the bytes
and, as the hub does, 404 with `X-Error-Code: RepoNotFound` for a repository it does not hold (a removed
dataset), `RevisionNotFound` for an unknown revision and 403 `GatedRepo` for a gated one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class Repo:
    """A dataset repository at one commit: repo path -> bytes."""

    def __init__(self, files: dict[str, bytes], commit: str, branches: tuple[str, ...] = ("main",), gated=False):
        self.files, self.commit, self.branches, self.gated = dict(files), commit, branches, gated

    def resolves(self, revision: str) -> bool:
        return revision == self.commit or revision in self.branches


class HubStandIn:
    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.requests: list[str] = []  # "METHOD path" of every request, for tests that count calls
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def repo_from_folder(folder: Path, commit: str) -> Repo:
    """Every file under `folder`, by its path relative to it."""
    return Repo({p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}, commit)


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _error(self, status: int, code: str) -> None:
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("Content-Type", "application/json")
        payload = json.dumps({"error": code}).encode()
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(payload)

    def _json(self, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _repo(self, parts: list[str]) -> tuple[str, Repo | None]:
        name = "/".join(parts[:2])
        return name, self.hub.repos.get(name)

    def _serve(self, body: bool) -> None:
        path = unquote(urlparse(self.path).path)
        self.hub.requests.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "datasets"]:
            name, repo = self._repo(parts[2:])
            rest = parts[4:]
        elif parts[:1] == ["datasets"] and len(parts) > 4 and parts[3] == "resolve":
            name, repo = self._repo(parts[1:])
            rest = parts[3:]
        else:
            return self._error(404, "EntryNotFound")
        if repo is None:
            return self._error(404, "RepoNotFound")
        if repo.gated:
            return self._error(403, "GatedRepo")
        kind, revision, inner = rest[0], rest[1] if len(rest) > 1 else "main", "/".join(rest[2:])
        if not repo.resolves(revision):
            return self._error(404, "RevisionNotFound")
        if kind == "revision":
            return self._json({"id": name, "sha": repo.commit, "private": False, "siblings": []})
        if kind == "tree":
            prefix = inner.rstrip("/") + "/" if inner else ""
            return self._json([_entry(p, data) for p, data in sorted(repo.files.items()) if _in_folder(p, prefix)])
        if kind == "resolve" and inner in repo.files:
            data = repo.files[inner]
            digest = hashlib.sha256(data).hexdigest()
            self.send_response(200)
            self.send_header("X-Repo-Commit", repo.commit)
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if body:
                self.wfile.write(data)
            return None
        return self._error(404, "EntryNotFound")


def _in_folder(path: str, prefix: str) -> bool:
    return path.startswith(prefix) and "/" not in path[len(prefix) :]


def _entry(path: str, data: bytes) -> dict[str, object]:
    return {
        "type": "file",
        "path": path,
        "size": len(data),
        "oid": hashlib.sha1(data).hexdigest(),
        "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134},
    }
