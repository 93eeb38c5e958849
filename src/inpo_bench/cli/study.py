"""`study`: the toy study's tables and figure from every training seed of every method (`snakemake study`);
`tune`: the learning-rate choice on the progress evaluation (`snakemake tune`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import Add, json_object
from .report import MODEL_PATH, _score_entries, _write_table


def study_comparisons(groups: list[str], method: str, reference: str) -> list[tuple[str, str]]:
    """Every method against the base, every other method against the reference, and the method against SFT."""
    methods = [g for g in groups if g != "base"]
    pairs = [(m, "base") for m in methods] + [(m, reference) for m in methods if m != reference]
    if method in methods and "sft" in methods and method != "sft":
        pairs.append((method, "sft"))
    return [p for p in pairs if p[1] in groups]


def cmd_study(args: argparse.Namespace) -> None:
    import pandas as pd

    from .. import plots, tables
    from ..tables import study

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scores, groups = _score_entries(args.scores), {k: list(v) for k, v in args.groups.items()}
    unknown = sorted({m for ms in groups.values() for m in ms} - {m for m, _, _ in scores})
    if unknown:
        raise SystemExit(f"study: no score files for model(s) {unknown} of --groups")
    means = tables.mean_scores([(m, p, s, path) for (m, p, s), path in scores.items()], seed=args.seed)
    _write_table(out, "mean_scores", means, tables.mean_scores_markdown(means))

    comparisons = study_comparisons(list(groups), args.method, args.reference)
    gains = study.interval_target(
        study.seed_gains(scores, groups, comparisons, seed=args.seed), reference=args.reference
    )
    _write_table(
        out,
        "seed_gains",
        gains,
        tables.frame_markdown(
            "Gains over a baseline, averaged over training seeds",
            "gain: mean score of the model minus the baseline's, averaged over the model's training seeds (and the "
            "baseline's), on images from the same noise; 95% bootstrap interval over prompts and training seeds "
            f"together; per_seed: each seed's own gain. The interval meets its target when its half-width is at "
            f"most 0.01 or at most a third of {args.reference}'s gain over the base.",
            gains,
            floats="{:.4f}",
        ),
    )

    logs = {}
    for folder in map(Path, args.models):
        logs[MODEL_PATH.search(str(folder))["model"]] = (folder / "eval_log.csv", folder / "train_log.csv")
    curves = tables.training_curves(logs)
    _write_table(
        out,
        "training_curves",
        curves,
        tables.frame_markdown(
            "Training curves of every seed", "Progress measurements, as tables/training_curves.", curves
        ),
    )
    trained = {g: ms for g, ms in groups.items() if g != "base"}
    summary = study.curve_summary(curves, trained)
    _write_table(
        out,
        "curve_summary",
        summary,
        tables.frame_markdown(
            "Training curves across seeds",
            "Per method and measured step: the mean over its training seeds of the progress evaluation's oracle "
            "reward (its own 32 prompts and noise seed; the learning rates were chosen on it) with a 95% "
            "t-interval across seeds, and the compute spent: UNet forward-equivalents (a backward counts two) "
            "and training seconds.",
            summary,
            floats="{:.4g}",
        ),
    )
    reach = study.compute_to_reach(curves, trained, reference=args.reference)
    _write_table(
        out,
        "compute_to_reach",
        reach,
        tables.frame_markdown(
            f"Compute to reach {args.reference}'s gain",
            f"The compute each method's seeds spent before the progress reward first reached their start plus "
            f"the given fraction of {args.reference}'s final gain (mean over its seeds); mean over the seeds that "
            "got there, with a 95% t-interval; reached: how many did (fewer than all: a lower bound).",
            reach,
            floats="{:.4g}",
        ),
    )
    claims = study.study_claims(gains, reach, method=args.method, reference=args.reference)
    _write_table(
        out,
        "paper_claims",
        claims,
        tables.frame_markdown(
            "The paper's claims in the toy world, over training seeds",
            "Judged on the true (oracle) reward with intervals that hold prompts and training seeds.",
            claims,
        ),
    )
    if args.headroom:
        _study_reward_vs_kl(args, gains, groups, out)
    plots.efficiency_curves(summary, args.figure)
    print(f"study: {len(gains)} gains, {len(summary)} curve points -> {out}, {args.figure}")
    print(pd.DataFrame(claims)[["claim", "verdict"]].to_string(index=False))


def _study_reward_vs_kl(args: argparse.Namespace, gains: Any, groups: dict[str, list[str]], out: Path) -> None:
    """Every method's seed-averaged gain against its seed-averaged divergence, beside the base's frontiers."""
    import json

    import pandas as pd

    from .. import plots, tables
    from ..tables.headroom import study_reward_vs_kl
    from .report import DIVERGENCE_PATH

    headroom = pd.read_csv(args.headroom)
    divergence = {}
    for path in args.divergence:
        match = DIVERGENCE_PATH.search(path)
        if match["promptset"] == headroom.promptset.iloc[0]:
            divergence[match["model"]] = json.loads(Path(path).read_text())
    trained = {g: ms for g, ms in groups.items() if g != "base"}
    table = study_reward_vs_kl(gains, headroom, divergence, trained)
    _write_table(
        out,
        "reward_vs_kl",
        table,
        tables.frame_markdown(
            "True reward against divergence from the base, over training seeds",
            "gain: the seed-averaged true-reward gain over the base with its interval over prompts and training "
            "seeds (seed_gains); chain_kl: the KL of the model's DDPM chain from the base's (divergence.py), mean "
            "over its seeds with their lowest and highest; the base's two frontiers at that KL (headroom.csv) and "
            "the share of the tilt frontier's gain reached.",
            table,
            floats="{:.4f}",
        ),
    )
    plots.reward_vs_kl(headroom, table, Path(args.figure).with_name("reward_vs_kl.png"))


def _run_arg(text: str) -> tuple[str, float, str]:
    """METHOD:LR:MODEL_DIR, e.g. dpo:1e-05:results/toy/models/dpo/lr~1e-05."""
    parts = text.split(":", 2)
    try:
        method, lr, folder = parts
        return method, float(lr), folder
    except ValueError:
        raise argparse.ArgumentTypeError(f"--runs {text!r}: not METHOD:LR:MODEL_DIR") from None


def cmd_tune(args: argparse.Namespace) -> None:
    import pandas as pd

    from .. import plots, tables
    from ..tables import tune

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for method, lr, folder in args.runs:
        match = MODEL_PATH.search(folder)
        runs[method, lr] = (match["model"] if match else folder, Path(folder) / "eval_log.csv")
    curves = tune.lr_curves(runs)
    window = tuple(args.window)
    try:
        table = tune.lr_choice(curves, window, args.configured)
    except ValueError as error:
        raise SystemExit(f"tune: {error}") from None
    verdicts = tune.lr_verdicts(table)
    about = (
        f"Each method's learning rates judged on the progress evaluation alone (its own prompts and noise seed): "
        f"window_mean is the mean oracle reward of the measurements at steps {window[0]}-{window[1]}, start the "
        "reward at step 0; chosen marks the largest window mean, configured the lr the config trains today."
    )
    _write_table(out, "lr_choice", table, tables.frame_markdown("Learning-rate choice", about, table, floats="{:.4g}"))
    _write_table(
        out,
        "lr_verdicts",
        verdicts,
        tables.frame_markdown("Chosen against configured", about, verdicts, floats="{:.4g}"),
    )
    chosen = curves.merge(table[["method", "lr", "chosen"]], on=["method", "lr"])
    plots.lr_curves(chosen, window, args.figure)
    print(pd.DataFrame(verdicts).to_string(index=False))


def cmd_study_stability(args: argparse.Namespace) -> None:
    import pandas as pd

    from .. import tables
    from ..tables import study

    first, second = Path(args.first), Path(args.second)
    frames = {}
    for folder in (first, second):
        for name in ("seed_gains", "paper_claims"):
            path = folder / f"{name}.csv"
            if not path.is_file():
                raise SystemExit(f"study-stability: {path} is missing; run the study target that writes it first")
            frames[folder, name] = pd.read_csv(path)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sides = f"first: {first}, second: {second} ({args.second_is})"
    gains = study.gain_stability(frames[first, "seed_gains"], frames[second, "seed_gains"])
    _write_table(
        out,
        "verdict_stability",
        gains,
        tables.frame_markdown(
            f"Do the gains' verdicts survive {args.second_is}?",
            f"Every gain of two studies ({sides}): each side's gain, interval and verdict; opposite_verdicts marks "
            "one side higher and the other lower; *_in_*_interval whether a side's gain lies inside the other's "
            "95% interval.",
            gains,
            floats="{:.4f}",
        ),
    )
    claims = study.claim_stability(frames[first, "paper_claims"], frames[second, "paper_claims"])
    _write_table(
        out,
        "claim_stability",
        claims,
        tables.frame_markdown(f"Do the paper's claims survive {args.second_is}?", sides, claims),
    )
    changed = gains[~gains.same_verdict]
    print(
        f"study-stability: {int(gains.same_verdict.sum())}/{len(gains)} gain verdicts agree, "
        f"{int(gains.opposite_verdicts.sum())} opposite; {int(claims.same_verdict.sum())}/{len(claims)} claims "
        f"agree, {int(claims.opposite_verdicts.sum())} opposite"
    )
    if len(changed):
        print(changed[[*study.GAIN_KEYS, "verdict_first", "verdict_second"]].to_string(index=False))


def register(add: Add) -> None:
    p = add("study", cmd_study, "the toy study: seed-averaged gains, compute curves, compute to reach DPO's gain")
    p.add_argument("--scores", nargs="+", required=True, help=".../scores/<model>/<promptset>/<scorer>.csv files")
    p.add_argument("--groups", type=json_object, required=True, help="method -> its model ids, one per seed")
    p.add_argument("--models", nargs="+", required=True, help="trained model directories (eval_log, train_log)")
    p.add_argument("--method", default="inpo", help="the method the claims are about")
    p.add_argument("--reference", default="dpo", help="the method whose gain defines the targets")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figure", required=True, help="the efficiency curves PNG (reward_vs_kl.png goes beside it)")
    p.add_argument("--headroom", help="headroom/toy_seen.csv of the base: the study's reward-vs-KL table")
    p.add_argument("--divergence", nargs="*", default=[], help="divergence/<model>/<promptset>.json of every model")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    p = add("tune", cmd_tune, "the toy world's learning-rate choice: each method's lr grid on the progress evaluation")
    p.add_argument("--runs", nargs="+", type=_run_arg, required=True, help="METHOD:LR:MODEL_DIR (with eval_log.csv)")
    p.add_argument("--configured", type=json_object, required=True, help="method -> the lr its config trains")
    p.add_argument("--window", nargs=2, type=int, required=True, metavar=("FIRST", "LAST"), help="steps averaged")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--figure", required=True, help="the lr curves PNG")

    p = add("study-stability", cmd_study_stability, "compare the verdicts of two studies (other seeds, float path)")
    p.add_argument("--first", required=True, help="tables folder of the first study (seed_gains.csv, paper_claims.csv)")
    p.add_argument("--second", required=True, help="tables folder of the second study")
    p.add_argument(
        "--second-is",
        default="a second set of training seeds",
        help="what differs in the second study, for the tables' titles (e.g. 'another float path')",
    )
    p.add_argument("--out-dir", required=True)
