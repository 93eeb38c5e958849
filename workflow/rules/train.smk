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
