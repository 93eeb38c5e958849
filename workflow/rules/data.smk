rule world:
    output:
        f"{OUT}/world.json",
    log:
        f"{OUT}/logs/world.log",
    conda:
        ENV
    params:
        spec=spec(world=config["world"], seed=config["seed"]),
    shell:
        "python -m inpo_bench world --spec {params.spec:q} --out {output} > {log} 2>&1"


rule promptset:
    input:
        unpack(promptset_inputs),
    output:
        csv=f"{OUT}/prompts/{{promptset}}.csv",
        record=f"{OUT}/prompts/{{promptset}}.json",
    log:
        f"{OUT}/logs/prompts/{{promptset}}.log",
    conda:
        ENV
    params:
        world=lambda wc, input: (
            f"--world {input.world}" if "world" in input.keys() else ""
        ),
        spec=spec(**config["prompts"]),
    shell:
        "python -m inpo_bench prompts --name {wildcards.promptset} {params.world} --spec {params.spec:q}"
        " --out {output.csv} > {log} 2>&1"


rule toy_pickapic:
    input:
        model=f"{OUT}/models/base/model.json",
        world=rules.world.output[0],
    output:
        f"{OUT}/data/raw/toy-pickapic-00000.parquet",
    log:
        f"{OUT}/logs/toy_pickapic.log",
    benchmark:
        f"{OUT}/benchmarks/toy_pickapic.tsv"
    conda:
        ENV
    threads: 2
    params:
        model=folder("input.model"),
        spec=spec(
            preferences=config["preferences"],
            seed=config["seed"],
            device=config["device"],
            batch_size=config["sample"]["batch_size"],
        ),
    shell:
        "python -m inpo_bench toy-pairs --model {params.model} --world {input.world} --spec {params.spec:q}"
        " --out {output} --threads {threads} > {log} 2>&1"


rule prepare_pairs:
    input:
        shards=rules.toy_pickapic.output,
    output:
        pairs=f"{OUT}/data/pairs.parquet",
        report=f"{OUT}/data/prepare.json",
    log:
        f"{OUT}/logs/prepare_pairs.log",
    conda:
        ENV
    params:
        shards=lambda wc, input: " ".join(f"--shard {s}" for s in input.shards),
    shell:
        "python -m inpo_bench prepare {params.shards} --out {output.pairs} --report {output.report}"
        " --source toy-oracle-bradley-terry > {log} 2>&1"
