"""One training loop for every method: data order, accumulation, warmup, clipping, fp16 loss scaling, checkpoints,
resume, a metrics log.

Read top to bottom: build the optimiser, resume from the newest checkpoint in the scratch directory if there is
one, then for each optimiser step run `grad_accum` micro-batches, backpropagate, clip, step. Which examples a
micro-batch holds and every random number it draws follow from (seed, stream position) alone (data/order.py), so
a checkpoint needs no generator state: weights, optimiser, LR schedule, loss scaler, the step and the logs. A
resumed run therefore ends with the same weights as an uninterrupted one, at one process or several.

Under fp16 mixed precision (CUDA) accelerate's GradScaler skips a step whose gradients overflow and lowers its
scale: such steps are normal, counted in the log's `skipped` column, and the LR schedule advances only on applied
steps (as accelerate's prepared scheduler does in the official scripts). Training stops only when the loss itself
stays non-finite for `MAX_NONFINITE_STEPS` steps or the scale collapses below `MIN_LOSS_SCALE`. Without a scaler
(fp32, bf16) a non-finite loss or gradient norm stops training at once.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .data.order import ExampleOrder, Layout, example_generators
from .ema import WeightAverage
from .errors import TrainingDivergedError
from .runtime import eta

LOG_COLUMNS = [
    "step",
    "loss",
    "implicit_acc",
    "model_mse",
    "ref_mse",
    "winner_mse_gap",  # pair methods: mean policy-minus-reference MSE on the winners
    "loser_mse_gap",  # ... and on the losers
    "reward_margin",  # the mean logit -0.5 beta (winner gap - loser gap), TRL's rewards/margins
    "lr",
    "grad_norm",  # the total gradient norm before clipping (NaN: no clipping)
    "seconds",
    "examples_per_second",
    "examples_per_second_per_device",
    "unet_forwards",
    "skipped",
    "loss_scale",
]
# wall-clock columns: they differ between two runs of the same settings, every other column is reproducible
TIMING_COLUMNS = ["seconds", "examples_per_second", "examples_per_second_per_device"]
MAX_NONFINITE_STEPS = 5  # consecutive steps with a non-finite loss (fp16 with a loss scaler)
MIN_LOSS_SCALE = 1.0  # a GradScaler scale below this means the gradients themselves overflow fp16


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    lr: float
    examples_per_step: int | None = None  # the effective batch; None: one micro-batch per process and step
    warmup_steps: int = 0
    lr_schedule: str = "constant_with_warmup"
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    adam_beta2: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 0  # 0: only at the end of the run
    keep_checkpoints: int = 2
    ema_decay: float | None = None  # keep an EMA of the weights (ema.py), evaluate and return it; None: off
    seed: int = 0

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], seed: int) -> TrainSettings:
        fields = cls.__dataclass_fields__
        values = {k: v for k, v in cfg.items() if k in fields and k != "seed"}
        if "pairs_per_step" in cfg:
            values["examples_per_step"] = cfg["pairs_per_step"]
        return cls(seed=seed, **values)

    def layout(self, batch_size: int, processes: int) -> Layout:
        per_step = self.examples_per_step or batch_size * processes
        return Layout.for_step(per_step, batch_size, processes)


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


class UNetForwards:
    """Counts the compute of training steps in UNet forward-equivalents, by hooks on the UNets themselves, so every
    pass a method makes is counted whatever its code path: one per image a UNet sees (inversion, reference,
    ReNoise and policy passes alike), two more for its backward when that UNet trains. A backward costs about two
    forwards (one for the input gradients, one for the weight gradients), the usual accounting of training FLOPs.

    Only passes made while `active` count, so the progress evaluation's sampling stays out of the training bill.
    """

    def __init__(self, unets: list[nn.Module]) -> None:
        self.count, self.active = 0, False
        self._handles = [unet.register_forward_pre_hook(self._hook, with_kwargs=True) for unet in unets]

    def _hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not self.active:
            return
        sample = args[0] if args else kwargs["sample"]
        trains = torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters())
        self.count += int(sample.shape[0]) * (3 if trains else 1)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def training_unets(objective: nn.Module) -> list[nn.Module]:
    """The UNets an objective runs: the one that trains and, when the method keeps one, the frozen reference."""
    candidates = (objective.trainable_modules().get("unet"), getattr(objective, "reference", None))
    return [unet for unet in candidates if isinstance(unet, nn.Module)]


def _checkpoints(scratch: Path) -> list[Path]:
    found = [p for p in scratch.glob("step-*") if p.is_dir() and (p / "state.pt").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


class _MicroBatches(Dataset):
    """Item k: the stream positions, example indices and fetched examples of this process's k-th micro-batch
    from `first`."""

    def __init__(self, source: Any, order: ExampleOrder, layout: Layout, process: int, first: int, last: int) -> None:
        self.source, self.order, self.layout, self.process = source, order, layout, process
        self.first, self.last = first, last

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, Any]:
        step, micro = divmod(self.first + k, self.layout.grad_accum)
        positions = self.layout.positions(step, micro, self.process)
        indices = self.order.examples(positions)
        return positions, indices, self.source.fetch(indices)


def _identity(item: Any) -> Any:
    return item


def micro_batches(
    source: Any, seed: int, layout: Layout, process: int, start_step: int, steps: int
) -> Iterator[tuple[np.ndarray, np.ndarray, Any]]:
    """(positions, indices, fetched) of every micro-batch of this process from start_step on, fetched ahead by
    `source.workers` DataLoader workers (none: in this process)."""
    items = _MicroBatches(
        source,
        ExampleOrder(len(source), seed),
        layout,
        process,
        start_step * layout.grad_accum,
        steps * layout.grad_accum,
    )
    workers = int(getattr(source, "workers", 0))
    if not workers:
        return (items[k] for k in range(len(items)))
    loader = DataLoader(items, batch_size=None, num_workers=workers, prefetch_factor=4, collate_fn=_identity)
    return iter(loader)


@dataclass
class _Run:
    """What one training run carries from step to step (restored whole from a checkpoint)."""

    start: int = 0
    rows: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    state: dict[str, Any] | None = None  # the checkpoint resumed from, for the loss scaler's state


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
    `fingerprint` identifies the run's settings and inputs; the process count and the effective batch are added
    here. A checkpoint written under another fingerprint (the config or the GPU count changed) is discarded
    instead of resumed. With `settings.ema_decay` the modules end holding the moving average of their weights,
    and `evaluate` measures that average.
    """
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    scratch = Path(scratch_dir)
    layout = settings.layout(objective.batch_size, accelerator.num_processes)
    fingerprint = f"{fingerprint}|processes={layout.processes}|per_step={layout.per_step}"
    trainable = objective.trainable_modules()
    for module in trainable.values():
        module.train()
    params = [p for m in trainable.values() for p in m.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, settings)
    scheduler = get_scheduler(
        settings.lr_schedule, optimizer, num_warmup_steps=settings.warmup_steps, num_training_steps=settings.steps
    )
    average = WeightAverage(trainable, settings.ema_decay) if settings.ema_decay is not None else None
    run = _resume(scratch, fingerprint, accelerator, trainable, optimizer, scheduler, average)

    def measure(step: int) -> None:
        if evaluate is not None and accelerator.is_main_process:
            with average.applied() if average is not None else nullcontext():
                run.evals.append(evaluate(step))
        accelerator.wait_for_everyone()

    if run.start == 0:
        measure(0)
    wrapped, optimizer = accelerator.prepare(objective, optimizer)
    scaler = accelerator.scaler  # a GradScaler under fp16 on CUDA, else None
    if scaler is not None and run.state is not None and run.state.get("scaler"):
        scaler.load_state_dict(run.state["scaler"])
    accelerator.print(
        f"{layout.per_step} examples per step = {layout.batch_size} per micro-batch x {layout.grad_accum} "
        f"accumulated x {layout.processes} process(es)"
    )
    elapsed = run.rows[-1]["seconds"] if run.rows else 0.0
    forwards = UNetForwards(training_unets(objective))
    forwards.count = int(run.rows[-1].get("unet_forwards", 0)) if run.rows else 0
    nonfinite = 0
    batches = micro_batches(
        objective.source, settings.seed, layout, accelerator.process_index, run.start, settings.steps
    )
    loop_start = time.perf_counter()
    for step in range(run.start, settings.steps):
        t0 = time.perf_counter()
        lr = scheduler.get_last_lr()[0]
        values = _accumulate(wrapped, objective, batches, layout, settings, accelerator, forwards)
        if settings.grad_clip > 0:
            values["grad_norm"] = accelerator.clip_grad_norm_(params, settings.grad_clip)
        values = _reduce(values, accelerator)  # the step's one collective and its one host synchronisation
        forwards.count += round(values.pop("unet_forwards"))
        nonfinite = _check_finite(values, scaler, step, nonfinite)
        optimizer.step()
        skipped = scaler is not None and accelerator.optimizer_step_was_skipped
        if not skipped:
            scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if average is not None:  # after every optimiser step, as diffusers' scripts call EMAModel.step
            average.update()
        scale = _loss_scale(scaler, step)
        seconds = time.perf_counter() - t0
        elapsed += seconds
        run.rows.append(_log_row(step, values, lr, elapsed, seconds, forwards.count, skipped, scale, layout))
        _report(accelerator, run.rows, settings.steps, step, run.start, loop_start, skipped, scale)
        if eval_every and ((step + 1) % eval_every == 0 or step + 1 == settings.steps):
            measure(step + 1)
        due = settings.checkpoint_every and (step + 1) % settings.checkpoint_every == 0
        if due and step + 1 < settings.steps:
            _save_checkpoint(
                fingerprint, scratch, step + 1, trainable, optimizer, scheduler, scaler, run.rows, run.evals,
                accelerator, settings.keep_checkpoints, average,
            )  # fmt: skip
    forwards.close()
    if average is not None:
        average.copy_to_model()
    for module in trainable.values():
        module.eval()
    extra = sorted({k for row in run.rows for k in row} - set(LOG_COLUMNS))  # method-specific, e.g. inversion_evals
    return pd.DataFrame(run.rows, columns=LOG_COLUMNS + extra), pd.DataFrame(run.evals)


