"""Process-level settings every stage shares: threads, device, provenance records, atomic file writes."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

COLLECTIVE_TIMEOUT_MINUTES = 60
PACKAGES = ("inpo-bench", "torch", "diffusers", "transformers", "accelerate", "numpy", "pandas", "pillow")


def set_threads(threads: int) -> None:
    """Pin intra-op parallelism; two 2-thread jobs on 2 cores stall each other far worse than they gain."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return requested


def make_accelerator(requested: str = "auto", mixed_precision: str = "no") -> Any:
    """The accelerate handle of a training job: one process, or one per GPU / CPU rank under
    `accelerate launch` (which sets the distributed environment); its .device is this process's device.
    Mixed precision applies on CUDA only (autocast on a CPU would slow the toy world down for nothing)."""
    from datetime import timedelta

    from accelerate import Accelerator, InitProcessGroupKwargs

    device = pick_device(requested)
    # the other ranks wait while rank 0 measures progress (an SDXL measurement takes minutes): a collective
    # timeout longer than the default ten minutes
    waiting = InitProcessGroupKwargs(timeout=timedelta(minutes=COLLECTIVE_TIMEOUT_MINUTES))
    return Accelerator(
        cpu=device == "cpu",
        mixed_precision=mixed_precision if device != "cpu" else "no",
        kwargs_handlers=[waiting],
    )


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def provenance(**fields: Any) -> dict[str, Any]:
    """What every output records about how it was made: its fields, the package versions, the code (git commit)
    and the machine (accelerators, numerics flags, CPU instruction set)."""
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    return {**fields, "versions": versions(), "threads": threads, "code": code_version(), "machine": machine()}


@cache
def code_version() -> dict[str, Any]:
    """The git commit of the checkout this package runs from and whether its tracked files differ from it; outside a
    checkout (an installed package), the package version alone."""
    root = Path(__file__).resolve().parents[2]
    record: dict[str, Any] = {"package": _package_version()}
    if not (root / ".git").exists():
        return {**record, "commit": None, "dirty": None}
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain"))  # untracked files count: a new module imports as well
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        return {**record, "commit": None, "dirty": None}
    return {**record, "commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def _package_version() -> str | None:
    try:
        return metadata.version("inpo-bench")
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """The hardware and numerics a job ran with. Torch's part only when this process already imported torch (light
    stages do not), so recording provenance never costs a torch import."""
    record: dict[str, Any] = {"platform": platform.platform(), "cpu": _cpu_model()}
    torch = sys.modules.get("torch")
    if torch is None:
        return record
    record["cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the kernels' instruction set (AVX512, ...)
    record["cuda"] = torch.version.cuda
    record["gpu"], record["gpus_visible"] = None, []
    if torch.cuda.is_available():
        # the GPU this process computed on (a job's processes: train.json's `processes`), and all it could see
        record["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        record["gpus_visible"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        record["cudnn"] = torch.backends.cudnn.version()
        record["tf32"] = {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }
    return record


@cache
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MB blocks (checkpoints can be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: str | Path) -> list[Any]:
    """A cheap stand-in for a file's content (path, size, modification time): it changes when the file is rewritten."""
    stat = Path(path).stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def fingerprint(**parts: Any) -> str:
    """A short hash of a run's settings and inputs, to tell a checkpoint of this run from one of an earlier config."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    """Write atomically, so a killed job never leaves a half-written JSON behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    tmp.replace(path)


def write_csv(path: str | Path, frame: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def eta(done: int, left: int, seconds: float, unit: str = "steps") -> str:
    """'<rate> <unit>/s, ETA [<days>d ]HH:MM:SS' from the work done in `seconds` and the work left."""
    rate = done / max(seconds, 1e-9)
    remaining = left / rate if rate > 0 else float("inf")
    clock = time.strftime("%H:%M:%S", time.gmtime(remaining)) if remaining < 8.64e6 else "?"
    days = f"{int(remaining // 86400)}d " if 86400 <= remaining < 8.64e6 else ""
    return f"{rate:.3g} {unit}/s, ETA {days}{clock}"


class Progress:
    """Progress of a long loop with rate and ETA: a tqdm bar on a terminal, else one plain line every `every`
    seconds (job logs are files, where a bar's carriage returns turn into one unreadable line)."""

    def __init__(self, what: str, total: int, unit: str = "items", every: float = 60.0, done: int = 0) -> None:
        self.what, self.total, self.unit, self.every = what, total, unit, every
        self.done = self.start_done = done
        self.start = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc=what, unit=unit, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        rate_eta = eta(self.done - self.start_done, self.total - self.done, now - self.start, self.unit)
        return f"{self.what}: {self.done}/{self.total} {self.unit} ({rate_eta})"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)
