"""Released checkpoints as models: LoRA fusion against the LoRA forward pass, every load kind on tiny stand-ins
in the real formats, every bad checkpoint refused by name, the smoke overlay end to end, the shipped registries."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from diffusers import UNet2DConditionModel

from inpo_bench.errors import ConfigError, ModelError
from inpo_bench.models.checkpoints import resolve_checkpoint
from inpo_bench.models.lora import fuse_lora, parse_lora
from tests.conftest import REPO, snakemake

# --- LoRA fusion: the fused weight gives the LoRA layer's forward pass -----------------------------------------


def test_fused_linear_lora_equals_the_low_rank_forward_pass():
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 5, bias=True).double()
    x = torch.randn(3, 6, dtype=torch.float64)
    down, up, alpha = torch.randn(2, 6, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64), 4.0
    expected = layer(x) + (alpha / 2) * (x @ down.T) @ up.T  # y = W x + b + (alpha / r) B A x
    net = torch.nn.Sequential()
    net.add_module("proj", layer)
    fuse_lora(
        net,
        {"unet.proj.lora_A.weight": down, "unet.proj.lora_B.weight": up, "unet.proj.alpha": torch.tensor(alpha)},
        "t",
    )
    assert torch.allclose(net.proj(x), expected, atol=1e-12)


def test_fused_conv_lora_equals_a_kxk_down_then_1x1_up_convolution():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    down, up = torch.randn(2, 3, 3, 3, dtype=torch.float64), torch.randn(4, 2, 1, 1, dtype=torch.float64)
    expected = conv(x) + F.conv2d(F.conv2d(x, down, padding=1), up)  # no alpha: scale 1, as diffusers
    net = torch.nn.Sequential()
    net.add_module("conv", conv)
    fuse_lora(net, {"conv.lora.down.weight": down, "conv.lora.up.weight": up}, "t")
    assert torch.allclose(net.conv(x), expected, atol=1e-12)


def test_the_three_diffusers_key_layouts_name_the_same_modules():
    a, b = torch.zeros(2, 8), torch.zeros(8, 2)
    block = "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
    layouts = [
        {f"unet.{block}.to_out.0.lora_A.weight": a, f"unet.{block}.to_out.0.lora_B.weight": b},
        {f"unet.{block}.to_out.0.lora.down.weight": a, f"unet.{block}.to_out.0.lora.up.weight": b},
        {f"{block}.processor.to_out_lora.down.weight": a, f"{block}.processor.to_out_lora.up.weight": b},
    ]
    assert [list(parse_lora(state, "t")) for state in layouts] == [[f"{block}.to_out.0"]] * 3


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"text_encoder.x.lora_A.weight": torch.zeros(1, 1)}, "text encoder"),
        ({"unet.proj.lora_A.weight": torch.zeros(2, 6)}, "only one of its two"),
        ({"unet.proj.weight": torch.zeros(5, 6)}, "not a key of a diffusers-format UNet LoRA"),
        (
            {"unet.nothere.lora_A.weight": torch.zeros(2, 6), "unet.nothere.lora_B.weight": torch.zeros(5, 2)},
            "no module nothere",
        ),
        ({"unet.proj.lora_A.weight": torch.zeros(2, 7), "unet.proj.lora_B.weight": torch.zeros(5, 2)}, "another base"),
        (
            {
                "unet.proj.lora_A.weight": torch.zeros(2, 6),
                "unet.proj.lora_B.weight": torch.zeros(5, 2),
                "unet.prj.alpha": torch.tensor(4.0),
            },
            "alpha\\(s\\) of no LoRA module",
        ),
    ],
)
def test_loras_that_do_not_fit_are_refused_by_name(state, message):
    net = torch.nn.Sequential()
    net.add_module("proj", torch.nn.Linear(6, 5))
    with pytest.raises(ModelError, match=message):
        fuse_lora(net, state, "checkpoint x")


# --- load kinds on tiny real-format stand-ins ------------------------------------------------------------------


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """The tiny SD1.5 and SDXL pipelines, the checkpoint stand-ins and a described SD1.5 base."""
    from inpo_bench.models.bundle import write_base_spec
    from inpo_bench.smoke.checkpoints import build_checkpoints
    from inpo_bench.smoke.pipelines import build_sd15, build_sdxl

    root = tmp_path_factory.mktemp("stand_ins")
    sd15, sdxl = build_sd15(root / "sd15"), build_sdxl(root / "sdxl")
    made = build_checkpoints(sd15, root / "checkpoints")
    write_base_spec(root / "base", "sd", 32, str(sd15))
    return {"root": root, "sd15": sd15, "sdxl": sdxl, "base": root / "base", **made}


def _state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().clone() for k, v in unet.state_dict().items()}


def _equal(a: dict, b: dict, atol: float = 0.0) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def test_every_load_kind_gives_the_published_unet_on_the_base(stand_ins, tmp_path):
    from inpo_bench.models.bundle import load_model
    from inpo_bench.smoke.checkpoints import lora_state

    base_unet = UNet2DConditionModel.from_pretrained(stand_ins["sd15"] / "unet")
    lora = lora_state(base_unet, rank=2, seed=4, alpha=1.0)
    fused = _state(base_unet)
    for key in [k for k in lora if k.endswith("lora_A.weight")]:  # expected, independently: W + (alpha/r) B A
        module = key.removeprefix("unet.").removesuffix(".lora_A.weight")
        fused[f"{module}.weight"] += (1.0 / 2) * lora[key.replace("lora_A", "lora_B")] @ lora[key]
    cases = {
        "unet": ({"source": str(stand_ins["checkpoint_unet"])}, stand_ins["checkpoint_unet"] / "unet", 0.0),
        "unet_root": ({"source": str(stand_ins["checkpoint_unet_root"])}, stand_ins["checkpoint_unet_root"], 0.0),
        "pipeline": ({"source": str(stand_ins["checkpoint_pipeline"])}, stand_ins["checkpoint_pipeline"] / "unet", 0.0),
        "state_dict": (
            {"source": str(stand_ins["root"] / "checkpoints" / "state_dict"), "weight_name": "sd1.5/unet.pth"},
            None,
            0.0,
        ),
        "lora": (
            {"source": str(stand_ins["checkpoint_lora"].parent), "weight_name": "pytorch_lora_weights.safetensors"},
            fused,
            1e-6,
        ),
    }
    for load, (settings, expected, atol) in cases.items():
        out = tmp_path / load
        record = resolve_checkpoint(load, {"load": load, "method": "dpo", **settings}, stand_ins["base"], out)
        assert record["checkpoint"]["load"] == load and record["unet_parameters"] > 0
        model = load_model(out)
        if load == "state_dict":
            expected = {
                k: v.float() for k, v in torch.load(stand_ins["checkpoint_state_dict"], weights_only=True).items()
            }
        elif isinstance(expected, Path):
            expected = _state(UNet2DConditionModel.from_pretrained(expected))
        assert _equal(_state(model.unet), expected, atol), load
        assert not _equal(_state(model.unet), _state(base_unet), 1e-6), load  # the checkpoint, not the base
    # a pipeline brings its own text encoder; the other kinds use the base's
    spec = json.loads((tmp_path / "pipeline" / "model.json").read_text())
    assert (
        spec["unet"] is None
        and Path(tmp_path / "pipeline" / spec["components"]).resolve() == stand_ins["checkpoint_pipeline"].resolve()
    )
    spec = json.loads((tmp_path / "unet" / "model.json").read_text())
    assert (
        spec["unet_subfolder"] == "unet"
        and (tmp_path / "unet" / spec["components"]).resolve() == stand_ins["sd15"].resolve()
    )


def test_a_lora_checkpoint_is_written_in_its_dtype(stand_ins, tmp_path):
    settings = {
        "load": "lora",
        "method": "spo",
        "source": str(stand_ins["checkpoint_lora"].parent),
        "weight_name": "pytorch_lora_weights.safetensors",
        "dtype": "float16",
    }
    resolve_checkpoint("spo", settings, stand_ins["base"], tmp_path)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "unet" / "diffusion_pytorch_model.safetensors"), framework="pt") as handle:
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == {"F16"}  # noqa: SIM118


class Payload:  # a pickled object that is not a tensor: weights_only loading must refuse it
    def __reduce__(self):
        return (print, ("this ran",))


def test_bad_checkpoints_fail_naming_the_checkpoint_and_the_problem(stand_ins, tmp_path):
    from inpo_bench.smoke.checkpoints import lora_state

    root = stand_ins["root"]
    sdxl_lora = root / "sdxl_lora"
    sdxl_lora.mkdir(exist_ok=True)
    from safetensors.torch import save_file

    save_file(
        lora_state(UNet2DConditionModel.from_pretrained(stand_ins["sdxl"] / "unet"), 2, 0),
        str(sdxl_lora / "l.safetensors"),
    )
    torch.save({"conv_in.weight": torch.zeros(1)}, root / "partial.pth")
    with open(root / "code.pth", "wb") as handle:
        pickle.dump({"conv_in.weight": Payload()}, handle)
    bad = {
        "no subfolder": (
            {"load": "unet", "source": str(stand_ins["checkpoint_unet"]), "subfolder": "nope"},
            "no UNet folder",
        ),
        "missing source": ({"load": "unet", "source": str(root / "absent" / "x")}, "does not exist"),
        "missing file": ({"load": "state_dict", "source": str(root), "weight_name": "nothing.pth"}, "no file"),
        "SDXL UNet on SD1.5": ({"load": "unet_root", "source": str(stand_ins["sdxl"] / "unet")}, "SDXL UNet"),
        "LoRA of SDXL": ({"load": "lora", "source": str(sdxl_lora), "weight_name": "l.safetensors"}, "another base"),
        "partial state dict": (
            {"load": "state_dict", "source": str(root), "weight_name": "partial.pth"},
            "missing tensor",
        ),
        "pickled code": ({"load": "state_dict", "source": str(root), "weight_name": "code.pth"}, "not a plain tensor"),
    }
    for case, (settings, message) in bad.items():
        with pytest.raises(ModelError, match=message) as error:
            resolve_checkpoint("suspect", {"method": "dpo", **settings}, stand_ins["base"], tmp_path / "out")
        assert "checkpoint suspect" in str(error.value), case


def checkpoint_command(name: str, settings: dict, base: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m inpo_bench checkpoint` in a subprocess, offline, with this checkout's package."""
    command = ["checkpoint", "--name", name, "--spec", json.dumps(settings), "--base", str(base), "--out", str(out)]
    return subprocess.run(
        [sys.executable, "-m", "inpo_bench", *command],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src"), **env},
    )


