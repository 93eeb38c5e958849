rule score_oracle:
    input:
        index=f"{OUT}/samples/{{model}}/{{promptset}}/index.csv",
        world=rules.world.output[0],
    output:
        **{
            name: f"{OUT}/scores/{{model}}/{{promptset}}/{name}.csv"
            for name in ORACLE_SCORERS
        },
    log:
        f"{OUT}/logs/score/{{model}}/{{promptset}}/oracle.log",
    benchmark:
        f"{OUT}/benchmarks/score_oracle/{{model}}/{{promptset}}.tsv"
    conda:
        ENV
    params:
        samples=folder("input.index"),
        out_dir=folder(f"output.{next(iter(ORACLE_SCORERS))}"),
    shell:
        "python -m inpo_bench score-oracle --samples {params.samples} --world {input.world}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule prepare_scorer:
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


rule score_model:
    input:
        unpack(prepared_scorer_input),
        index=f"{OUT}/samples/{{model}}/{{promptset}}/index.csv",
    output:
        f"{OUT}/scores/{{model}}/{{promptset}}/{{model_scorer}}.csv",
    log:
        f"{OUT}/logs/score/{{model}}/{{promptset}}/{{model_scorer}}.log",
    benchmark:
        f"{OUT}/benchmarks/score/{{model}}/{{promptset}}/{{model_scorer}}.tsv"
    conda:
        ENV
    threads: 1
    params:
        samples=folder("input.index"),
        spec=lambda wc, input: spec(
            **runtime_config(
                wc.model_scorer,
                config["scorers"][wc.model_scorer],
                (
                    os.path.dirname(input.prepared)
                    if "prepared" in input.keys()
                    else None
                ),
            )
        ),
        device=config["scorers"]["device"],
        dtype=config["scorers"]["dtype"],
        batch_size=config["scorers"]["batch_size"],
    shell:
        "python -m inpo_bench score --scorer {wildcards.model_scorer} --samples {params.samples}"
        " --spec {params.spec:q} --device {params.device} --dtype {params.dtype} --batch-size {params.batch_size}"
        " --threads {threads} --out {output} > {log} 2>&1"
