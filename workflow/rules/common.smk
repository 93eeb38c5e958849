import base64
import json
import os
import re
import shlex
import sys

# Jobs run this checkout's package, installed or not (a conda environment from envs/ holds only dependencies),
# so a stale install can never answer for the code here.
SRC = os.path.join(REPO, "src")
sys.path.insert(0, SRC)
# (the prefix is formatted like a shell command, hence the doubled braces)
shell.prefix(
    "export PYTHONPATH=" + shlex.quote(SRC) + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)

from inpo_bench.config import (
    ConfigError,
    toy_progress_eval,
    training_spec,
    validate_config,
)
from inpo_bench.data.prompts import REAL_SETS as REAL_PROMPTSETS
from inpo_bench.data.prompts import derived_promptsets
from inpo_bench.methods import get as get_method
from inpo_bench.models.checkpoints import LOAD_KEYS as CHECKPOINT_LOAD_KEYS
from inpo_bench.methods import names as method_names
from inpo_bench.scorers import (
    MODEL_SCORERS,
    ORACLE_SCORERS,
    TOY_MODEL_SCORERS,
    runtime_config,
)
from inpo_bench.scorers import section as scorer_section
from inpo_bench.scorers import PREPARED as PREPARED_SCORERS
from inpo_bench.toyworld.world import PROMPT_SETS as TOY_PROMPTSETS

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

OUT = f"results/{config['run']}"
TOY = config["base"]["kind"] == "toy"
# paper scale: training jobs measure their model with progress_eval's scorer (eval_log.csv, training curves)
WATCH = not TOY and bool(config["progress_eval"].get("scorer"))
BASE_MODEL = f"{OUT}/models/base/model.json"
PAPER_TABLE = os.path.join(REPO, "results", "paper", "inpo_cvpr2025_winrates.csv")
INDEPENDENT_TABLE = os.path.join(REPO, "results", "paper", "independent_means.csv")
PAIR_SOURCE = "toy-oracle-bradley-terry" if TOY else "pickapic_v2"
# the smoke config builds its stand-in downloads first; every rule that reads them waits for this file
SMOKE = ["resources/smoke/manifest.json"] if config["smoke"] else []
ENV = f"../../envs/{config['software_env']}.yaml"
# every registered method can train (the `zoo` target trains them all); the default target trains config's `methods`
ALL_METHODS = method_names()
METHODS = config["methods"]
# released checkpoints (config `checkpoints`): evaluated like the trained models, never trained
CHECKPOINTS = list(config["checkpoints"])
MODELS = ["base", *METHODS, *CHECKPOINTS]
PROMPTSETS = config["eval"]["promptsets"]
# HPDv2's styles are scored from hpdv2's images when the run has both: sampled once, never twice
DERIVED_PROMPTSETS = derived_promptsets(PROMPTSETS)
SAMPLED_PROMPTSETS = [p for p in PROMPTSETS if p not in DERIVED_PROMPTSETS]
SCORERS = config["eval"]["scorers"]
MODEL_SCORERS_USED = [name for name in SCORERS if name in MODEL_SCORERS]
# learned toy scorers (the toy PickScore) are compared with the oracle in tables/scorer_agreement.csv
LEARNED_TOY_SCORERS = (
    [
        name
        for name in SCORERS
        if name in TOY_MODEL_SCORERS and "oracle_reward" in SCORERS
    ]
    if TOY
    else []
)


wildcard_constraints:
    method="|".join(ALL_METHODS),
    # an aligned model: a method, or an ablation cell of it (inpo/beta~500, inpo/t_max~500/inv_grid~exact)
    aligned=rf"({'|'.join(ALL_METHODS)})(/[A-Za-z0-9_]+~[^/]+)*",
    model=r"[A-Za-z0-9_.~/-]+",
    promptset=r"[^/]+",
    sampled_promptset="|".join(map(re.escape, SAMPLED_PROMPTSETS)),
    model_scorer="|".join(MODEL_SCORERS_USED) or "^$",
    label_scorer="|".join(MODEL_SCORERS),
    scorer=r"[^/]+",
    prepared_scorer="|".join(PREPARED_SCORERS),
    release="|".join(CHECKPOINTS) or "^$",


def folder(name):
    """A params function: the directory of the named input or output file."""
    kind, key = name.split(".")
    return lambda wc, input, output: os.path.dirname(
        getattr({"input": input, "output": output}[kind], key)
    )


def promptset_inputs(wildcards):
    """A toy prompt set needs the world; a real one its local upstream file, if one is configured."""
    if wildcards.promptset in TOY_PROMPTSETS:
        return {"world": f"{OUT}/world.json"}
    source = config["prompts"].get(REAL_PROMPTSETS[wildcards.promptset].source)
    local = source not in (None, "hub")  # null: the shipped file; hub: a download
    return (
        {"smoke": SMOKE} if config["smoke"] else ({"source": source} if local else {})
    )


