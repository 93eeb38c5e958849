"""Config validation: the default is valid, and every kind of mistake is an error that names its key."""

import copy
from pathlib import Path

import pytest

from inpo_bench.config import ConfigError, deep_merge, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]


def test_default_config_is_valid(default_config):
    assert validate_config(copy.deepcopy(default_config)) == default_config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["pretrain"].update(stpes=10), r"pretrain: unknown key\(s\) \['stpes'\]"),
        (lambda c: c.update(sampel={}), r"<top level>: unknown key\(s\) \['sampel'\]"),
        (lambda c: c["pretrain"].update(steps="many"), "pretrain.steps: 'many' is not of type 'integer'"),
        (lambda c: c["pretrain"].update(lr=-1.0), "pretrain.lr"),
        (lambda c: c["world"].update(shapes=["circle", "hexagon"]), "world.shapes.1"),
        (lambda c: c["sample"].pop("seeds"), "'seeds' is a required property"),
        (lambda c: c["eval"].update(scorers=["oracle_reward", "pickscor"]), "unknown scorer 'pickscor'"),
        (lambda c: c["eval"].update(promptsets=["partiprompts"]), "unknown prompt set 'partiprompts'"),
        (lambda c: c["toy_model"].update(norm_num_groups=5), "norm_num_groups: 5 does not divide"),
        (lambda c: c["world"].update(unseen_compositions=500), "config key world: unseen_compositions"),
        (lambda c: c.update(run="../elsewhere"), "run: '../elsewhere' does not match"),
        (lambda c: c["study"].update(methods=["dpo", "ipo"]), "study.methods: unknown method 'ipo'"),
        (lambda c: c["study"].update(scorers=["pickscore"]), "study.scorers: 'pickscore' is not a toy-world scorer"),
        (lambda c: c["study"].update(train_seeds=[0, 0]), "study.train_seeds"),
        (lambda c: c["study"].update(replicate_seeds=[2, 7]), r"study.replicate_seeds: seed\(s\) \[2\] are also in"),
        (lambda c: c["tune"]["lrs"].update(ipo=[1e-5]), r"tune.lrs: unknown key\(s\) \['ipo'\]"),
        (lambda c: c["tune"]["lrs"].update(dpo=[0.0]), "tune.lrs.dpo.0"),
        (lambda c: c["tune"].update(window=[150, 100]), r"tune.window: \[150, 100\] starts after it ends"),
        (lambda c: c["dpo"].update(t_sampling="snr"), "dpo.t_sampling: 'snr' is not one of"),
        (
            lambda c: (c["base"].update(kind="sd", pretrained="x"), c["inpo"].update(t_sampling="sd_snr")),
            "inpo.t_sampling: sd_snr maps SD's timesteps onto the toy world's schedule",
        ),
        (
            lambda c: (c["toy_model"].update(train_timesteps=500), c["dpo"].update(t_sampling="sd_snr")),
            "dpo.t_sampling: sd_snr maps SD's 1000 timesteps one to one, but toy_model.train_timesteps is 500",
        ),
    ],
)
def test_mistakes_name_their_key(default_config, change, message):
    config = copy.deepcopy(default_config)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_a_uniform_t_sampling_leaves_the_training_spec_as_before_the_key_existed(default_config):
    """Models trained before t_sampling existed drew t uniformly: their specs must not change, or Snakemake would
    retrain every model of a run; sd_snr is part of the spec, so switching to it retrains."""
    from inpo_bench.config import training_spec

    spec = training_spec(default_config, default_config["dpo"])
    assert "t_sampling" not in spec["method"] and spec["method"]["t_max"] == 999
    mapped = training_spec(default_config, {**default_config["dpo"], "t_sampling": "sd_snr"})
    assert mapped["method"]["t_sampling"] == "sd_snr"


def test_overlays_deep_merge(tmp_path):
    overlay = tmp_path / "small.yaml"
    overlay.write_text("run: small\npretrain:\n  steps: 7\nsample:\n  seeds: [4]\n")
    config = load_config(REPO / "config" / "config.yaml", overlay)
    assert config["run"] == "small" and config["pretrain"]["steps"] == 7
    assert config["pretrain"]["lr"] == 1e-3  # untouched keys keep their defaults
    assert config["sample"]["seeds"] == [4]  # lists are replaced, not merged
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_non_mapping_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)


def test_the_study_section_holds_no_other_section_to_its_scorers(default_config):
    """A toy run scored by the learned toy reward alone, and the paper configs, once failed validation because
    the default study section's oracle scorers were not in their eval.scorers; the study requests its own scores."""
    config = copy.deepcopy(default_config)
    config["eval"]["scorers"] = ["toy_reward"]
    assert validate_config(config)["study"]["scorers"] == default_config["study"]["scorers"]
    for paper in ("sd15.yaml", "sdxl.yaml", "smoke-sd.yaml"):
        assert load_config(REPO / "config" / "config.yaml", REPO / "config" / paper)["study"]


