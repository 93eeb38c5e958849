"""The paper path's precision and throughput check on a GPU (issue: the official precision, proven), in one run of
at most about 8 minutes on one H100:

1. every registered method's loss at step 0 (policy == reference) under autocast at fp32, bf16 and fp16, on the
   tiny SD1.5 stand-in with every weight moved off its initial value (as an SFT start is): it must be the method's
   initial value (log 2 for the pair methods) at every precision, model_mse == ref_mse;
2. the first `--steps` training steps of every method at each precision, through the real trainer (accelerate's
   autocast, GradScaler under fp16), and each step's loss against fp32's; train examples per second;
3. sampling images per second at fp32 and fp16 (the sample rule's precision);
4. the smoke DAG (config/smoke-sd.yaml) end to end at fp16 and bf16 on the device (`--dag`).

    python bench/gpu_check.py --out bench/out/gpu_check --device cuda --dag      # --dag: fp16 and bf16
    python bench/gpu_check.py --out /tmp/gpu_check --device cpu --steps 3   # the script itself, on a CPU

Writes gpu_check.json and gpu_check.md into --out after each part, so a run cut short keeps what it measured. On a
CPU fp16 training is left out (accelerate's fp16 needs CUDA).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from inpo_bench.config import load_config  # noqa: E402
from inpo_bench.data.order import example_generators  # noqa: E402
from inpo_bench.data.pairs import PairData  # noqa: E402
from inpo_bench.methods import Context, get, names  # noqa: E402
from inpo_bench.models.bundle import load_model, write_base_spec  # noqa: E402
from inpo_bench.runtime import machine  # noqa: E402
from inpo_bench.smoke import pipelines  # noqa: E402

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
INITIAL = {"dpo": math.log(2), "inpo": math.log(2), "smpo": math.log(2), "kto": 0.5}


class Scores:
    """SmPO's pair scores: every winner scored above its loser."""

    def __init__(self, n: int) -> None:
        self.w, self.l = np.linspace(0.25, 0.3, n), np.linspace(0.1, 0.2, n)

    def range(self) -> tuple[float, float]:
        return 0.1, 0.3


def stand_in(folder: Path, device: str) -> Any:
    """The tiny SD1.5 stand-in with every weight moved by N(0, 0.01), the same draw every call."""
    model = load_model(folder, device)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_((torch.randn(p.shape, generator=g) * 0.01).to(p))
    return model


def pair_data(model: Any, n: int) -> PairData:
    g = torch.Generator().manual_seed(0)
    shape = (n, 1, *model.x0_shape)
    with torch.no_grad():
        context = model.encode_prompts(["a photo of a cat", "a red car on the street"]).cpu()
        empty = model.encode_prompts([""])[0].cpu()
    return PairData(
        x0_w=torch.randn(shape, generator=g),
        x0_l=torch.randn(shape, generator=g),
        context=context,
        caption_index=torch.arange(n) % 2,
        empty=empty,
    )


def objective_of(name: str, model: Any, data: PairData, cfg: dict[str, Any], dtype: Any, batch: int) -> Any:
    section = {**cfg[name], "batch_size": batch, "caption_dropout": 0.0}
    return get(name).build(Context(model.unet, data, section, model, dtype, pair_scores=Scores(len(data))))


def step_zero(folder: Path, cfg: dict[str, Any], device: str, methods: list[str], n: int) -> list[dict[str, Any]]:
    rows = []
    for name in methods:
        for precision, dtype in PRECISIONS.items():
            model = stand_in(folder, device)
            objective = objective_of(name, model, pair_data(model, n), cfg, dtype, n).to(device)
            index = np.arange(n)
            drawn = objective.draw(objective.source.fetch(index), example_generators(7, range(n)), index)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in drawn.items()}
            with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss, metrics = objective(**batch)
            gap = float(metrics["model_mse"] - metrics["ref_mse"]) if "ref_mse" in metrics else math.nan
            rows.append(
                {
                    "method": name,
                    "precision": precision,
                    "loss": loss.item(),
                    "expected": INITIAL.get(name, math.nan),
                    "model_minus_ref_mse": gap,
                }
            )
    return rows