def pair_shards(wildcards):
    """The parquet shards prepare_pairs reads: the toy world's, local Pick-a-Pic ones, or none (it downloads)."""
    if TOY:
        return {"shards": [f"{OUT}/data/raw/toy-pickapic-00000.parquet"]}
    shards = config["data"]["pickapic"]["shards"]
    return {"smoke": SMOKE, **({"shards": shards} if shards else {})}


def train_inputs(wildcards):
    cfg = method_config(wildcards.aligned)
    inputs = {
        "init": f"{OUT}/models/{cfg['init']}/model.json",
        "base": BASE_MODEL,
        "pairs": f"{OUT}/data/pairs.parquet",
    }
    if TOY:
        inputs["world"] = f"{OUT}/world.json"
    if config["data"]["encoding"] == "disk":
        inputs["encoded"] = f"{OUT}/data/encoded/encoded.json"
    if get_method(
        wildcards.aligned.split("/")[0]
    ).pair_scores:  # SmPO: the pairs scored by its label scorer
        inputs["pair_scores"] = f"{OUT}/data/pair_scores/{cfg['label_scorer']}.parquet"
    return inputs


def progress_resource():
    """Paper scale: what a training job's progress measurements need (scorers/progress.py) as base64 JSON, passed
    as a resource, not a param: changing the scorer or the prompts retrains nothing. "none": no measurements.
    """
    if not WATCH:
        return "none"
    progress, name = config["progress_eval"], config["progress_eval"]["scorer"]
    settings = config["scorers"].get(scorer_section(name), {})
    settings = spec(
        **progress,
        scorer_spec=runtime_config(name, settings, prepared_dir(name)),
        prompt_sources={
            **config["prompts"],
            "pickapic": {
                k: config["data"]["pickapic"][k] for k in ("repo", "revision", "cache")
            },
        },
        dtype=config["sample"]["dtype"],
        batch_size=config["sample"]["batch_size"],
        scorer_dtype=config["scorers"]["dtype"],
        score_batch_size=config["scorers"]["batch_size"],
    )
    return base64.b64encode(
        settings.encode()
    ).decode()  # one shell word, whatever the paths hold


TOY_REWARD = f"{OUT}/models/toy_reward/model.json"
# toy world: the base's headroom and each trained model's divergence (rules/world.smk) beside the scores
TOY_PROMPTSETS_USED = [p for p in SAMPLED_PROMPTSETS if p in TOY_PROMPTSETS]
WORLD_TABLES = TOY and "oracle_reward" in SCORERS and bool(TOY_PROMPTSETS_USED)


def world_inputs(methods):
    if not WORLD_TABLES:
        return {}
    return {
        "headroom": expand(f"{OUT}/headroom/{{p}}.csv", p=TOY_PROMPTSETS_USED),
        "divergence": expand(
            f"{OUT}/divergence/{{m}}/{{p}}.json", m=methods, p=TOY_PROMPTSETS_USED
        ),
    }


TOY_VAE = f"{OUT}/models/vae/diffusion_pytorch_model.safetensors"


def launcher(wildcards, resources):
    """One process, or accelerate with one process per GPU when the job has several (resources.gpu)."""
    gpus = int(resources.gpu)
    if gpus <= 1:
        return "python -m inpo_bench"
    precision = config["training"]["mixed_precision"]
    return (
        f"accelerate launch --multi_gpu --num_processes {gpus} --num_machines 1 --mixed_precision {precision}"
        " --dynamo_backend no -m inpo_bench"
    )


def prepared_dir(name):
    """Where a scorer's prepared weights live: resources/scorers/<name>/, or the run's toy reward model."""
    if name == "toy_reward":
        return os.path.dirname(TOY_REWARD)
    return f"resources/scorers/{name}" if name in PREPARED_SCORERS else None


def prepared_input(name):
    folder = prepared_dir(name)
    if folder is None:
        return {}
    return {"prepared": TOY_REWARD if name == "toy_reward" else f"{folder}/scorer.json"}


def scorer_spec(name):
    """What one scorer loads (its settings alone, so that changing another scorer reruns nothing), with prepared
    files in place of the upstream ones. Not a function of the job's input: Snakemake does not track such params.
    """
    settings = config["scorers"].get(scorer_section(name), {})
    return spec(**{name: runtime_config(name, settings, prepared_dir(name))})


def prepared_scorer_input(wildcards):
    return prepared_input(wildcards.model_scorer)


def scorer_runtime_config(wildcards):
    return scorer_spec(wildcards.model_scorer)


def score_files(models):
    """Every score file of these models: all prompt sets x all configured scorers."""
    return expand(
        f"{OUT}/scores/{{model}}/{{promptset}}/{{scorer}}.csv",
        model=models,
        promptset=PROMPTSETS,
        scorer=SCORERS,
    )


def spec(**sections):
    """A stage's settings as one JSON argument; a change reruns only the rules whose sections changed."""
    return json.dumps(sections, sort_keys=True)