def _resume(
    scratch: Path,
    fingerprint: str,
    accelerator: Accelerator,
    trainable: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    average: WeightAverage | None,
) -> _Run:
    """The newest checkpoint of this fingerprint loaded into the modules, optimiser, schedule and EMA (its step,
    logs and evaluations returned), or a fresh run; checkpoints of other settings are removed."""
    existing = _checkpoints(scratch)
    if existing and _fingerprint(existing[-1]) != fingerprint:
        accelerator.print(f"ignoring checkpoints in {scratch}: written for other settings, inputs or processes")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for old in existing:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        existing = []
    if not existing:
        return _Run()
    state = torch.load(existing[-1] / "state.pt", map_location="cpu", weights_only=True)
    for name, module in trainable.items():
        module.load_state_dict(state["modules"][name], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if average is not None:
        average.load_state_dict(state["ema"])
    accelerator.print(f"resumed from {existing[-1]} at step {state['step']}")
    return _Run(state["step"], state["log"], state["evals"], state)


def _accumulate(
    wrapped: nn.Module,
    objective: nn.Module,
    batches: Iterator[tuple[np.ndarray, np.ndarray, Any]],
    layout: Layout,
    settings: TrainSettings,
    accelerator: Accelerator,
    forwards: UNetForwards,
) -> dict[str, Any]:
    """Forward and backward every micro-batch of one optimiser step; the step's loss and metrics (their mean over
    the micro-batches) as tensors left on the device, and the UNet passes it cost."""
    values: dict[str, Any] = {"loss": 0.0}
    forwards.active, counted = True, forwards.count
    for micro in range(layout.grad_accum):
        positions, indices, fetched = next(batches)
        drawn = objective.draw(fetched, example_generators(settings.seed, positions), indices)
        batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in drawn.items()}
        sync = micro == layout.grad_accum - 1
        with accelerator.no_sync(wrapped) if not sync else nullcontext():
            with accelerator.autocast():
                loss, extra = wrapped(**batch)
            accelerator.backward(loss / layout.grad_accum)
        for key, value in {"loss": loss, **extra}.items():
            value = value.detach().double() if torch.is_tensor(value) else float(value)
            values[key] = values.get(key, 0.0) + value / layout.grad_accum
    forwards.active = False
    values["unet_forwards"] = forwards.count - counted
    forwards.count = counted  # the sum over processes is added after the step's reduction
    return values