def test_the_checkpoint_command_fails_in_one_line_and_leaves_no_model(stand_ins, tmp_path):
    settings = {"load": "unet_root", "source": str(stand_ins["sdxl"] / "unet"), "method": "dpo", "base": "sd"}
    out = tmp_path / "models" / "wrong"
    result = checkpoint_command("wrong", settings, stand_ins["base"], out)
    assert result.returncode == 1 and "checkpoint wrong" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        (
            {"checkpoints": {"dpo": {"source": "a/b", "load": "unet", "base": "sd", "method": "dpo"}}},
            "a model of the run",
        ),
        ({"checkpoints": {"x": {"source": "a/b", "load": "unet", "base": "sdxl", "method": "dpo"}}}, "base.kind is sd"),
        ({"checkpoints": {"x": {"source": "a/b", "load": "lora", "base": "sd", "method": "spo"}}}, "weight_name"),
        ({"checkpoints": {"x": {"source": "a/b", "load": "zip", "base": "sd", "method": "dpo"}}}, "load"),
        (
            {
                "checkpoints": {
                    "x": {"source": "a/b", "load": "unet", "base": "sd", "method": "dpo", "revision": "main"}
                }
            },
            "revision",
        ),
        ({"tables": {"paper_models": {"inpo": "nothere"}}}, "not a model of this run"),
        ({"tables": {"comparisons": ["inpo:base"]}}, "not models of this run"),  # no inpo here: a lost table
        (
            {
                "checkpoints": {
                    "x": {"source": "a/b", "load": "pipeline", "base": "sd", "method": "spo", "subfolder": "p"}
                }
            },
            "read at the source's root",
        ),
    ],
)
def test_bad_checkpoint_config_is_refused_before_any_job(overlay, message):
    from inpo_bench.config import deep_merge, load_config

    config = deep_merge(
        load_config(REPO / "config" / "config.yaml", REPO / "config" / "smoke-checkpoints.yaml"), overlay
    )
    from inpo_bench.config import validate_config

    with pytest.raises(ConfigError, match=message):
        validate_config(config)


