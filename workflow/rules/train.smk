# Models: the base (pretrained here in the toy world, described otherwise) and every aligned model.

if TOY and config["toy_model"].get("vae"):

    rule toy_vae:
        # the latent toy world's autoencoder, trained once on the pretraining renders and frozen
        input:
            world=f"{OUT}/world.json",
        output:
            weights=TOY_VAE,
            log=f"{OUT}/models/vae/train_log.csv",
            record=f"{OUT}/models/vae/train.json",
        log:
            f"{OUT}/logs/train/vae.log",
        benchmark:
            f"{OUT}/benchmarks/toy_vae.tsv"
        conda:
            ENV
        threads: 2
        params:
            out_dir=folder("output.weights"),
            scratch=f"{OUT}/scratch/vae",
            spec=spec(
                toy_model=config["toy_model"],
                pretrain=config["pretrain"],
                seed=config["seed"],
                device=config["device"],
            ),
        shell:
            "python -m inpo_bench toy-vae --world {input.world} --spec {params.spec:q} --out {params.out_dir}"
            " --scratch {params.scratch} --threads {threads} > {log} 2>&1"


if TOY:

    rule pretrain_base:
        input:
            **({"vae": TOY_VAE} if config["toy_model"].get("vae") else {}),
            world=f"{OUT}/world.json",
        output:
            model=BASE_MODEL,
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
            vae=lambda wc, input: (
                f"--vae {os.path.dirname(input.vae)}" if "vae" in input.keys() else ""
            ),
            scratch=f"{OUT}/scratch/base",
            spec=spec(
                toy_model=config["toy_model"],
                pretrain=config["pretrain"],
                progress_eval=toy_progress_eval(config),
                seed=config["seed"],
                device=config["device"],
            ),
        shell:
            "python -m inpo_bench pretrain --world {input.world} {params.vae} --spec {params.spec:q}"
            " --out {params.out_dir} --scratch {params.scratch} --threads {threads} > {log} 2>&1"

else:

    rule base_model:
        input:
            smoke=SMOKE,
        output:
            model=BASE_MODEL,
        log:
            f"{OUT}/logs/base_model.log",
        conda:
            ENV
        params:
            out_dir=folder("output.model"),
            kind=config["base"]["kind"],
            pretrained=config["base"]["pretrained"],
            vae=f"--vae {config['base']['vae']}" if config["base"]["vae"] else "",
            resolution=config["base"]["resolution"],
        shell:
            "python -m inpo_bench base-model --kind {params.kind} --pretrained {params.pretrained} {params.vae}"
            " --resolution {params.resolution} --out {params.out_dir} > {log} 2>&1"


rule resolve_checkpoint:
    # a released checkpoint (config `checkpoints`) on top of the base: fetched, checked, described once
    input:
        smoke=SMOKE,
        base=BASE_MODEL,
    output:
        model=f"{OUT}/models/{{release}}/model.json",
    log:
        f"{OUT}/logs/checkpoint/{{release}}.log",
    conda:
        ENV
    params:
        out_dir=folder("output.model"),
        base=folder("input.base"),
        # what the weights depend on; method and note are labels, read by the tables job
        spec=lambda wc: spec(
            **{
                k: v
                for k, v in config["checkpoints"][wc.release].items()
                if k in CHECKPOINT_LOAD_KEYS
            }
        ),
    shell:
        "python -m inpo_bench checkpoint --name {wildcards.release} --spec {params.spec:q} --base {params.base}"
        " --out {params.out_dir} > {log} 2>&1"


rule train:
    input:
        unpack(train_inputs),
    output:
        # always declared: switching paper scale's progress measurements on or off must not retrain a model
        evals=f"{OUT}/models/{{aligned}}/eval_log.csv",
        model=f"{OUT}/models/{{aligned}}/model.json",
        log=f"{OUT}/models/{{aligned}}/train_log.csv",
        record=f"{OUT}/models/{{aligned}}/train.json",
    log:
        f"{OUT}/logs/train/{{aligned}}.log",
    benchmark:
        f"{OUT}/benchmarks/train/{{aligned}}.tsv"
    conda:
        ENV
    threads: 1 if TOY else 8
    resources:
        gpu=config["gpus"]["train"],
        # settings that cannot change the weights travel as resources, which (unlike params) never trigger a rerun
        checkpoint_every=lambda wc: method_config(wc.aligned)["checkpoint_every"],
        # paper scale: progress measurements (the toy world's are part of the spec: they shape its outputs)
        eval_every=lambda wc: method_config(wc.aligned)["eval_every"],
        progress=progress_resource(),
        gradient_checkpointing=int(config["training"]["gradient_checkpointing"]),
        data_workers=config["data"]["workers"],
    params:
        launch=launcher,
        method=lambda wc: wc.aligned.split("/")[0],
        init=folder("input.init"),
        out_dir=folder("output.model"),
        world=lambda wc, input: (
            f"--world {input.world}" if "world" in input.keys() else ""
        ),
        encoded=lambda wc, input: (
            f"--encoded {os.path.dirname(input.encoded)}"
            if "encoded" in input.keys()
            else ""
        ),
        pair_scores=lambda wc, input: (
            f"--pair-scores {input.pair_scores}"
            if "pair_scores" in input.keys()
            else ""
        ),
        # checkpoints live outside the declared outputs, so a failed or killed attempt resumes from them
        scratch=f"{OUT}/scratch/{{aligned}}",
        spec=lambda wc: train_spec(wc.aligned),
    shell:
        "{params.launch} train --method {params.method} --init {params.init} --pairs {input.pairs} {params.world}"
        " {params.encoded} {params.pair_scores} --spec {params.spec:q} --out {params.out_dir} --scratch {params.scratch}"
        " --checkpoint-every {resources.checkpoint_every} --gradient-checkpointing {resources.gradient_checkpointing}"
        " --eval-every {resources.eval_every} --progress {resources.progress}"
        " --workers {resources.data_workers}"
        " --threads {threads} > {log} 2>&1"
