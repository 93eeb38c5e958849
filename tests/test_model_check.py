"""Checking Stable Diffusion model folders from configs and weight-file headers, without loading weights."""

from __future__ import annotations

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from inpo_bench.errors import ModelError
from inpo_bench.models.bundle import check_model, write_base_spec
from inpo_bench.models.check import tensor_shapes
from inpo_bench.smoke import pipelines


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {"sd": pipelines.build_sd15(root / "sd15"), "sdxl": pipelines.build_sdxl(root / "sdxl")}


def copy_of(bases, kind, tmp_path):
    return shutil.copytree(bases[kind], tmp_path / kind)


def test_good_bases_pass_without_loading_weights(bases, tmp_path, monkeypatch):
    """The SDXL describe job once loaded the float32 pipeline (~14 GB) on a 16 GB CPU node."""
    import diffusers
    import safetensors.torch
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    for module, name in [(safetensors.torch, "load_file"), (safetensors.torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    for cls in (diffusers.UNet2DConditionModel, diffusers.AutoencoderKL, transformers.CLIPTextModel):
        monkeypatch.setattr(cls, "from_pretrained", refuse)
    for kind in ("sd", "sdxl"):
        write_base_spec(tmp_path / kind, kind, 32, str(bases[kind]))
        summary = check_model(tmp_path / kind)
        assert summary["kind"] == kind and summary["unet_parameters"] > 900_000


def test_header_shapes_equal_the_loaded_tensors(bases):
    path = bases["sd"] / "unet" / "diffusion_pytorch_model.safetensors"
    assert tensor_shapes([path]) == {k: tuple(v.shape) for k, v in load_file(path).items()}


def test_missing_weights_are_named(bases, tmp_path):
    sd = copy_of(bases, "sd", tmp_path)
    (sd / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    write_base_spec(tmp_path / "m", "sd", 32, str(sd))
    with pytest.raises(ModelError, match=r"VAE .*vae: no weights"):
        check_model(tmp_path / "m")


def test_a_unet_whose_weights_do_not_fit_its_config_is_refused(bases, tmp_path):
    sd = copy_of(bases, "sd", tmp_path)
    weights = sd / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state.pop("conv_out.bias")
    state["conv_in.weight"] = state["conv_in.weight"][:, :2].contiguous()
    save_file(state, weights)
    write_base_spec(tmp_path / "m", "sd", 32, str(sd))
    with pytest.raises(ModelError, match=r"1 missing tensor\(s\), e\.g\. \['conv_out\.bias'\].*another shape"):
        check_model(tmp_path / "m")


def test_an_sdxl_unet_on_an_sd15_base_is_refused(bases, tmp_path):
    sd = copy_of(bases, "sd", tmp_path)
    shutil.rmtree(sd / "unet")
    shutil.copytree(bases["sdxl"] / "unet", sd / "unet")
    write_base_spec(tmp_path / "m", "sd", 32, str(sd))
    with pytest.raises(ModelError, match="an SDXL UNet"):
        check_model(tmp_path / "m")


def test_a_unet_of_another_text_width_is_refused(bases, tmp_path):
    sd = copy_of(bases, "sd", tmp_path)
    config = json.loads((sd / "text_encoder" / "config.json").read_text())
    config["hidden_size"] = 48
    (sd / "text_encoder" / "config.json").write_text(json.dumps(config))
    write_base_spec(tmp_path / "m", "sd", 32, str(sd))
    with pytest.raises(ModelError, match="cross_attention_dim 32 does not fit the text encoder"):
        check_model(tmp_path / "m")


def test_base_model_command_writes_no_model_json_when_the_check_fails(bases, tmp_path):
    from inpo_bench.cli import main

    sd = copy_of(bases, "sd", tmp_path)
    shutil.rmtree(sd / "tokenizer")
    code = main(
        ["base-model", "--kind", "sd", "--pretrained", str(sd), "--resolution", "32", "--out", str(tmp_path / "b")]
    )
    assert code == 1 and not (tmp_path / "b" / "model.json").exists()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("prediction_type", "v_prediction", "expected epsilon"),
        ("timestep_spacing", "trailing", "expected leading"),
        ("set_alpha_to_one", True, "expected false"),
        ("steps_offset", -1, "expected a non-negative integer"),
        ("num_train_timesteps", 500, "expected 1000"),
        ("beta_schedule", "sigmoid", "expected linear, scaled_linear or squaredcos_cap_v2"),
        ("rescale_betas_zero_snr", True, "expected false"),
        ("thresholding", True, "expected false"),
    ],
)
@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_a_scheduler_the_code_does_not_implement_is_refused_by_field(bases, tmp_path, kind, field, value, expected):
    """An SD 2.x v-prediction base or a trailing-spacing scheduler would train and sample wrongly, silently."""
    base = copy_of(bases, kind, tmp_path)
    path = base / "scheduler" / "scheduler_config.json"
    config = json.loads(path.read_text())
    write_base_spec(tmp_path / "ok", kind, 32, str(base))
    check_model(tmp_path / "ok")  # the stand-in's own scheduler passes
    path.write_text(json.dumps({**config, field: value}))
    write_base_spec(tmp_path / "m", kind, 32, str(base))
    with pytest.raises(ModelError, match=rf"scheduler_config\.json: .*{field} is {value!r}, {expected}"):
        check_model(tmp_path / "m")
