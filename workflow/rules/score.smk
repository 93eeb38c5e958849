if TOY:

    rule score_oracle:
        input:
            index=f"{OUT}/samples/{{model}}/{{sampled_promptset}}/index.csv",
            world=f"{OUT}/world.json",
        output:
            **{
                name: f"{OUT}/scores/{{model}}/{{sampled_promptset}}/{name}.csv"
                for name in ORACLE_SCORERS
            },
        log:
            f"{OUT}/logs/score/{{model}}/{{sampled_promptset}}/oracle.log",
        benchmark:
            f"{OUT}/benchmarks/score_oracle/{{model}}/{{sampled_promptset}}.tsv"
        conda:
            ENV
        params:
            samples=folder("input.index"),
            out_dir=folder(f"output.{next(iter(ORACLE_SCORERS))}"),
        shell:
            "python -m inpo_bench score-oracle --samples {params.samples} --world {input.world}"
            " --out-dir {params.out_dir} > {log} 2>&1"


rule prepare_scorer:
    input:
        smoke=SMOKE,
    output:
        marker="resources/scorers/{prepared_scorer}/scorer.json",
    log:
        "resources/scorers/{prepared_scorer}.log",
    conda:
        ENV
    params:
        out_dir=folder("output.marker"),
        spec=lambda wc: spec(**config["scorers"][wc.prepared_scorer]),
    shell:
        "python -m inpo_bench prepare-scorer --scorer {wildcards.prepared_scorer} --spec {params.spec:q}"
        " --out {params.out_dir} > {log} 2>&1"


if MODEL_SCORERS_USED:

    rule score_model:
        input:
            unpack(prepared_scorer_input),
            smoke=SMOKE,
            index=f"{OUT}/samples/{{model}}/{{sampled_promptset}}/index.csv",
        output:
            f"{OUT}/scores/{{model}}/{{sampled_promptset}}/{{model_scorer}}.csv",
        log:
            f"{OUT}/logs/score/{{model}}/{{sampled_promptset}}/{{model_scorer}}.log",
        benchmark:
            f"{OUT}/benchmarks/score/{{model}}/{{sampled_promptset}}/{{model_scorer}}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            gpu=config["gpus"]["score"],
        params:
            samples=folder("input.index"),
            spec=scorer_runtime_config,
            device=config["scorers"]["device"],
            dtype=config["scorers"]["dtype"],
            batch_size=config["scorers"]["batch_size"],
        shell:
            "python -m inpo_bench score --scorer {wildcards.model_scorer} --samples {params.samples}"
            " --spec {params.spec:q} --device {params.device} --dtype {params.dtype}"
            " --batch-size {params.batch_size} --threads {threads} --out {output} > {log} 2>&1"


if DERIVED_PROMPTSETS:

    rule subset_scores:
        input:
            lambda wc: expand(
                f"{OUT}/scores/{wc.model}/{DERIVED_PROMPTSETS[wc.derived_promptset]}/{{scorer}}.csv",
                scorer=SCORERS,
            ),
        output:
            expand(
                f"{OUT}/scores/{{{{model}}}}/{{{{derived_promptset}}}}/{{scorer}}.csv",
                scorer=SCORERS,
            ),
        log:
            f"{OUT}/logs/score/{{model}}/{{derived_promptset}}/subset.log",
        wildcard_constraints:
            derived_promptset="|".join(map(re.escape, DERIVED_PROMPTSETS)),
        localrule: True  # a filter of a few CSV rows: not worth a cluster job
        conda:
            ENV
        params:
            out_dir=lambda wc, output: os.path.dirname(output[0]),
        shell:
            "python -m inpo_bench subset-scores --name {wildcards.derived_promptset} --scores {input}"
            " --out-dir {params.out_dir} > {log} 2>&1"
