TABLES = f"{OUT}/tables"
FIGURES = f"{OUT}/figures"


# Tables and figures of each suite of SUITES (rules/common.smk): `main` and `zoo`.
for suite, (root, methods, models, comparisons, reference) in SUITES.items():

    rule:
        name:
            suite_rule("tables", suite)
        input:
            **(
                {
                    "evals": expand(
                        f"{OUT}/models/{{model}}/eval_log.csv", model=methods
                    )
                }
                if TOY or (WATCH and methods)
                else {}
            ),
            **world_inputs(methods),
            scores=score_files(models),
            model_files=expand(f"{OUT}/models/{{model}}/model.json", model=models),
            samples=expand(
                f"{OUT}/samples/{{model}}/{{promptset}}/sample.json",
                model=models,
                promptset=SAMPLED_PROMPTSETS,
            ),
        output:
            **(
                {
                    "headroom": report(
                        f"{root}/tables/headroom.csv",
                        caption="../report/headroom.rst",
                        category="Tables",
                    ),
                    "headroom_md": f"{root}/tables/headroom.md",
                    "reward_kl": report(
                        f"{root}/tables/reward_vs_kl.csv",
                        caption="../report/headroom.rst",
                        category="Tables",
                    ),
                    "reward_kl_md": f"{root}/tables/reward_vs_kl.md",
                }
                if WORLD_TABLES
                else {}
            ),
            **(
                {
                    "curves": report(
                        f"{root}/tables/training_curves.csv",
                        caption="../report/training_curves.rst",
                        category="Tables",
                    ),
                    "curves_md": f"{root}/tables/training_curves.md",
                    "steps": report(
                        f"{root}/tables/steps_to_reward.csv",
                        caption="../report/steps_to_reward.rst",
                        category="Tables",
                    ),
                    "steps_md": f"{root}/tables/steps_to_reward.md",
                    "claims": report(
                        f"{root}/tables/paper_claims.csv",
                        caption="../report/paper_claims.rst",
                        category="Tables",
                    ),
                    "claims_md": f"{root}/tables/paper_claims.md",
                    **(
                        {
                            "agreement": report(
                                f"{root}/tables/scorer_agreement.csv",
                                caption="../report/scorer_agreement.rst",
                                category="Tables",
                            ),
                            "agreement_md": f"{root}/tables/scorer_agreement.md",
                        }
                        if LEARNED_TOY_SCORERS
                        else {}
                    ),
                }
                if TOY
                else (
                    (
                        {
                            "curves": report(
                                f"{root}/tables/training_curves.csv",
                                caption="../report/training_curves.rst",
                                category="Tables",
                            ),
                            "curves_md": f"{root}/tables/training_curves.md",
                        }
                        if WATCH and methods
                        else {}
                    )
                    | (
                        {}
                        if suite != "main"
                        else {
                            "paper": report(
                                f"{root}/tables/paper_comparison.csv",
                                caption="../report/paper_comparison.rst",
                                category="Tables",
                            ),
                            "paper_md": f"{root}/tables/paper_comparison.md",
                            "independent": report(
                                f"{root}/tables/independent_comparison.csv",
                                caption="../report/independent_comparison.rst",
                                category="Tables",
                            ),
                            "independent_md": f"{root}/tables/independent_comparison.md",
                        }
                    )
                )
            ),
            models=report(
                f"{root}/tables/models.csv",
                caption="../report/models.rst",
                category="Tables",
            ),
            models_md=f"{root}/tables/models.md",
            means=report(
                f"{root}/tables/mean_scores.csv",
                caption="../report/mean_scores.rst",
                category="Tables",
            ),
            means_md=f"{root}/tables/mean_scores.md",
            wins=report(
                f"{root}/tables/win_rates.csv",
                caption="../report/win_rates.rst",
                category="Tables",
            ),
            wins_md=f"{root}/tables/win_rates.md",
        log:
            f"{OUT}/logs/tables/{suite}.log",
        conda:
            ENV
        params:
            out_dir=folder("output.means"),
            models=lambda wc, input: (
                "--models " + " ".join(os.path.dirname(p) for p in input.evals)
                if "evals" in input.keys()
                else ""
            ),
            comparisons=comparisons,
            reference=reference,
            world=lambda wc, input: (
                f"--headroom {' '.join(input.headroom)} --divergence {' '.join(input.divergence)}"
                if "headroom" in input.keys()
                else ""
            ),
            paper=(
                ""
                if TOY or suite != "main"
                else f"--paper {PAPER_TABLE} --independent {INDEPENDENT_TABLE} --run {config['tables']['paper_run'] or config['run']} --paper-metrics "
                + " ".join(
                    f"{k}:{v}" for k, v in config["tables"]["paper_metrics"].items()
                )
                + paper_models_args()
            ),
            seed=config["seed"],
            agreement=" ".join(
                f"--agreement {name}:oracle_reward" for name in LEARNED_TOY_SCORERS
            ),
            labels=json.dumps(
                {
                    name: {"method": c["method"], "note": c.get("note") or ""}
                    for name, c in config["checkpoints"].items()
                }
            ),
        shell:
            "python -m inpo_bench tables --scores {input.scores} --model-files {input.model_files}"
            " --samples {input.samples} --checkpoint-labels {params.labels:q} {params.models} {params.paper}"
            " --comparisons {params.comparisons} --reference {params.reference} --out-dir {params.out_dir}"
            " --seed {params.seed} {params.agreement} {params.world} > {log} 2>&1"

    rule:
        name:
            suite_rule("figures", suite)
        input:
            **(
                {"curves": f"{root}/tables/training_curves.csv", "base": BASE_MODEL}
                if TOY
                else (
                    {"curves": f"{root}/tables/training_curves.csv"}
                    if WATCH and methods
                    else {}
                )
            ),
            **(
                {
                    "headroom": f"{root}/tables/headroom.csv",
                    "reward_kl": f"{root}/tables/reward_vs_kl.csv",
                }
                if WORLD_TABLES
                else {}
            ),
            wins=f"{root}/tables/win_rates.csv",
            samples=expand(
                f"{OUT}/samples/{{model}}/{{promptset}}/index.csv",
                model=models,
                promptset=SAMPLED_PROMPTSETS,
            ),
        output:
            **(
                {
                    "curves": report(
                        f"{root}/figures/training_curves.png",
                        caption="../report/figures.rst",
                        category="Figures",
                    ),
                    **(
                        {
                            "schedule": report(
                                f"{root}/figures/noise_schedule.png",
                                caption="../report/figures.rst",
                                category="Figures",
                            )
                        }
                        if TOY
                        else {}
                    ),
                }
                if TOY or (WATCH and methods)
                else {}
            ),
            **(
                {
                    "reward_kl": report(
                        f"{root}/figures/reward_vs_kl.png",
                        caption="../report/headroom.rst",
                        category="Figures",
                    )
                }
                if WORLD_TABLES
                else {}
            ),
            wins=report(
                f"{root}/figures/win_rates.png",
                caption="../report/figures.rst",
                category="Figures",
            ),
            grids=report(
                expand(
                    f"{root}/figures/grid_{{promptset}}.png",
                    promptset=SAMPLED_PROMPTSETS,
                ),
                caption="../report/figures.rst",
                category="Figures",
            ),
        log:
            f"{OUT}/logs/figures/{suite}.log",
        conda:
            ENV
        params:
            out_dir=folder("output.wins"),
            curves=lambda wc, input: (
                f"--curves {input.curves}"
                + (
                    f" --schedule {os.path.dirname(input.base)}/scheduler"
                    f" --resolution {config['world']['resolution']}"
                    if "base" in input.keys()
                    else ""
                )
                if "curves" in input.keys()
                else ""
            ),
            reward_kl=lambda wc, input: (
                f"--reward-kl {input.headroom} {input.reward_kl}"
                if "reward_kl" in input.keys()
                else ""
            ),
            # samples/<model>/<promptset>/index.csv -> samples/
            samples_root=lambda wc, input: os.path.dirname(
                os.path.dirname(os.path.dirname(input.samples[0]))
            ),
            models=models,
            promptsets=SAMPLED_PROMPTSETS,
            grid_images=config["tables"]["grid_images"],
        shell:
            "python -m inpo_bench figures --win-rates {input.wins} {params.curves} {params.reward_kl}"
            " --samples-root {params.samples_root} --grid-models {params.models} --promptsets {params.promptsets}"
            " --grid-images {params.grid_images} --out-dir {params.out_dir} > {log} 2>&1"


