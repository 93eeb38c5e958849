rule sample:
    input:
        model=f"{OUT}/models/{{model}}/model.json",
        components=BASE_MODEL,  # aligned models load their text encoder (and VAE) from the base
        prompts=f"{OUT}/prompts/{{sampled_promptset}}.csv",
    output:
        index=f"{OUT}/samples/{{model}}/{{sampled_promptset}}/index.csv",
        record=f"{OUT}/samples/{{model}}/{{sampled_promptset}}/sample.json",
    log:
        f"{OUT}/logs/sample/{{model}}/{{sampled_promptset}}.log",
    benchmark:
        f"{OUT}/benchmarks/sample/{{model}}/{{sampled_promptset}}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        gpu=config["gpus"]["sample"],
    params:
        model=folder("input.model"),
        out_dir=folder("output.index"),
        spec=spec(**config["sample"], device=config["device"]),
    shell:
        "python -m inpo_bench sample --model {params.model} --prompts {input.prompts} --out-dir {params.out_dir}"
        " --spec {params.spec:q} --threads {threads} > {log} 2>&1"
