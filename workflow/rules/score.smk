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