def _reduce(values: dict[str, Any], accelerator: Accelerator) -> dict[str, float]:
    """Every metric of a step as one float64 vector: averaged over the processes in one collective (the UNet
    passes summed) and moved to the host once."""
    keys = list(values)
    device = accelerator.device
    vector = torch.stack([torch.as_tensor(values[k], dtype=torch.float64, device=device).reshape(()) for k in keys])
    if accelerator.num_processes > 1:
        vector = accelerator.reduce(vector, reduction="mean")
    result = dict(zip(keys, vector.tolist()))
    result["unet_forwards"] *= accelerator.num_processes  # a sum over the processes, not a mean
    return result


def _check_finite(values: dict[str, float], scaler: Any, step: int, nonfinite: int) -> int:
    """Raise when training has diverged; the count of consecutive steps whose loss was not finite."""
    loss, grad_norm = values["loss"], values.get("grad_norm")  # no grad norm: clipping is off
    finite_grads = grad_norm is None or math.isfinite(grad_norm)
    if scaler is None and not (math.isfinite(loss) and finite_grads):
        raise TrainingDivergedError(
            f"step {step + 1}: loss {loss} / grad norm {grad_norm} is not finite; lower the learning rate "
            "or beta. No model was written."
        )
    nonfinite = 0 if math.isfinite(loss) else nonfinite + 1
    if nonfinite >= MAX_NONFINITE_STEPS:
        raise TrainingDivergedError(
            f"step {step + 1}: the loss has not been finite for {nonfinite} steps in a row (fp16 loss scaling "
            "cannot help a forward pass that overflows); lower the learning rate or beta, or train in bf16. "
            "No model was written."
        )
    return nonfinite


