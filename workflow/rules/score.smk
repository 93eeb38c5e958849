if TOY:

    rule score_oracle:
        input:
            index=f"{OUT}/samples/{{model}}/{{promptset}}/index.csv",
            world=f"{OUT}/world.json",
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

    rule score_models:
        input:
            unpack(prepared_scorer_inputs),
            smoke=SMOKE,
            index=f"{OUT}/samples/{{model}}/{{promptset}}/index.csv",
        output:
            **{
                name: f"{OUT}/scores/{{model}}/{{promptset}}/{name}.csv"
                for name in MODEL_SCORERS_USED
            },
        log:
            f"{OUT}/logs/score/{{model}}/{{promptset}}/models.log",
        benchmark:
            f"{OUT}/benchmarks/score/{{model}}/{{promptset}}/models.tsv"
        conda:
            ENV
        threads: 1
        resources:
            gpu=config["gpus"]["score"],
        params:
            samples=folder("input.index"),
            out_dir=lambda wc, output: os.path.dirname(output[0]),
            scorers=" ".join(f"--scorer {name}" for name in MODEL_SCORERS_USED),
            spec=lambda wc, input: spec(**scorer_runtime_configs(input)),
            device=config["scorers"]["device"],
            dtype=config["scorers"]["dtype"],
            batch_size=config["scorers"]["batch_size"],
        shell:
            "python -m inpo_bench score {params.scorers} --samples {params.samples} --spec {params.spec:q}"
            " --device {params.device} --dtype {params.dtype} --batch-size {params.batch_size}"
            " --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"