def train_steps(
    folder: Path, cfg: dict[str, Any], device: str, methods: list[str], steps: int, scratch: Path
) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from inpo_bench.train import TrainSettings, train

    rows, losses = [], {}
    for name in methods:
        for precision in PRECISIONS:
            if precision == "fp16" and device == "cpu":
                continue  # accelerate's fp16 (GradScaler) needs CUDA
            model = stand_in(folder, device)
            objective = objective_of(name, model, pair_data(model, 16), cfg, PRECISIONS[precision], 2)
            mixed = "no" if precision == "fp32" else precision
            AcceleratorState._reset_state(reset_partial_state=True)  # a new precision needs a new (singleton) state
            accelerator = Accelerator(cpu=device == "cpu", mixed_precision=mixed)
            settings = TrainSettings(steps=steps, lr=1e-5, examples_per_step=4, warmup_steps=0, seed=5)
            log, _ = train(objective, settings, scratch / f"{name}-{precision}", accelerator)
            losses[f"{name}/{precision}"] = log.loss.tolist()
            reference = losses.get(f"{name}/fp32", log.loss.tolist())
            diff = np.abs(np.asarray(log.loss) - np.asarray(reference))
            rows.append(
                {
                    "method": name,
                    "precision": precision,
                    "first_loss": float(log.loss.iloc[0]),
                    "last_loss": float(log.loss.iloc[-1]),
                    "max_abs_loss_diff_vs_fp32": float(np.nanmax(diff)),
                    "skipped_steps": int(log.skipped.sum()),
                    "examples_per_second": float(log.examples_per_second.iloc[1:].median()),
                }
            )
    return rows, losses


def sampling(folder: Path, device: str, images: int) -> list[dict[str, Any]]:
    from inpo_bench.sample import SamplerSettings, generate

    rows = []
    prompts = [(f"p{i}", "a photo of a cat" if i % 2 else "a red car on the street") for i in range(images)]
    for precision, dtype in (("fp32", None), ("fp16", torch.float16)):
        if dtype is not None and device == "cpu":
            continue  # the sample rule never samples in half precision on a CPU
        model = load_model(folder, device)
        model.to(device, dtype)
        settings = SamplerSettings(steps=20, guidance=7.5, batch_size=16)
        list(generate(model, prompts[:16], [0], settings))  # warm-up
        start = time.perf_counter()
        list(generate(model, prompts, [0], settings))
        rows.append({"precision": precision, "images_per_second": images / (time.perf_counter() - start)})
    return rows


def dag(device: str, workdir: Path, precision: str) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / f"{precision}.yaml"
    gpus = 1 if device == "cuda" else 0
    overlay.write_text(
        f"run: check-{precision}\ndevice: {device}\ngpus: {{train: {gpus}, sample: {gpus}, score: {gpus}}}\n"
        f'training: {{mixed_precision: "{precision}"}}\nscorers: {{device: {device}}}\n'
    )
    command = [sys.executable, "-m", "snakemake", "--cores", str(os.cpu_count() or 2), "--directory", str(workdir)]
    command += ["--configfile", str(REPO / "config" / "smoke-sd.yaml"), str(overlay)]
    start = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    return {
        "precision": precision,
        "exit": done.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "tail": "" if done.returncode == 0 else (done.stdout + done.stderr)[-3000:],
    }


def markdown(report: dict[str, Any]) -> str:
    lines = ["# GPU check", "", f"machine: {json.dumps(report['machine'])}", ""]
    for title, key in (("Step-0 loss", "step_zero"), ("Training steps", "training"), ("Sampling", "sampling")):
        rows = report[key]
        if not rows:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += [
            "| " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in r.values()) + " |" for r in rows
        ]
        lines.append("")
    for run in report["dag"]:
        lines.append(f"- smoke DAG at {run['precision']}: exit {run['exit']} in {run['seconds']} s")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", nargs="+", default=names())
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--sample-images", type=int, default=64)
    parser.add_argument("--dag", nargs="*", choices=["fp16", "bf16"], help="also run the smoke DAG at these precisions")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(REPO / "config" / "config.yaml", REPO / "config" / "smoke-sd.yaml")
    pair_methods = [m for m in args.methods if get(m).losers]  # SFT has no step-0 value to check
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_base_spec(tmp / "base", "sd", pipelines.RESOLUTION, str(pipelines.build_sd15(tmp / "sd15")))
        folder = tmp / "base"
        report: dict[str, Any] = {"machine": machine(), "torch": torch.__version__}
        report.update(step_zero=[], training=[], losses={}, sampling=[], dag=[])
        report["step_zero"] = step_zero(folder, cfg, args.device, pair_methods, 4)
        write(out, report)  # after each part: a run cut short by its time limit keeps what it measured
        report["training"], report["losses"] = train_steps(folder, cfg, args.device, args.methods, args.steps, tmp)
        write(out, report)
        report["sampling"] = sampling(folder, args.device, args.sample_images)
        write(out, report)
        for precision in ["fp16", "bf16"] if args.dag == [] else args.dag or []:
            report["dag"].append(dag(args.device, tmp / "dag", precision))
            write(out, report)
    print(markdown(report))


def write(out: Path, report: dict[str, Any]) -> None:
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


if __name__ == "__main__":
    main()
