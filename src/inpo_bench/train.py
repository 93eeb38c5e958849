"""One training loop for every method: accumulation, warmup, clipping, checkpoints, resume, a metrics log.

Read top to bottom: build the optimiser, resume from the newest checkpoint in the scratch directory if there is
one, then for each optimiser step draw `grad_accum` micro-batches from the objective with a seeded generator,
backpropagate, clip, step. Checkpoints carry the weights, optimiser, LR schedule, generator state and the log
so far, so a resumed run draws the same batches and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from torch import nn

from .errors import TrainingDivergedError

LOG_COLUMNS = ["step", "loss", "implicit_acc", "model_mse", "ref_mse", "lr", "seconds"]


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    warmup_steps: int = 0
    lr_schedule: str = "constant_with_warmup"
    grad_accum: int = 1
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    adam_beta2: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 0  # 0: only at the end of the run
    keep_checkpoints: int = 2
    seed: int = 0

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], seed: int) -> TrainSettings:
        fields = cls.__dataclass_fields__
        return cls(seed=seed, **{k: v for k, v in cfg.items() if k in fields and k != "seed"})


def make_optimizer(params: list[nn.Parameter], settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=settings.lr, betas=(0.9, settings.adam_beta2), weight_decay=settings.weight_decay, eps=1e-8
        )
    if settings.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        # the official SDXL setting: fixed learning rate, no parameter scaling, update clipping at 1
        return Adafactor(
            params,
            lr=settings.lr,
            weight_decay=settings.weight_decay,
            clip_threshold=1.0,
            scale_parameter=False,
            relative_step=False,
            warmup_init=False,
        )
    raise ValueError(f"unknown optimizer {settings.optimizer!r}; use 'adamw' or 'adafactor'")


def _checkpoints(scratch: Path) -> list[Path]:
    found = [p for p in scratch.glob("step-*") if p.is_dir() and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def train(
    objective: nn.Module,
    settings: TrainSettings,
    scratch_dir: str | Path,
    accelerator: Accelerator | None = None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    eval_every: int = 0,
    fingerprint: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train objective.trainable_modules() in place; return (training log, evaluation log).

    `evaluate(step)` measures the model on the main process before training and every `eval_every` steps
    (and at the end); its rows are checkpointed with the rest, so a resumed run keeps the whole curve.
    `fingerprint` identifies the run's settings and inputs: a checkpoint written under another fingerprint (the
    config changed since) is discarded instead of resumed.
    """
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    scratch = Path(scratch_dir)
    trainable = objective.trainable_modules()
    for module in trainable.values():
        module.train()
    params = [p for m in trainable.values() for p in m.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, settings)
    scheduler = get_scheduler(
        settings.lr_schedule, optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=settings.steps
    )
    # each process draws its own micro-batches; seeds differ per rank so that data parallelism adds data
    generator = torch.Generator().manual_seed(settings.seed * 1000 + accelerator.process_index)

    start, rows, evals = 0, [], []
    existing = _checkpoints(scratch)
    if existing and _fingerprint(existing[-1]) != fingerprint:
        accelerator.print(f"ignoring checkpoints in {scratch}: written for other settings or inputs")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for old in existing:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        existing = []
    if existing:
        state = torch.load(existing[-1] / "state.pt", map_location="cpu", weights_only=True)
        for name, module in trainable.items():
            module.load_state_dict(state["modules"][name], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generators"][accelerator.process_index])
        start, rows, evals = state["step"], state["log"], state["evals"]
        accelerator.print(f"resumed from {existing[-1]} at step {start}")

    def measure(step: int) -> None:
        if evaluate is not None and accelerator.is_main_process:
            evals.append(evaluate(step))
        accelerator.wait_for_everyone()

    if start == 0:
        measure(0)
    wrapped, optimizer = accelerator.prepare(objective, optimizer)
    elapsed = rows[-1]["seconds"] if rows else 0.0
    for step in range(start, settings.steps):
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        total = 0.0
        for micro in range(settings.grad_accum):
            batch = {
                k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in objective.draw(generator).items()
            }
            sync = micro == settings.grad_accum - 1
            with accelerator.no_sync(wrapped) if not sync else nullcontext():
                with accelerator.autocast():
                    loss, extra = wrapped(**batch)
                accelerator.backward(loss / settings.grad_accum)
            total += float(loss.detach()) / settings.grad_accum
            for k, v in extra.items():
                metrics[k] = metrics.get(k, 0.0) + v / settings.grad_accum
        grad_norm = accelerator.clip_grad_norm_(params, settings.grad_clip) if settings.grad_clip > 0 else None
        total = _mean_over_processes(accelerator, total)
        if not math.isfinite(total) or (grad_norm is not None and not torch.isfinite(torch.as_tensor(grad_norm))):
            raise TrainingDivergedError(
                f"step {step + 1}: loss {total} / grad norm {grad_norm} is not finite; lower the learning rate "
                "or beta. No model was written."
            )
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed += time.perf_counter() - t0
        row = {
            "step": step + 1,
            "loss": total,
            "implicit_acc": math.nan,
            "model_mse": math.nan,
            "ref_mse": math.nan,
            "lr": lr,
            "seconds": round(elapsed, 3),
        }
        row.update({k: _mean_over_processes(accelerator, v) for k, v in metrics.items()})
        rows.append(row)
        if (step + 1) % max(1, settings.steps // 20) == 0 or step + 1 == settings.steps:
            accelerator.print(
                f"step {step + 1}/{settings.steps} loss {total:.4f} lr {lr:.3g} {elapsed:.0f} s", flush=True
            )
        if eval_every and ((step + 1) % eval_every == 0 or step + 1 == settings.steps):
            measure(step + 1)
        due = settings.checkpoint_every and (step + 1) % settings.checkpoint_every == 0
        if due and step + 1 < settings.steps:
            _save_checkpoint(
                fingerprint,
                scratch,
                step + 1,
                trainable,
                optimizer,
                scheduler,
                generator,
                rows,
                evals,
                accelerator,
                settings.keep_checkpoints,
            )
    for module in trainable.values():
        module.eval()
    extra = sorted({k for row in rows for k in row} - set(LOG_COLUMNS))  # method-specific, e.g. inversion_evals
    return pd.DataFrame(rows, columns=LOG_COLUMNS + extra), pd.DataFrame(evals)


def _save_checkpoint(
    fingerprint: str,
    scratch: Path,
    step: int,
    trainable: dict[str, nn.Module],
    optimizer: Any,
    scheduler: Any,
    generator: torch.Generator,
    rows: list[dict[str, float]],
    evals: list[dict[str, float]],
    accelerator: Accelerator,
    keep: int,
) -> None:
    generators = accelerator.gather(generator.get_state().unsqueeze(0).to(accelerator.device)).cpu()
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    target = scratch / f"step-{step:07d}"
    tmp = scratch / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step,
        "modules": {name: m.state_dict() for name, m in trainable.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generators": list(generators),
        "log": rows,
        "evals": evals,
    }
    torch.save(state, tmp / "state.pt")
    (tmp / "fingerprint").write_text(fingerprint)
    tmp.rename(target)  # a checkpoint directory appears whole or not at all
    for old in _checkpoints(scratch)[:-keep]:
        shutil.rmtree(old)
    accelerator.wait_for_everyone()


def _fingerprint(checkpoint: Path) -> str:
    path = checkpoint / "fingerprint"
    return path.read_text() if path.is_file() else ""


def clear_checkpoints(scratch_dir: str | Path) -> None:
    """Remove a finished run's checkpoints (they hold optimiser state: gigabytes at paper scale)."""
    for path in _checkpoints(Path(scratch_dir)):
        shutil.rmtree(path)


def _mean_over_processes(accelerator: Accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=accelerator.device, dtype=torch.float64)
    return float(accelerator.reduce(tensor, reduction="mean"))
