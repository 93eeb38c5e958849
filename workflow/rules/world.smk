# Toy world: measurements of the world itself, beside the methods' scores: the base's headroom (best-of-n and the
# reward-tilted frontier from its own samples) and each trained model's divergence from the base.

if TOY:

    rule headroom:
        input:
            model=BASE_MODEL,
            world=f"{OUT}/world.json",
            prompts=f"{OUT}/prompts/{{promptset}}.csv",
        output:
            table=f"{OUT}/headroom/{{promptset}}.csv",
            rewards=f"{OUT}/headroom/{{promptset}}_rewards.csv",
        log:
            f"{OUT}/logs/headroom/{{promptset}}.log",
        benchmark:
            f"{OUT}/benchmarks/headroom/{{promptset}}.tsv"
        conda:
            ENV
        threads: 2
        params:
            model=folder("input.model"),
            spec=spec(
                **config["headroom"],
                steps=config["sample"]["steps"],
                guidance=config["sample"]["guidance"],
                batch_size=config["sample"]["batch_size"],
                device=config["device"],
            ),
        shell:
            "python -m inpo_bench headroom --model {params.model} --world {input.world} --prompts {input.prompts}"
            " --name {wildcards.promptset} --spec {params.spec:q} --out {output.table} --threads {threads}"
            " > {log} 2>&1"

    rule divergence:
        input:
            model=f"{OUT}/models/{{aligned}}/model.json",
            base=BASE_MODEL,
            index=f"{OUT}/samples/{{aligned}}/{{promptset}}/index.csv",
        output:
            f"{OUT}/divergence/{{aligned}}/{{promptset}}.json",
        log:
            f"{OUT}/logs/divergence/{{aligned}}/{{promptset}}.log",
        conda:
            ENV
        threads: 1
        params:
            model=folder("input.model"),
            base=folder("input.base"),
            samples=folder("input.index"),
            points=config["divergence"]["points"],
            device=config["device"],
        shell:
            "python -m inpo_bench divergence --model {params.model} --base {params.base} --samples {params.samples}"
            " --points {params.points} --device {params.device} --out {output} --threads {threads} > {log} 2>&1"
