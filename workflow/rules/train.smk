rule pretrain_base:
    input:
        world=rules.world.output[0],
    output:
        model=f"{OUT}/models/base/model.json",
        log=f"{OUT}/models/base/train_log.csv",
        record=f"{OUT}/models/base/train.json",
        evals=f"{OUT}/models/base/eval_log.csv",
    log:
        f"{OUT}/logs/train/base.log",
    benchmark:
        f"{OUT}/benchmarks/pretrain_base.tsv"
    conda:
        ENV
    threads: 2
    params:
        out_dir=folder("output.model"),
        # checkpoints live outside the declared outputs, so a failed or killed attempt resumes from them
        scratch=f"{OUT}/scratch/base",
        spec=spec(
            toy_model=config["toy_model"],
            pretrain=config["pretrain"],
            progress_eval=config["progress_eval"],
            seed=config["seed"],
            device=config["device"],
        ),
    shell:
        "python -m inpo_bench pretrain --world {input.world} --spec {params.spec:q} --out {params.out_dir}"
        " --scratch {params.scratch} --threads {threads} > {log} 2>&1"


rule train:
    input:
        init=lambda wc: f"{OUT}/models/{method_config(wc.aligned)['init']}/model.json",
        base=rules.pretrain_base.output.model,
        pairs=rules.prepare_pairs.output.pairs,
        world=rules.world.output[0],
    output:
        model=f"{OUT}/models/{{aligned}}/model.json",
        log=f"{OUT}/models/{{aligned}}/train_log.csv",
        evals=f"{OUT}/models/{{aligned}}/eval_log.csv",
        record=f"{OUT}/models/{{aligned}}/train.json",
    log:
        f"{OUT}/logs/train/{{aligned}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{aligned}}.tsv"
    conda:
        ENV
    threads: 1
    params:
        method=lambda wc: wc.aligned.split("/")[0],
        init=folder("input.init"),
        out_dir=folder("output.model"),
        scratch=f"{OUT}/scratch/{{aligned}}",
        spec=lambda wc: spec(
            method=method_config(wc.aligned),
            progress_eval=config["progress_eval"],
            seed=config["seed"],
            device=config["device"],
        ),
    shell:
        "python -m inpo_bench train --method {params.method} --init {params.init} --pairs {input.pairs}"
        " --world {input.world} --spec {params.spec:q} --out {params.out_dir} --scratch {params.scratch}"
        " --threads {threads} > {log} 2>&1"