# Ablation cells: method -> model ids such as inpo/beta~500/t_max~999 (checked as full configs right here)
from inpo_bench.ablations import cell_config, read_tables

try:
    ABLATIONS = {
        method: [
            f"{method}/{cell}" for cell in read_tables(paths, config, method, REPO)
        ]
        for method, paths in config["ablations"].items()
        if paths  # [] turns a method's ablations off
    }
except ConfigError as error:
    raise WorkflowError(str(error)) from None
ABLATION_MODELS = [model for models in ABLATIONS.values() for model in models]


def train_spec(model):
    """What a training job's weights depend on (config.training_spec); the rest travels as resources (train.smk)."""
    return spec(**training_spec(config, method_config(model)))


def method_config(model):
    """The training config of a model id: a method's section, or an ablation cell of it."""
    method, _, cell = model.partition("/")
    return cell_config(config[method], cell) if cell else config[method]


def suite_rule(name, suite):
    return name if suite == "main" else f"{suite}_{name}"


ZOO_COMPARISONS = [f"{m}:base" for m in ALL_METHODS] + [
    f"{m}:dpo" for m in ALL_METHODS if m != "dpo"
]
# suite -> (root of its tables and figures, the methods it trains, every model it evaluates, its win rates,
# the method whose gain defines the toy efficiency targets)
SUITES = {
    "main": (
        OUT,
        METHODS,
        MODELS,
        config["tables"]["comparisons"],
        "dpo" if "dpo" in METHODS or not METHODS else METHODS[0],
    ),
    "zoo": (f"{OUT}/zoo", ALL_METHODS, ["base", *ALL_METHODS], ZOO_COMPARISONS, "dpo"),
}


def paper_models_args():
    """The paper comparison's stand-ins: --paper-models inpo:inpo_release ... and --paper-missing as JSON."""
    tables = config["tables"]
    models = " ".join(f"{k}:{v}" for k, v in tables["paper_models"].items())
    return (f" --paper-models {models}" if models else "") + (
        f" --paper-missing {shlex.quote(json.dumps(tables['paper_missing']))}"
        if tables["paper_missing"]
        else ""
    )


def study_groups(seeds=None):
    """The study's models: base, and each study method at each of study.train_seeds (or the given seeds: the
    replicate's); the method's own seed is its main model, the others the cells <method>/train_seed~<seed> of the
    seed ablations.
    """
    study = config["study"]
    seeds = study["train_seeds"] if seeds is None else seeds
    methods = ALL_METHODS if study["methods"] == "all" else study["methods"]
    groups = {"base": ["base"]}
    for method in methods:
        own = config[method]["train_seed"]
        own = config["seed"] if own is None else own
        groups[method] = [
            method if seed == own else f"{method}/train_seed~{seed}" for seed in seeds
        ]
    return groups


STUDY = f"{OUT}/study"
STUDY_TABLES = (
    "seed_gains",
    "compute_to_reach",
    "paper_claims",
    "curve_summary",
    "training_curves",
    "mean_scores",
)


# the study's reward against divergence, when it scores the true reward on toy_seen
STUDY_WORLD = (
    TOY and "oracle_reward" in config["study"]["scorers"] and "toy_seen" in PROMPTSETS
)


def study_inputs(wildcards, seeds=None):
    if not TOY:
        raise WorkflowError(
            "`snakemake study` (and study_replicate) is a toy-world target: it reads the oracle's training curves, "
            "which a paper-scale run does not have"
        )
    groups = study_groups(seeds)
    models = [m for ms in groups.values() for m in ms]
    return {
        "scores": expand(
            f"{OUT}/scores/{{model}}/{{promptset}}/{{scorer}}.csv",
            model=models,
            promptset=PROMPTSETS,
            scorer=config["study"]["scorers"],
        ),
        "evals": [f"{OUT}/models/{m}/eval_log.csv" for m in models if m != "base"],
        # reward against divergence on toy_seen, when the study scores the true reward there
        **(
            {
                "headroom": f"{OUT}/headroom/toy_seen.csv",
                "divergence": [
                    f"{OUT}/divergence/{m}/toy_seen.json" for m in models if m != "base"
                ],
            }
            if STUDY_WORLD
            else {}
        ),
    }


def tune_runs():
    """The tune target's grid as (method, lr, model id): the lr a method trains today is its main model, any other
    the cell <method>/lr~<lr>; a method whose grid is [] is left out."""
    if not TOY:
        raise WorkflowError(
            "`snakemake tune` is a toy-world target: it judges learning rates on the oracle's progress evaluation, "
            "which a paper-scale run does not have"
        )
    runs = []
    for method, lrs in config["tune"]["lrs"].items():
        for lr in lrs:
            own = abs(lr - config[method]["lr"]) <= 1e-9 * lr
            runs.append((method, lr, method if own else f"{method}/lr~{lr:g}"))
    return runs
