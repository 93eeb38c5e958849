rule mean_table:
    input:
        expand(
            f"{OUT}/scores/{{model}}/{{promptset}}/{{scorer}}.csv",
            model=MODELS,
            promptset=PROMPTSETS,
            scorer=SCORERS,
        ),
    output:
        csv=f"{OUT}/tables/mean_scores.csv",
        md=f"{OUT}/tables/mean_scores.md",
    log:
        f"{OUT}/logs/tables/mean_scores.log",
    conda:
        ENV
    params:
        seed=config["seed"],
    shell:
        "python -m inpo_bench mean-table --out {output.csv} --markdown {output.md} --seed {params.seed}"
        " {input} > {log} 2>&1"