rule ablation_table:
    input:
        scores=lambda wc: score_files(["base", wc.method, *ABLATIONS[wc.method]]),
    output:
        csv=report(
            f"{TABLES}/ablation_{{method}}.csv",
            caption="../report/ablation.rst",
            category="Ablations",
        ),
        md=f"{TABLES}/ablation_{{method}}.md",
    log:
        f"{OUT}/logs/tables/ablation_{{method}}.log",
    conda:
        ENV
    params:
        out_dir=folder("output.csv"),
        cells=lambda wc: [m.split("/", 1)[1] for m in ABLATIONS[wc.method]],
        method_config=lambda wc: json.dumps(config[wc.method]),
        scorer=SCORERS[0],
        seed=config["seed"],
    shell:
        "python -m inpo_bench ablation-table --method {wildcards.method} --method-config {params.method_config:q}"
        " --cells {params.cells} --scores {input.scores} --scorer {params.scorer} --out-dir {params.out_dir}"
        " --seed {params.seed} > {log} 2>&1"


rule ablation_figure:
    input:
        table=f"{TABLES}/ablation_{{method}}.csv",
    output:
        report(
            f"{FIGURES}/ablation_{{method}}.png",
            caption="../report/ablation.rst",
            category="Ablations",
        ),
    log:
        f"{OUT}/logs/ablation_figure_{{method}}.log",
    conda:
        ENV
    params:
        scorer=SCORERS[0],
        promptset=PROMPTSETS[0],
    shell:
        "python -m inpo_bench ablation-figure --table {input.table} --scorer {params.scorer}"
        " --promptset {params.promptset} --out {output} > {log} 2>&1"


