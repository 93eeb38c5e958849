"""What each model of a run is: trained here or a released checkpoint (source, load kind, the commit evaluated),
how a trained one was made (code commit, machine, precision, training data: from its train.json), and the one
sampler every model was sampled with (its steps, guidance, seeds and dtype, from sample.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

MODEL_COLUMNS = ["model", "origin", "method", "source", "load", "revision", "note"]
TRAINING_COLUMNS = ["code", "machine", "precision", "data"]
SAMPLER_KEYS = ["sampler", "eta", "steps", "cfg", "grid", "seeds", "dtype", "resolution"]


def model_table(model_files: dict[str, str | Path], labels: dict[str, dict] | None = None) -> pd.DataFrame:
    """One row per model from its model.json: a checkpoint's record, or what trained it here. `labels` gives a
    checkpoint's method and note from the config (labels only: editing them must not resolve it again)."""
    labels = labels or {}
    rows = []
    for model, path in model_files.items():
        spec = json.loads(Path(path).read_text())
        release = spec.get("checkpoint")
        if release:
            label = labels.get(model, {})
            rows.append(
                {
                    "model": model,
                    "origin": "released checkpoint",
                    "method": label.get("method", release.get("method", "")),
                    "source": release["source"] + (f"/{release['weight_name']}" if release.get("weight_name") else ""),
                    "load": release["load"],
                    "revision": release.get("revision") or "",
                    "note": label.get("note", release.get("note") or ""),
                }
            )
        else:
            base = model == "base"
            rows.append(
                {
                    "model": model,
                    "origin": "base" if base else "trained here",
                    "method": "" if base else model.split("/")[0],
                    "source": _location(spec["components"], Path(path).parent) if base else "",
                    "load": "",
                    "revision": "",
                    "note": "",
                }
            )
    for row in rows:
        row.update(training_provenance(Path(model_files[row["model"]]).with_name("train.json")))
    return pd.DataFrame(rows, columns=MODEL_COLUMNS + TRAINING_COLUMNS)


def training_provenance(train_json: Path) -> dict[str, str]:
    """The code commit (+dirty), machine, precision and data a model was trained with; empty when not trained here."""
    if not train_json.is_file():
        return dict.fromkeys(TRAINING_COLUMNS, "")
    record = json.loads(train_json.read_text())
    code = record.get("code") or {}
    commit = (code.get("commit") or "")[:12] or f"package {code.get('package') or '?'}"
    machine = record.get("machine") or {}
    gpu = machine.get("gpu")
    where = f"{record.get('processes', 1)} x {gpu}" if gpu else f"CPU {machine.get('cpu_capability') or ''}".strip()
    data = record.get("data_source") or {}
    if data.get("kind") == "hub":
        origin = f"{data['repo']}@{(data.get('commit') or '')[:12]} {data.get('split')}"
    else:
        origin = data.get("kind") or ""
    digest = (data.get("data_sha256") or "")[:12]
    return {
        "code": commit + ("+dirty" if code.get("dirty") else ""),
        "machine": where,
        "precision": record.get("mixed_precision") or "",
        "data": f"{origin} sha256 {digest}".strip() if digest else origin,
    }


def _location(location: str, model_dir: Path) -> str:
    """A component location as the user wrote it: relative to the working directory, or a hub id."""
    local = model_dir / location
    return os.path.relpath(local) if local.exists() else location


def sampler_settings(records: dict[tuple[str, str], dict]) -> dict[str, object]:
    """The sampler settings shared by every (model, prompt set) sample.json; raises if any two differ, since a
    win rate between models sampled differently (e.g. another CFG per method) compares samplers, not models."""
    settings: dict[str, object] = {}
    first = None
    for (model, promptset), record in sorted(records.items()):
        these = {k: record.get(k) for k in SAMPLER_KEYS if k in record}
        if first is None:
            first, settings = (model, promptset), these
        elif these != settings:
            changed = sorted(k for k in settings.keys() | these.keys() if settings.get(k) != these.get(k))
            raise ValueError(
                f"samples of {model} on {promptset} were drawn with other sampler settings ({', '.join(changed)}) "
                f"than {first[0]} on {first[1]}: rerun their sample jobs with one config"
            )
    return settings


def models_markdown(table: pd.DataFrame, settings: dict[str, object]) -> str:
    from .scores import frame_markdown

    sampler = ", ".join(f"{k} {v}" for k, v in settings.items())
    return frame_markdown(
        "Models",
        f"Every model sampled alike: {sampler}. Revision: the commit of a hub checkpoint that was evaluated.",
        table,
    )