def test_every_probe_overlay_is_a_valid_run_of_its_own():
    """config/probes/*.yaml (why no method helps, issue 13) load over the default and each writes to a run of its
    own, so a probe never overwrites results/toy or another probe; they tune DPO and InPO, what the README reports.
    The base probes (config/probes/base/) change only the toy model or its pretraining."""
    probes = sorted((REPO / "config" / "probes").glob("*.yaml"))
    runs = [load_config(REPO / "config" / "config.yaml")["run"]]
    for probe in probes:
        config = load_config(REPO / "config" / "config.yaml", probe)
        runs.append(config["run"])
        tuned = {method for method, lrs in config["tune"]["lrs"].items() if lrs}
        assert {"dpo", "inpo"} <= tuned <= {"sft", "dpo", "inpo"}, probe.name
    default = load_config(REPO / "config" / "config.yaml")
    bases = sorted((REPO / "config" / "probes" / "base").glob("*.yaml"))
    for probe in bases:  # base probes change how the base is built, nothing else
        config = validate_config(load_config(REPO / "config" / "config.yaml", probe))
        runs.append(config["run"])
        changed = {k for k in config if config[k] != default[k]}
        assert changed - {"run"} and changed <= {"run", "toy_model", "pretrain"}, probe.name
    assert len(probes) >= 4 and len(bases) >= 4 and len(set(runs)) == len(runs)


def test_the_small_world_overlay_restores_the_earlier_world():
    """config/toy-small.yaml keeps the pre-issue-13 world reachable: 5 x 6 x 3 = 90 compositions, 72 seen."""
    from inpo_bench.toyworld.world import World

    small = load_config(REPO / "config" / "config.yaml", REPO / "config" / "toy-small.yaml")
    world = World.from_config(small["world"], small["seed"])
    assert (len(world.seen), len(world.unseen)) == (72, 18) and small["pretrain"]["ema_decay"] is None
    default = load_config(REPO / "config" / "config.yaml")
    world = World.from_config(default["world"], default["seed"])
    assert (len(world.seen), len(world.unseen)) == (360, 36)
    assert small["pretrain"]["nuisance"]["noisy"] == 0.15  # as that world was run


def test_the_noisy_pixels_overlay_restores_the_default_world_before_the_change():
    """config/noisy-pixels.yaml is the default world until 2026-12-06, on which the probes of config/probes/ were
    measured: its base's pretraining settings as they were then (pinned here, so a later change of the default that
    the overlay does not undo fails this test), the DPO lr its tune chose, and a run of its own."""
    noisy = load_config(REPO / "config" / "config.yaml", REPO / "config" / "noisy-pixels.yaml")
    assert noisy["pretrain"] == {
        "images": 8192,
        "wrong_caption_rate": 0.25,
        "nuisance": {"noisy": 0.15, "blurred": 0.15, "off_centre": 0.15},
        "steps": 1700,
        "batch_size": 32,
        "lr": 1e-3,
        "warmup_steps": 50,
        "lr_schedule": "constant_with_warmup",
        "weight_decay": 0.01,
        "adam_beta2": 0.99,
        "grad_clip": 1.0,
        "ema_decay": 0.999,
        "caption_dropout": 0.1,
        "checkpoint_every": 340,
        "eval_every": 340,
    }
    assert noisy["toy_model"]["block_out_channels"] == [32, 64] and noisy["toy_model"]["beta_schedule"] == "linear"
    assert noisy["dpo"]["lr"] == 1e-6 and noisy["inpo"]["lr"] == 3e-6 and noisy["sft"]["lr"] == 1e-6
    default = load_config(REPO / "config" / "config.yaml")
    assert default["pretrain"]["nuisance"]["noisy"] == 0.0
    assert noisy["run"] not in (default["run"], "toy_small")  # never overwrites another run's results


@pytest.mark.parametrize(
    ("progress", "message"),
    [
        ({"scorer": None}, "progress_eval.scorer: sft, dpo, inpo, kto measure progress every eval_every steps"),
        ({"scorer": "oracle_reward"}, "progress_eval.scorer: 'oracle_reward' cannot measure a training"),
        ({"scorer": "toy_reward"}, "progress_eval.scorer: 'toy_reward' cannot measure a training"),
        ({"scorer": "hpsv21"}, r"progress_eval.scorer: 'hpsv21' cannot measure .* use one of \['clip', 'pickscore'"),
        ({"promptset": "toy_seen"}, "progress_eval.promptset: 'toy_seen' is not a real prompt set"),
    ],
)
def test_paper_scale_progress_needs_a_real_scorer_and_prompt_set(progress, message):
    config = load_config(REPO / "config" / "config.yaml", REPO / "config" / "sd15.yaml")
    config["progress_eval"].update(progress)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)
    for method in config["methods"]:  # no measurements asked for: no scorer needed
        config[method]["eval_every"] = 0
    if progress == {"scorer": None}:
        validate_config(config)


def test_the_toy_training_spec_keeps_its_progress_eval_as_before_the_paper_keys(default_config):
    """The paper-scale keys of progress_eval (promptset, scorer) are not part of a toy model's spec: adding them
    must not retrain the toy world's models."""
    from inpo_bench.config import training_spec

    spec = training_spec(default_config, default_config["dpo"])
    assert spec["progress_eval"] == {"prompts": 32, "seed": 1000, "steps": 20, "guidance": 4.0}