rule study_tables:
    input:
        unpack(study_inputs),
    output:
        **{
            name: report(
                f"{STUDY}/tables/{name}.csv",
                caption="../report/study.rst",
                category="Study",
            )
            for name in STUDY_TABLES
        },
        **(
            {
                "reward_kl": report(
                    f"{STUDY}/tables/reward_vs_kl.csv",
                    caption="../report/headroom.rst",
                    category="Study",
                ),
                "reward_kl_figure": report(
                    f"{STUDY}/figures/reward_vs_kl.png",
                    caption="../report/headroom.rst",
                    category="Study",
                ),
            }
            if STUDY_WORLD
            else {}
        ),
        figure=report(
            f"{STUDY}/figures/efficiency_curves.png",
            caption="../report/study.rst",
            category="Study",
        ),
    log:
        f"{OUT}/logs/tables/study.log",
    conda:
        ENV
    params:
        out_dir=folder("output.seed_gains"),
        groups=lambda wc: json.dumps(study_groups()),
        models=lambda wc, input: [os.path.dirname(p) for p in input.evals],
        world=lambda wc, input: (
            f"--headroom {input.headroom} --divergence {' '.join(input.divergence)}"
            if "headroom" in input.keys()
            else ""
        ),
        seed=config["seed"],
    shell:
        "python -m inpo_bench study --scores {input.scores} --groups {params.groups:q} --models {params.models}"
        " {params.world} --out-dir {params.out_dir} --figure {output.figure} --seed {params.seed} > {log} 2>&1"


use rule study_tables as study_replicate_tables with:
    # the same study on study.replicate_seeds, a disjoint set of trainings (`snakemake study_replicate`); its
    # tables stay out of the HTML report, which shows the comparison (study_stability) instead
    input:
        unpack(lambda wc: study_inputs(wc, config["study"]["replicate_seeds"])),
    output:
        **{name: f"{STUDY}/replicate/tables/{name}.csv" for name in STUDY_TABLES},
        figure=f"{STUDY}/replicate/figures/efficiency_curves.png",
    log:
        f"{OUT}/logs/tables/study_replicate.log",
    params:  # merged key by key into the parent's: only the groups differ
        groups=lambda wc: json.dumps(study_groups(config["study"]["replicate_seeds"])),


rule study_stability:
    # every verdict of the study against the replicate's: flips, and whether each gain lies in the other's interval
    input:
        first_gains=f"{STUDY}/tables/seed_gains.csv",
        first_claims=f"{STUDY}/tables/paper_claims.csv",
        second_gains=f"{STUDY}/replicate/tables/seed_gains.csv",
        second_claims=f"{STUDY}/replicate/tables/paper_claims.csv",
    output:
        gains=report(
            f"{STUDY}/tables/verdict_stability.csv",
            caption="../report/study.rst",
            category="Study",
        ),
        claims=report(
            f"{STUDY}/tables/claim_stability.csv",
            caption="../report/study.rst",
            category="Study",
        ),
    log:
        f"{OUT}/logs/tables/study_stability.log",
    conda:
        ENV
    params:
        first=folder("input.first_gains"),
        second=folder("input.second_gains"),
        out_dir=folder("output.gains"),
    shell:
        "python -m inpo_bench study-stability --first {params.first} --second {params.second}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule tune_tables:
    input:
        evals=lambda wc: [
            f"{OUT}/models/{model}/eval_log.csv" for _, _, model in tune_runs()
        ],
    output:
        choice=report(
            f"{OUT}/tune/tables/lr_choice.csv",
            caption="../report/tune.rst",
            category="Tune",
        ),
        verdicts=report(
            f"{OUT}/tune/tables/lr_verdicts.csv",
            caption="../report/tune.rst",
            category="Tune",
        ),
        figure=report(
            f"{OUT}/tune/figures/lr_curves.png",
            caption="../report/tune.rst",
            category="Tune",
        ),
    log:
        f"{OUT}/logs/tables/tune.log",
    conda:
        ENV
    params:
        out_dir=folder("output.choice"),
        runs=lambda wc: " ".join(
            f"{m}:{lr!r}:{OUT}/models/{model}" for m, lr, model in tune_runs()
        ),
        configured=lambda wc: json.dumps(
            {m: config[m]["lr"] for m in config["tune"]["lrs"]}
        ),
        window=" ".join(map(str, config["tune"]["window"])),
    shell:
        "python -m inpo_bench tune --runs {params.runs} --configured {params.configured:q} --window {params.window}"
        " --out-dir {params.out_dir} --figure {output.figure} > {log} 2>&1"