def _loss_scale(scaler: Any, step: int) -> float:
    scale = float(scaler.get_scale()) if scaler is not None else math.nan
    if scaler is not None and scale < MIN_LOSS_SCALE:
        raise TrainingDivergedError(
            f"step {step + 1}: the fp16 loss scale fell to {scale:g}: the gradients overflow float16 at any "
            "scale; lower the learning rate or train in bf16. No model was written."
        )
    return scale


def _log_row(
    step: int,
    values: dict[str, float],
    lr: float,
    elapsed: float,
    seconds: float,
    forwards: int,
    skipped: bool,
    scale: float,
    layout: Layout,
) -> dict[str, float]:
    """One train_log.csv row: the fixed columns (NaN where the method has no such metric), then its own."""
    per_second = layout.per_step / max(seconds, 1e-9)
    row = dict.fromkeys(LOG_COLUMNS, math.nan)
    row.update(
        step=step + 1,
        lr=lr,
        seconds=round(elapsed, 3),
        unet_forwards=forwards,
        skipped=int(skipped),
        loss_scale=scale,
        examples_per_second=per_second,
        examples_per_second_per_device=per_second / layout.processes,
    )
    row.update(values)
    return row


def _report(
    accelerator: Accelerator,
    rows: list[dict[str, float]],
    steps: int,
    step: int,
    start: int,
    loop_start: float,
    skipped: bool,
    scale: float,
) -> None:
    """The job log's progress lines: about twenty per run, and every skipped fp16 step."""
    if skipped:
        accelerator.print(f"step {step + 1}: gradients overflowed fp16, step skipped (loss scale now {scale:g})")
    if (step + 1) % max(1, steps // 20) == 0 or step + 1 == steps:
        row, skips = rows[-1], sum(r.get("skipped", 0) for r in rows)
        accelerator.print(
            f"step {step + 1}/{steps} loss {row['loss']:.4f} lr {row['lr']:.3g} {row['seconds']:.0f} s, "
            + eta(step + 1 - start, steps - step - 1, time.perf_counter() - loop_start)
            + (f", {skips} skipped" if skips else ""),
            flush=True,
        )


def _save_checkpoint(
    fingerprint: str,
    scratch: Path,
    step: int,
    trainable: dict[str, nn.Module],
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    rows: list[dict[str, float]],
    evals: list[dict[str, float]],
    accelerator: Accelerator,
    keep: int,
    average: WeightAverage | None = None,
) -> None:
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
        "scaler": scaler.state_dict() if scaler is not None else {},
        "log": rows,
        "evals": evals,
        "ema": average.state_dict() if average is not None else {},
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
