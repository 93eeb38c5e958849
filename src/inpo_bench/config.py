"""Load, merge and validate run configurations against the package's JSON schema.

The Snakefile calls `validate_config` before it builds the DAG, so a mistyped key or a wrong type stops the run
before any job starts, with a message that names the key.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import ConfigError


@cache
def schema() -> dict[str, Any]:
    """The config schema: schemas/config.schema.yaml plus one section per registered method (its shared keys,
    `$defs/method_keys`, and the keys its module declares), its `ablations` entry and its `tune.lrs` grid."""
    from .methods import methods

    text = resources.files("inpo_bench").joinpath("schemas/config.schema.yaml").read_text()
    full = yaml.safe_load(text)
    shared, required = full["$defs"]["method_keys"], full["$defs"]["method_required"]
    for name, method in methods().items():
        full["properties"][name] = {
            "description": f"{method.title} ({method.source}).",
            "type": "object",
            "additionalProperties": False,
            "required": [*required, *method.schema],
            "properties": {**shared, **method.schema},
        }
        full["required"].append(name)
        full["properties"]["ablations"]["properties"][name] = {"$ref": "#/$defs/tsv_files"}
        full["properties"]["tune"]["properties"]["lrs"]["properties"][name] = {"$ref": "#/$defs/lr_grid"}
    return full


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's --configfile semantics: nested dicts merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(*paths: str | Path) -> dict[str, Any]:
    """Merge YAML files left to right (the first is normally config/config.yaml) and validate the result."""
    config: dict[str, Any] = {}
    for path in paths:
        with open(path) as handle:
            loaded = yaml.safe_load(handle) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file must be a mapping of keys to values")
        config = deep_merge(config, loaded)
    return validate_config(config)


# Method keys added after models had been trained with what is now their default. A training spec leaves such a
# default out, so the specs (and outputs) of those models stay valid instead of retraining every model of a run; the
# training job reads the default back (methods/base.py Context).
IMPLICIT_DEFAULTS: dict[str, Any] = {"t_sampling": "uniform"}


def runtime_keys(config: dict[str, Any]) -> tuple[str, ...]:
    """Keys of a method's section that cannot change the trained weights (eval_every matters in the toy world
    only, where it shapes the progress curve). Training jobs get them outside their --spec, so that changing them
    retrains nothing."""
    return ("checkpoint_every",) if config["base"]["kind"] == "toy" else ("checkpoint_every", "eval_every")


def training_spec(config: dict[str, Any], method_config: dict[str, Any]) -> dict[str, Any]:
    """What a training job's weights depend on (its --spec): a change of any of it retrains the model."""
    spec = {
        "method": {
            k: v
            for k, v in method_config.items()
            if k not in runtime_keys(config) and (k, v) not in IMPLICIT_DEFAULTS.items()
        },
        "training": {"mixed_precision": config["training"]["mixed_precision"]},
        "data": {"encoding": config["data"]["encoding"], "flip": config["data"]["flip"]},
        "seed": config["seed"],
        "device": config["device"],
    }
    if config["base"]["kind"] == "toy":  # the oracle's progress measurements are part of the toy outputs
        spec["progress_eval"] = toy_progress_eval(config)
    return spec


TOY_PROGRESS_KEYS = ("prompts", "seed", "steps", "guidance")


def toy_progress_eval(config: dict[str, Any]) -> dict[str, Any]:
    """The toy world's progress_eval (its oracle measurements shape the toy outputs; the paper-scale keys do not);
    `seeds` only when it is not 1, so the specs of runs made before it existed stay valid."""
    progress = config["progress_eval"]
    seeds = {"seeds": progress["seeds"]} if progress.get("seeds", 1) != 1 else {}
    return {**{k: progress[k] for k in TOY_PROGRESS_KEYS}, **seeds}


