# Data: the toy world and its preference pairs, or Pick-a-Pic v2; prompt sets for evaluation.

if config["smoke"]:

    rule smoke_assets:
        output:
            manifest="resources/smoke/manifest.json",
            pickapic="resources/smoke/pickapic_v2/data/train-00000-of-00001.parquet",
        log:
            "resources/smoke.log",
        conda:
            ENV
        params:
            out_dir=folder("output.manifest"),
        shell:
            "python -m inpo_bench smoke-assets --out {params.out_dir} > {log} 2>&1"


if TOY:

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

    rule toy_pickapic:
        input:
            model=BASE_MODEL,
            world=f"{OUT}/world.json",
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
        # `prompts.pickapic_test_unique: hub` reads the training data's mirror, with its lock
        spec=spec(
            **config["prompts"],
            pickapic={
                k: config["data"]["pickapic"][k] for k in ("repo", "revision", "cache")
            },
        ),
    shell:
        "python -m inpo_bench prompts --name {wildcards.promptset} {params.world} --spec {params.spec:q}"
        " --out {output.csv} > {log} 2>&1"


rule prepare_pairs:
    input:
        unpack(pair_shards),
    output:
        pairs=f"{OUT}/data/pairs.parquet",
        offsets=f"{OUT}/data/pairs.offsets.npy",  # byte range of every image, for row-level reads
        report=f"{OUT}/data/prepare.json",
    log:
        f"{OUT}/logs/prepare_pairs.log",
    benchmark:
        f"{OUT}/benchmarks/prepare_pairs.tsv"
    conda:
        ENV
    params:
        label_source=PAIR_SOURCE,
        shards=lambda wc, input: (
            " ".join(f"--shard {s}" for s in input.shards)
            if "shards" in input.keys()
            else ""
        ),
        # a user's local copy is locked like a download; the toy world's and the smoke stand-in's shards are this
        # DAG's own outputs
        lock="" if TOY or config["smoke"] else "--lock",
        repo=config["data"]["pickapic"]["repo"],
        revision=config["data"]["pickapic"]["revision"],
        split=config["data"]["pickapic"]["split"],
        max_shards=config["data"]["pickapic"]["max_shards"],
        cache=config["data"]["pickapic"]["cache"],
    shell:
        "python -m inpo_bench prepare {params.shards} {params.lock} --repo {params.repo}"
        " --revision {params.revision} --split {params.split} --max-shards {params.max_shards}"
        " --cache {params.cache} --out {output.pairs} --report {output.report}"
        " --label-source {params.label_source} > {log} 2>&1"


if config["data"]["encoding"] == "disk":

    rule encode_pairs:
        input:
            pairs=f"{OUT}/data/pairs.parquet",
            offsets=f"{OUT}/data/pairs.offsets.npy",
            model=BASE_MODEL,
        output:
            marker=f"{OUT}/data/encoded/encoded.json",
        log:
            f"{OUT}/logs/encode_pairs.log",
        benchmark:
            f"{OUT}/benchmarks/encode_pairs.tsv"
        conda:
            ENV
        threads: max(1, config["data"]["workers"])
        resources:
            gpu=min(1, config["gpus"]["train"]),
            data_workers=config["data"]["workers"],  # not a param: the worker count cannot change the latents
        params:
            # the chunks live beside the marker: a killed or retried job keeps the finished ones
            out_dir=folder("output.marker"),
            model=folder("input.model"),
            device=config["device"],
            flip="--flip" if config["data"]["flip"] else "",
        shell:
            "python -m inpo_bench encode-pairs --pairs {input.pairs} --model {params.model} --out {params.out_dir}"
            " {params.flip} --workers {resources.data_workers} --device {params.device} > {log} 2>&1"


# SmPO's smoothed labels: every pair's two images scored by its label scorer (never the toy oracle)
rule score_pairs:
    input:
        unpack(lambda wc: prepared_input(wc.label_scorer)),
        smoke=SMOKE,
        pairs=f"{OUT}/data/pairs.parquet",
    output:
        f"{OUT}/data/pair_scores/{{label_scorer}}.parquet",
    log:
        f"{OUT}/logs/score_pairs/{{label_scorer}}.log",
    benchmark:
        f"{OUT}/benchmarks/score_pairs/{{label_scorer}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=config["gpus"]["score"],
    params:
        spec=lambda wc: scorer_spec(wc.label_scorer),
        device=config["scorers"]["device"],
        dtype=config["scorers"]["dtype"],
        batch_size=config["scorers"]["batch_size"],
    shell:
        "python -m inpo_bench score-pairs --pairs {input.pairs} --scorer {wildcards.label_scorer}"
        " --spec {params.spec:q} --device {params.device} --dtype {params.dtype}"
        " --batch-size {params.batch_size} --threads {threads} --out {output} > {log} 2>&1"


if TOY:

    rule toy_reward:
        input:
            pairs=f"{OUT}/data/pairs.parquet",
            base=BASE_MODEL,
        output:
            TOY_REWARD,
        log:
            f"{OUT}/logs/train/toy_reward.log",
        benchmark:
            f"{OUT}/benchmarks/toy_reward.tsv"
        conda:
            ENV
        threads: 1
        params:
            base=folder("input.base"),
            out_dir=lambda wc, output: os.path.dirname(output[0]),
            spec=spec(toy_reward=config["toy_reward"], seed=config["seed"]),
        shell:
            "python -m inpo_bench toy-reward --pairs {input.pairs} --base {params.base} --spec {params.spec:q}"
            " --out {params.out_dir} --threads {threads} > {log} 2>&1"
