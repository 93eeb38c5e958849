"""The training loop: determinism, resume equality after an interruption, divergence handling."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from inpo_bench.methods.objectives import Pretrain
from inpo_bench.models.tiny import build_toy_model
from inpo_bench.train import TrainingDivergedError, TrainSettings, train

ARCH = {
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "attention_heads": 2,
    "norm_num_groups": 4,
    "text_hidden_size": 8,
    "text_layers": 1,
    "text_heads": 2,
    "text_intermediate_size": 16,
    "text_max_length": 16,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "train_timesteps": 1000,
}


def make_objective(world, seed=0, batch_size=4):
    torch.manual_seed(seed)
    model = build_toy_model(ARCH, world.words, 16)
    images, captions = world.pretraining_set(32, {"noisy": 0.2, "blurred": 0.2, "off_centre": 0.2}, 0.2, seed=1)
    return Pretrain(model, images, captions, caption_dropout=0.2, batch_size=batch_size)


def weights(objective):
    return {
        f"{name}.{k}": v.detach().clone()
        for name, m in objective.trainable_modules().items()
        for k, v in m.state_dict().items()
    }


SETTINGS = TrainSettings(steps=6, lr=1e-3, warmup_steps=2, grad_accum=2, checkpoint_every=2, seed=3)


def test_training_is_deterministic_and_learns(tmp_path, world):
    a, b = make_objective(world), make_objective(world)
    log_a, _ = train(a, SETTINGS, tmp_path / "a")
    log_b, _ = train(b, SETTINGS, tmp_path / "b")
    assert log_a["loss"].tolist() == log_b["loss"].tolist()
    for (k, v), w in zip(weights(a).items(), weights(b).values()):
        assert torch.equal(v, w), k
    assert list(log_a.columns) == ["step", "loss", "implicit_acc", "model_mse", "ref_mse", "lr", "seconds"]
    assert log_a["step"].tolist() == [1, 2, 3, 4, 5, 6]
    # linear warmup over 2 steps then constant: lr used at steps 1..3 is 0, 5e-4, 1e-3
    assert np.allclose(log_a["lr"].tolist()[:3], [0.0, 5e-4, 1e-3])
    assert not torch.equal(weights(a)["unet.conv_in.weight"], weights(make_objective(world))["unet.conv_in.weight"])


class InterruptError(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, world):
    reference = make_objective(world)
    log_ref, evals_ref = train(
        reference, SETTINGS, tmp_path / "ref", evaluate=lambda s: {"step": s, "x": s * 2.0}, eval_every=1
    )

    def crash_at_5(step):
        if step == 5:
            raise InterruptError
        return {"step": step, "x": step * 2.0}

    interrupted = make_objective(world)
    with pytest.raises(InterruptError):
        train(interrupted, SETTINGS, tmp_path / "run", evaluate=crash_at_5, eval_every=1)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["step-0000002", "step-0000004"]

    resumed = make_objective(world)  # a fresh process: initial weights again, then the checkpoint
    log, evals = train(resumed, SETTINGS, tmp_path / "run", evaluate=lambda s: {"step": s, "x": s * 2.0}, eval_every=1)
    for (k, v), w in zip(weights(reference).items(), weights(resumed).values()):
        assert torch.equal(v, w), k
    assert log["loss"].tolist() == log_ref["loss"].tolist()
    assert evals.to_dict("records") == evals_ref.to_dict("records")  # the curve survives the resume


def test_checkpoints_keep_only_the_newest(tmp_path, world):
    settings = replace(SETTINGS, steps=9, checkpoint_every=2, keep_checkpoints=2)
    train(make_objective(world), settings, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000006", "step-0000008"]


def test_divergence_stops_without_writing(tmp_path, world):
    objective = make_objective(world)
    with torch.no_grad():
        objective.unet.conv_in.weight.fill_(math.inf)
    with pytest.raises(TrainingDivergedError, match="not finite"):
        train(objective, replace(SETTINGS, checkpoint_every=1), tmp_path)
    assert not any(tmp_path.iterdir())


def test_unknown_optimizer_is_rejected(tmp_path, world):
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(make_objective(world), replace(SETTINGS, optimizer="sgd"), tmp_path)


def test_checkpoints_of_other_settings_are_not_resumed(tmp_path, world):
    def crash_at_5(step):
        if step == 5:
            raise InterruptError
        return {"step": step}

    with pytest.raises(InterruptError):
        train(make_objective(world), SETTINGS, tmp_path, evaluate=crash_at_5, eval_every=1, fingerprint="lr 1e-3")
    assert any(tmp_path.iterdir())
    changed = replace(SETTINGS, lr=3e-4)
    resumed = make_objective(world)
    log, _ = train(resumed, changed, tmp_path, fingerprint="lr 3e-4")
    fresh = make_objective(world)
    log_fresh, _ = train(fresh, changed, tmp_path / "fresh", fingerprint="lr 3e-4")
    assert log["loss"].tolist() == log_fresh["loss"].tolist()  # started over, not from the stale step 4
    for (k, v), w in zip(weights(resumed).items(), weights(fresh).values()):
        assert torch.equal(v, w), k