def _describe(error: ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"config key {where}: unknown key(s) {unknown}; allowed keys here: {allowed}"
    return f"config key {where}: {error.message}"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Raise ConfigError naming every invalid key, or return the config unchanged."""
    errors = sorted(Draft202012Validator(schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    problems = [_describe(e) for e in errors]
    if not problems:
        problems = _semantic_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def _semantic_problems(config: dict[str, Any]) -> list[str]:
    """Checks a JSON schema cannot express: names that must exist in the package's registries."""
    from .data.prompts import known_promptsets
    from .scorers import known_scorers
    from .toyworld.world import World

    problems = []
    for name in config["eval"]["scorers"]:
        if name not in known_scorers():
            problems.append(f"config key eval.scorers: unknown scorer {name!r}; known: {sorted(known_scorers())}")
    for name in config["eval"]["promptsets"]:
        if name not in known_promptsets():
            problems.append(
                f"config key eval.promptsets: unknown prompt set {name!r}; known: {sorted(known_promptsets())}"
            )
    model = config["toy_model"]
    for width in model["block_out_channels"]:
        if width % model["norm_num_groups"]:
            problems.append(
                f"config key toy_model.norm_num_groups: {model['norm_num_groups']} does not divide block width {width}"
            )
    if model["text_hidden_size"] % model["text_heads"]:
        problems.append("config key toy_model.text_heads: must divide toy_model.text_hidden_size")
    toy = config["base"]["kind"] == "toy"
    if toy != (config["data"]["source"] == "toy"):
        problems.append(
            "config keys base.kind / data.source: the toy base goes with toy data, a pretrained "
            "Stable Diffusion base with Pick-a-Pic"
        )
    if not toy and not config["base"]["pretrained"]:
        problems.append("config key base.pretrained: a sd / sdxl base needs a pipeline directory or hub id")
    if not toy:
        from .data.prompts import TOY_PROMPT_SETS
        from .scorers import ORACLE_SCORERS, TOY_MODEL_SCORERS

        for name in config["eval"]["promptsets"]:
            if name in TOY_PROMPT_SETS:
                problems.append(f"config key eval.promptsets: {name} exists only in the toy world")
        for name in config["eval"]["scorers"]:
            if name in ORACLE_SCORERS or name in TOY_MODEL_SCORERS:
                problems.append(f"config key eval.scorers: {name} scores only toy-world images")
    from .methods import names

    for name in config["methods"]:
        if name not in names():
            problems.append(f"config key methods: unknown method {name!r}; known: {names()}")
    study = config["study"]
    for name in [] if study["methods"] == "all" else study["methods"]:
        if name not in names():
            problems.append(f"config key study.methods: unknown method {name!r}; known: {names()} or 'all'")
    shared = sorted(set(study["train_seeds"]) & set(study["replicate_seeds"]))
    if shared:
        problems.append(
            f"config key study.replicate_seeds: seed(s) {shared} are also in study.train_seeds; the replicate must "
            "be an independent set of trainings, so give seeds the study does not train"
        )
    from .scorers import ORACLE_SCORERS as ORACLE
    from .scorers import TOY_MODEL_SCORERS, known_scorers

    # the study target is toy-only and requests its own score files, so its scorers are toy-world scorers, held to
    # neither eval.scorers nor the run's scale (a paper config keeps the default study section unused)
    toy_scorers = [*ORACLE, *TOY_MODEL_SCORERS]
    for name in study["scorers"]:
        if name not in toy_scorers:
            problems.append(f"config key study.scorers: {name!r} is not a toy-world scorer; known: {toy_scorers}")
    first, last = config["tune"]["window"]
    if first > last:
        problems.append(f"config key tune.window: [{first}, {last}] starts after it ends; give [first, last] step")
    problems += _checkpoint_problems(config, names())
    if toy and not config["methods"]:
        problems.append("config key methods: a toy run trains at least one method (checkpoints are paper scale)")
    models = ["base", *config["methods"], *config["checkpoints"]]  # the run's models: a comparison of others is lost
    for comparison in config["tables"]["comparisons"]:
        unknown = [m for m in comparison.split(":") if m not in models]
        if unknown:
            problems.append(
                f"config key tables.comparisons: {comparison!r} names {unknown}, not models of this run {models} "
                "(methods and checkpoints; `snakemake zoo` compares every registered method)"
            )
    label = config["smpo"]["label_scorer"]
    if label in ORACLE:
        problems.append(
            f"config key smpo.label_scorer: {label} is the hidden oracle; SmPO's labels must come from "
            "a learned scorer (toy_reward in the toy world)"
        )
    elif label not in known_scorers():
        problems.append(f"config key smpo.label_scorer: unknown scorer {label!r}; known: {sorted(known_scorers())}")
    elif not toy and label in TOY_MODEL_SCORERS:
        problems.append(f"config key smpo.label_scorer: {label} exists only in the toy world (use pickscore_cosine)")
    processes = max(1, config["gpus"]["train"])
    for method in names():
        cfg = config[method]
        if cfg["t_min"] > cfg["t_max"]:
            problems.append(f"config key {method}.t_min: {cfg['t_min']} is above {method}.t_max {cfg['t_max']}")
        if cfg["t_sampling"] == "sd_snr" and not toy:
            problems.append(
                f"config key {method}.t_sampling: sd_snr maps SD's timesteps onto the toy world's schedule; "
                "a Stable Diffusion base trains on its own timesteps (use uniform)"
            )
        elif cfg["t_sampling"] == "sd_snr" and config["toy_model"]["train_timesteps"] != 1000:
            problems.append(
                f"config key {method}.t_sampling: sd_snr maps SD's 1000 timesteps one to one, but "
                f"toy_model.train_timesteps is {config['toy_model']['train_timesteps']}"
            )
        per_micro = cfg["batch_size"] * processes
        if cfg["pairs_per_step"] % per_micro:
            problems.append(
                f"config key {method}.pairs_per_step: {cfg['pairs_per_step']} is not a multiple of "
                f"{method}.batch_size {cfg['batch_size']} x gpus.train {processes} = {per_micro}"
            )
    problems += _progress_problems(config, toy)
    if config["sft"]["init"] != "base":
        problems.append("config key sft.init: SFT starts from the base model")
    try:
        World.from_config(config["world"], config["seed"])
    except ValueError as error:
        problems.append(f"config key world: {error}")
    return problems


def _progress_problems(config: dict[str, Any], toy: bool) -> list[str]:
    """Paper scale measures progress with a model scorer on a real prompt set; a trained method that asks for
    measurements (eval_every > 0) needs both."""
    from .data.prompts import REAL_SETS
    from .scorers import MODEL_SCORERS, PREPARED, TOY_MODEL_SCORERS

    progress, problems = config["progress_eval"], []
    if toy:
        return problems
    scorer, promptset = progress.get("scorer"), progress.get("promptset")
    usable = sorted(s for s in MODEL_SCORERS if s not in TOY_MODEL_SCORERS and s not in PREPARED)
    if scorer is not None and scorer not in usable:
        problems.append(
            f"config key progress_eval.scorer: {scorer!r} cannot measure a training (a toy-world scorer, or one whose "
            f"weights a job of its own prepares); use one of {usable}"
        )
    if scorer is not None and promptset not in REAL_SETS:
        problems.append(
            f"config key progress_eval.promptset: {promptset!r} is not a real prompt set; known: {sorted(REAL_SETS)}"
        )
    asking = [m for m in config["methods"] if config[m]["eval_every"] > 0]
    if asking and scorer is None:
        problems.append(
            f"config key progress_eval.scorer: {', '.join(asking)} measure progress every eval_every steps, which at "
            "paper scale needs a scorer and a prompt set (e.g. scorer: pickscore, promptset: parti); or set their "
            "eval_every to 0"
        )
    return problems


# the models of results/paper/: the poster's win-rate table and the independent mean scores of released checkpoints
PAPER_MODELS = ("base", "sft", "dpo", "kto", "inpo", "smpo", "mapo")


def _checkpoint_problems(config: dict[str, Any], methods: list[str]) -> list[str]:
    problems = []
    for name, cfg in config["checkpoints"].items():
        key = f"config key checkpoints.{name}"
        if name == "base" or name in methods:
            problems.append(f"{key}: the name is a model of the run already; call it e.g. {name}_release")
        if cfg["base"] != config["base"]["kind"]:
            problems.append(
                f"{key}.base: a checkpoint of a {cfg['base']} base in a run whose base.kind is {config['base']['kind']}"
            )
        if cfg["load"] in ("lora", "state_dict") and not cfg.get("weight_name"):
            problems.append(f"{key}.weight_name: load {cfg['load']} reads one file; name it")
        if cfg["load"] == "pipeline" and cfg.get("subfolder"):
            problems.append(f"{key}.subfolder: a pipeline is read at the source's root")
    for key in ("paper_models", "paper_missing"):
        for paper_model in config["tables"][key]:
            if paper_model not in PAPER_MODELS:
                problems.append(
                    f"config key tables.{key}: {paper_model!r} is not a model of the paper's tables "
                    f"({', '.join(PAPER_MODELS)})"
                )
    for paper_model, model in config["tables"]["paper_models"].items():
        if model not in ("base", *config["methods"], *config["checkpoints"]):
            problems.append(f"config key tables.paper_models.{paper_model}: {model!r} is not a model of this run")
    return problems