# --- the DAG ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_checkpoints_are_evaluated_end_to_end_without_training(smoke_run):
    """config/smoke-checkpoints.yaml in the paper smoke run's directory (its stand-ins and prepared scorers)."""
    config = REPO / "config" / "smoke-checkpoints.yaml"
    args = ("--configfile", str(config), "--directory", str(smoke_run))
    run = snakemake("--cores", "2", *args).stderr
    assert "rule train:" not in run and "rule prepare_pairs:" not in run and "rule resolve_checkpoint:" in run
    out = smoke_run / "results" / "smoke-checkpoints"
    models = pd.read_csv(out / "tables" / "models.csv")
    released = models[models.origin == "released checkpoint"]
    assert set(released.load) == {"unet", "unet_root", "pipeline", "lora", "state_dict"}
    wins = pd.read_csv(out / "tables" / "win_rates.csv")
    assert {"inpo_release", "dpo_release", "lora_release", "sdpo_release"} <= set(wins.model)
    assert wins.win_rate.between(0, 1).all() and (wins.n == 2).all()
    paper = pd.read_csv(out / "tables" / "paper_comparison.csv")
    vs_kto = paper[(paper.paper_baseline == "KTO-SD1.5") & (paper.promptset == "parti") & (paper.scorer == "pickscore")]
    ours = wins[
        (wins.model == "inpo_release")
        & (wins.baseline == "kto_release")
        & (wins.promptset == "parti")
        & (wins.scorer == "pickscore")
    ]
    assert vs_kto.win_rate.iloc[0] == pytest.approx(100 * ours.win_rate.iloc[0])  # the stand-ins fill the paper's rows
    sft = paper[paper.paper_baseline == "SFT-SD1.5"]
    assert len(sft) and sft.win_rate.isna().all() and sft.note.str.contains("no SFT checkpoint").all()
    record = json.loads((out / "samples" / "lora_release" / "parti" / "sample.json").read_text())
    assert record["cfg"] == 7.5 and record["checkpoint"]["load"] == "lora"
    # a note is a label: editing it rewrites the tables, never resolves or samples the checkpoint again
    overlay = smoke_run / "note.yaml"
    overlay.write_text("checkpoints: {lora_release: {note: another note}}\n")
    dry = snakemake("-n", "--configfile", str(config), str(overlay), "--directory", str(smoke_run)).stdout
    assert "resolve_checkpoint" not in dry and "rule sample" not in dry and "rule tables" in dry


