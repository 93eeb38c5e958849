"""Stage commands of the report: tables, ablation tables, figures."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from .common import Add, json_object

SCORE_PATH = re.compile(r"(?:^|/)scores/(?P<model>.+)/(?P<promptset>[^/]+)/(?P<scorer>[^/]+)\.csv$")


MODEL_PATH = re.compile(r"(?:^|/)models/(?P<model>.+?)/?$")
SAMPLE_PATH = re.compile(r"(?:^|/)samples/(?P<model>.+)/(?P<promptset>[^/]+)/sample\.json$")
DIVERGENCE_PATH = re.compile(r"(?:^|/)divergence/(?P<model>.+)/(?P<promptset>[^/]+)\.json$")
HEADROOM_PATH = re.compile(r"(?:^|/)headroom/(?P<promptset>[^/]+)\.csv$")


def _score_entries(paths: list[str]) -> dict[tuple[str, str, str], str]:
    entries = {}
    for path in paths:
        match = SCORE_PATH.search(path)
        if match is None:
            raise SystemExit(f"{path}: not a score file path .../scores/<model>/<promptset>/<scorer>.csv")
        entries[match["model"], match["promptset"], match["scorer"]] = path
    return entries


def _write_table(out_dir: Path, name: str, frame: Any, markdown: str) -> None:
    from ..runtime import write_csv

    write_csv(out_dir / f"{name}.csv", frame)
    (out_dir / f"{name}.md").write_text(markdown)


def _world_tables(args: argparse.Namespace, scores: dict[tuple[str, str, str], str], out: Path) -> None:
    """Toy world: the base's headroom and each trained model's true-reward gain against its divergence."""
    import pandas as pd

    from ..tables.headroom import reward_vs_kl
    from ..tables.scores import frame_markdown
    from ..tables.study import prompt_matrix, seeded_difference

    headroom = {HEADROOM_PATH.search(p)["promptset"]: pd.read_csv(p) for p in args.headroom}
    divergence: dict[str, dict[str, dict]] = {}
    for path in args.divergence:
        match = DIVERGENCE_PATH.search(path)
        divergence.setdefault(match["promptset"], {})[match["model"]] = json.loads(Path(path).read_text())
    rows = []
    for promptset, table in headroom.items():
        models = divergence.get(promptset, {})

        def rewards(model: str, promptset: str = promptset) -> Any:
            return prompt_matrix([scores[model, promptset, "oracle_reward"]]).to_numpy()

        gains = {m: seeded_difference(rewards(m), rewards("base"), seed=args.seed) for m in models}
        rows.append(reward_vs_kl(promptset, table, gains, models))
    combined = pd.concat(headroom.values(), ignore_index=True)
    _write_table(
        out,
        "headroom",
        combined,
        frame_markdown(
            "Headroom of the base",
            "True-reward gain over the base of choosing among its own samples: the best of n (KL log n - (n-1)/n) "
            "and each prompt's samples reweighted by exp(R / tau) (gain and KL of the reweighting).",
            combined,
            floats="{:.4f}",
        ),
    )
    if rows:
        frame = pd.concat(rows, ignore_index=True)
        _write_table(
            out,
            "reward_vs_kl",
            frame,
            frame_markdown(
                "True reward against divergence from the base",
                "gain: true reward over the base (95% bootstrap over prompts); chain_kl: the KL of the model's DDPM "
                "chain from the base's (nats, an upper bound of its images' KL: divergence.py); the two frontiers' "
                "gains at that KL, and the share of the tilt frontier's gain the model reaches.",
                frame,
                floats="{:.4f}",
            ),
        )


def cmd_tables(args: argparse.Namespace) -> None:
    import pandas as pd

    from .. import tables

    out, scores = Path(args.out_dir), _score_entries(args.scores)
    out.mkdir(parents=True, exist_ok=True)
    means = tables.mean_scores([(m, p, s, path) for (m, p, s), path in scores.items()], seed=args.seed)
    _write_table(out, "mean_scores", means, tables.mean_scores_markdown(means))
    comparisons = [tuple(c.split(":")) for c in args.comparisons]
    wins = tables.win_rates(scores, comparisons, seed=args.seed)
    _write_table(out, "win_rates", wins, tables.win_rates_markdown(wins))
    print(f"tables: {len(means)} mean scores, {len(wins)} win rates -> {out}")
    if args.agreement:
        pairs = [pair.split(":") for pair in args.agreement]
        agreement = pd.concat(
            [tables.scorer_agreement(scores, comparisons, learned, ref, seed=args.seed) for learned, ref in pairs]
        )
        learned, reference = (" / ".join(dict.fromkeys(p[i] for p in pairs)) for i in (0, 1))
        _write_table(
            out,
            "scorer_agreement",
            agreement,
            tables.frame_markdown(
                f"How well {learned} agrees with {reference}",
                "agreement: share of a comparison's image pairs that both scorers order alike (ties of either left "
                "out; 95% bootstrap over prompts), beside each scorer's win rate; 'all images': Spearman's rank "
                "correlation of the two scores over every image of the prompt set.",
                agreement,
            ),
        )
    if args.model_files:
        records = {}
        for path in args.samples:
            match = SAMPLE_PATH.search(path)
            records[match["model"], match["promptset"]] = json.loads(Path(path).read_text())
        try:
            settings = tables.sampler_settings(records)
        except ValueError as error:
            raise SystemExit(f"tables: {error}") from None
        files = {MODEL_PATH.search(str(Path(p).parent))["model"]: p for p in args.model_files}
        models = tables.model_table(files, args.checkpoint_labels)
        _write_table(out, "models", models, tables.models_markdown(models, settings))
    if args.paper:
        paper = tables.paper_comparison(
            pd.read_csv(args.paper),
            wins,
            args.run,
            dict(m.split(":") for m in args.paper_metrics),
            models=dict(m.split(":") for m in args.paper_models),
            missing=args.paper_missing,
        )
        _write_table(
            out,
            "paper_comparison",
            paper,
            tables.frame_markdown(
                "The paper's win rates beside this run's",
                f"Win rates in percent of InPO against each baseline; the "
                f"paper's from {args.paper}, this run's ({args.run}) with a 95% bootstrap interval. Empty: a "
                "cell this run does not cover; its note says why.",
                paper,
                floats="{:.1f}",
            ),
        )
    if args.independent:
        independent = tables.independent_comparison(
            pd.read_csv(args.independent), means, args.run, models=dict(m.split(":") for m in args.paper_models)
        )
        _write_table(
            out,
            "independent_comparison",
            independent,
            tables.frame_markdown(
                "Mean scores others measured for the released checkpoints, beside this run's",
                f"Published means from {Path(args.independent).name} (source per row) in their unit, and this run's "
                f"({args.run} rows) with a 95% bootstrap interval over prompts. Samplers differ between papers.",
                independent,
                floats="{:.2f}",
            ),
        )
    if args.headroom:
        _world_tables(args, scores, out)
    if not args.models:
        return
    logs = {}
    for folder in map(Path, args.models):
        model = MODEL_PATH.search(str(folder))["model"]
        logs[model] = (folder / "eval_log.csv", folder / "train_log.csv")
    curves = tables.training_curves(logs)
    scored = "score" in curves.columns  # paper scale: a scorer's progress measurements, no oracle
    measured = f"{curves.scorer.iloc[0]} scores" if scored and len(curves) else "Oracle measurements"
    _write_table(
        out,
        "training_curves",
        curves,
        tables.frame_markdown(
            "Training curves",
            f"{measured} during training (progress prompts, one seed of their own; score_se: the standard error of "
            "the mean over those prompts); loss and implicit accuracy averaged over the 10 steps up to each "
            "measurement.",
            curves,
        ),
    )
    if scored:  # the steps-to-reward table and the claims judge the true reward, which only the toy world has
        return
    per_step = {m: pd.read_csv(train).seconds.iloc[-1] / len(pd.read_csv(train)) for m, (_, train) in logs.items()}
    steps = tables.steps_to_reach(curves, reference=args.reference, seconds=per_step)
    _write_table(
        out,
        "steps_to_reward",
        steps,
        tables.frame_markdown(
            "Steps to reach a reward",
            f"First measured step at which each model's oracle reward reaches its start plus "
            f"the given fraction of {args.reference}'s final gain; empty: never within its run.",
            steps,
        ),
    )
    claims = tables.toy_claims(wins, steps, per_step, method=args.method, reference=args.reference)
    _write_table(
        out,
        "paper_claims",
        claims,
        tables.frame_markdown(
            "The paper's claims in the toy world",
            "Judged on the true (oracle) reward. A win-rate claim holds when the whole 95% interval is above 50%.",
            claims,
        ),
    )


def cmd_ablation_table(args: argparse.Namespace) -> None:
    from .. import tables

    scores = _score_entries(args.scores)
    table = tables.ablation_table(args.method, args.cells, args.method_config, scores, seed=args.seed)
    _write_table(
        Path(args.out_dir), f"ablation_{args.method}", table, tables.ablation_markdown(args.method, table, args.scorer)
    )
    print(f"ablation table of {args.method}: {len(args.cells)} cells -> {args.out_dir}")


def cmd_figures(args: argparse.Namespace) -> None:
    import pandas as pd

    from .. import plots

    out = Path(args.out_dir)
    wins = pd.read_csv(args.win_rates, dtype={"model": str, "baseline": str})
    plots.win_rate_bars(wins, out / "win_rates.png")
    if args.curves:
        plots.training_curves(pd.read_csv(args.curves), out / "training_curves.png")
    if args.reward_kl:
        headroom, models = (pd.read_csv(p) for p in args.reward_kl)
        plots.reward_vs_kl(headroom, models, out / "reward_vs_kl.png")
    if args.schedule:
        from diffusers import DDIMScheduler

        abar = DDIMScheduler.from_pretrained(args.schedule).alphas_cumprod.double().numpy()
        plots.noise_schedules(abar, args.resolution, out / "noise_schedule.png")
    for promptset in args.promptsets:
        columns = {m: Path(args.samples_root) / m / promptset for m in args.grid_models}
        index = pd.read_csv(columns[args.grid_models[0]] / "index.csv", dtype={"prompt_id": str})
        picks = index.iloc[:: max(1, len(index) // args.grid_images)].head(args.grid_images)
        plots.image_grid(
            columns,
            list(zip(picks.prompt_id, picks.seed)),
            out / f"grid_{promptset}.png",
            prompts=dict(zip(index.prompt_id, index.prompt)),
        )
    print(f"figures -> {out}")


def cmd_ablation_figure(args: argparse.Namespace) -> None:
    import pandas as pd

    from .. import plots
    from ..tables import ablation_parameters

    table = pd.read_csv(args.table)
    block = table[(table.scorer == args.scorer) & (table.promptset == args.promptset)]
    if block.empty:
        raise SystemExit(f"{args.table}: no rows for scorer {args.scorer} on {args.promptset}")
    parameters = ablation_parameters(block)
    default = block[block.cell == "default"]["mean"]
    plots.ablation_panels(
        block,
        parameters,
        args.out,
        reference=float(default.iloc[0]) if len(default) else None,
        label=f"mean {args.scorer} ({args.promptset})",
    )
    print(f"ablation figure -> {args.out}")


def register(add: Add) -> None:
    p = add("tables", cmd_tables, "mean scores, win rates, training curves and the toy claims table")
    p.add_argument("--scores", nargs="+", required=True, help=".../scores/<model>/<promptset>/<scorer>.csv files")
    p.add_argument("--comparisons", nargs="*", default=[], help="model:baseline pairs for win rates")
    p.add_argument(
        "--models", nargs="*", default=[], help="trained model directories with eval_log.csv (training curves)"
    )
    p.add_argument("--method", default="inpo", help="the method the claims table is about")
    p.add_argument("--reference", default="dpo", help="the method whose gain defines the efficiency targets")
    p.add_argument("--paper", help="the paper's win rates (results/paper/inpo_cvpr2025_winrates.csv)")
    p.add_argument("--run", default="", help="this run's name, to pick the paper's rows it reproduces")
    p.add_argument("--paper-metrics", nargs="*", default=[], help="paper metric:scorer pairs")
    p.add_argument(
        "--agreement", action="append", default=[], help="learned:reference scorer (toy_reward:oracle_reward)"
    )
    p.add_argument("--independent", help="others' mean scores of released checkpoints (independent_means.csv)")
    p.add_argument("--paper-models", nargs="*", default=[], help="paper model:run model pairs (inpo:inpo_release)")
    p.add_argument("--paper-missing", type=json_object, default={}, help="paper model -> why the run lacks it")
    p.add_argument("--checkpoint-labels", type=json_object, default={}, help="checkpoint -> {method, note}")
    p.add_argument("--model-files", nargs="*", default=[], help="every model's model.json (the models table)")
    p.add_argument("--samples", nargs="*", default=[], help="their sample.json files (the sampler they share)")
    p.add_argument("--headroom", nargs="*", default=[], help="toy: headroom/<promptset>.csv of the base")
    p.add_argument("--divergence", nargs="*", default=[], help="toy: divergence/<model>/<promptset>.json files")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")

    p = add("ablation-table", cmd_ablation_table, "one row per ablation cell: parameters, scores, win rates")
    p.add_argument("--method", required=True)
    p.add_argument("--method-config", type=json_object, required=True, help="the method's default config section")
    p.add_argument("--cells", nargs="+", required=True, help="cell ids such as beta~500 or t_max~500/inv_grid~exact")
    p.add_argument("--scores", nargs="+", required=True)
    p.add_argument("--scorer", required=True, help="scorer shown in the Markdown table")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--seed", type=int, default=0)

    p = add("figures", cmd_figures, "win-rate bars, training curves, ablation panels, image grids")
    p.add_argument("--win-rates", required=True)
    p.add_argument("--curves", help="training_curves.csv")
    p.add_argument("--reward-kl", nargs=2, metavar=("HEADROOM", "REWARD_VS_KL"), help="toy: the two tables' CSVs")
    p.add_argument("--schedule", help="the toy base's scheduler folder: draw noise_schedule.png against SD's")
    p.add_argument("--resolution", type=int, default=16, help="the toy world's image side (with --schedule)")
    p.add_argument("--samples-root", required=True, help="the samples/ folder")
    p.add_argument("--grid-models", nargs="+", required=True)
    p.add_argument("--promptsets", nargs="+", required=True)
    p.add_argument("--grid-images", type=int, default=8)
    p.add_argument("--out-dir", required=True)

    p = add("ablation-figure", cmd_ablation_figure, "one panel per swept parameter of an ablation table")
    p.add_argument("--table", required=True, help="ablation_<method>.csv")
    p.add_argument("--scorer", required=True)
    p.add_argument("--promptset", required=True)
    p.add_argument("--out", required=True)