@pytest.mark.parametrize(("registry", "at_least"), [("checkpoints-sd15.yaml", 7), ("checkpoints-sdxl.yaml", 5)])
def test_shipped_registries_plan_sampling_and_scoring_only(registry, at_least, tmp_path):
    dry = snakemake("-n", "--configfile", str(REPO / "config" / registry), "--directory", str(tmp_path)).stdout
    counts = {m[0]: int(m[1]) for m in (line.split() for line in dry.splitlines()) if len(m) == 2 and m[1].isdigit()}
    releases = yaml.safe_load((REPO / "config" / registry).read_text())["checkpoints"]
    assert len(releases) >= at_least and counts.get("resolve_checkpoint") == len(releases), counts
    assert "train" not in counts and "prepare_pairs" not in counts and "encode_pairs" not in counts, counts
    assert counts["sample"] == (counts["resolve_checkpoint"] + 1) * 3  # every model on the three prompt sets


def _hub_cache(root: Path, repo: str, files: dict[str, Path]) -> str:
    """A hub cache holding one snapshot of `repo` (the layout huggingface_hub writes), so offline resolution finds
    it as it would after a download. Returns the commit."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, source in files.items():
        target = folder / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return commit


def test_a_hub_checkpoint_is_pinned_to_the_commit_it_resolved(stand_ins, tmp_path):
    import shutil

    """Offline, from a hub cache: the resolved commit is recorded and every later load reads that commit."""
    unet = stand_ins["checkpoint_unet"] / "unet"
    cache = tmp_path / "hub"
    commit = _hub_cache(cache, "someone/dpo-sd", {f"unet/{f.name}": f for f in unet.iterdir()})
    settings = {"load": "unet", "source": "someone/dpo-sd", "method": "dpo", "base": "sd", "revision": None}
    out = tmp_path / "models" / "dpo_release"
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO / "src")}
    result = checkpoint_command("dpo_release", settings, stand_ins["base"], out, HF_HUB_CACHE=str(cache))
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "model.json").read_text())
    assert record["unet"] == "someone/dpo-sd" and record["unet_revision"] == commit
    assert record["checkpoint"]["revision"] == commit and record["checkpoint"]["revision_requested"] is None
    check = (
        "import sys, torch; from inpo_bench.models.bundle import load_model;"
        "from diffusers import UNet2DConditionModel;"
        f"a = load_model({str(out)!r}).unet.state_dict(); b = UNet2DConditionModel.from_pretrained({str(unet)!r})"
        ".state_dict(); sys.exit(0 if all(torch.equal(a[k], b[k]) for k in b) else 3)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    # the hub moves on: main now points at another commit; the resolved model still loads the one it evaluated
    repo = cache / "models--someone--dpo-sd"
    newer = "f" * 40
    (repo / "snapshots" / newer).mkdir()
    shutil.copytree(stand_ins["checkpoint_unet_root"], repo / "snapshots" / newer / "unet")
    (repo / "refs" / "main").write_text(newer)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_lora_alphas_in_every_layout_and_in_the_metadata(tmp_path):
    import json as _json

    from safetensors.torch import save_file

    from inpo_bench.models.lora import adapter_alpha

    block = "b.attn1"
    a, b = torch.ones(2, 8), torch.ones(8, 2)
    processor = {f"{block}.processor.to_q_lora.down.weight": a, f"{block}.processor.to_q_lora.up.weight": b}
    pairs = parse_lora({**processor, f"{block}.processor.to_q_lora.alpha": torch.tensor(1.0)}, "t")
    assert pairs[f"{block}.to_q"].alpha == 1.0  # the processor layout's alpha reaches its module
    pairs = parse_lora({"m.lora.down.weight": a, "m.lora.up.weight": b, "m.alpha": torch.tensor(3.0)}, "t")
    assert pairs["m"].alpha == 3.0
    assert parse_lora({"m.lora_A.weight": a, "m.lora_B.weight": b}, "t", default_alpha=8.0)["m"].alpha == 8.0
    path = tmp_path / "l.safetensors"
    save_file(
        {"m.lora_A.weight": a, "m.lora_B.weight": b},
        str(path),
        metadata={"lora_adapter_metadata": _json.dumps({"r": 2, "lora_alpha": 4})},
    )
    assert adapter_alpha(path, "t") == 4.0
    save_file(
        {"m.lora_A.weight": a},
        str(path),
        metadata={"lora_adapter_metadata": _json.dumps({"lora_alpha": 4, "alpha_pattern": {"m": 2}})},
    )
    with pytest.raises(ModelError, match="patterns"):
        adapter_alpha(path, "t")


def test_a_relative_source_that_does_not_exist_is_not_taken_for_a_hub_id(stand_ins, tmp_path):
    for source in ("./absent/x", "absent/x/y"):
        with pytest.raises(ModelError, match="does not exist"):
            resolve_checkpoint("x", {"load": "unet", "source": source}, stand_ins["base"], tmp_path / "out")
    with pytest.raises(ModelError, match=r"needs checkpoints\.x\.weight_name"):  # before any download
        resolve_checkpoint("x", {"load": "lora", "source": "someone/lora"}, stand_ins["base"], tmp_path / "out")
