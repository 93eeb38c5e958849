"""The training loop: determinism, resume equality after an interruption, divergence handling."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from inpo_bench.errors import ConfigError
from inpo_bench.methods.objectives import InMemory, Pretrain
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


SETTINGS = TrainSettings(steps=6, lr=1e-3, warmup_steps=2, examples_per_step=8, checkpoint_every=2, seed=3)


def test_training_is_deterministic_and_learns(tmp_path, world):
    a, b = make_objective(world), make_objective(world)
    log_a, _ = train(a, SETTINGS, tmp_path / "a")
    log_b, _ = train(b, SETTINGS, tmp_path / "b")
    assert log_a["loss"].tolist() == log_b["loss"].tolist()
    for (k, v), w in zip(weights(a).items(), weights(b).values()):
        assert torch.equal(v, w), k
    assert list(log_a.columns) == [
        "step",
        "loss",
        "implicit_acc",
        "model_mse",
        "ref_mse",
        "winner_mse_gap",
        "loser_mse_gap",
        "reward_margin",
        "lr",
        "grad_norm",
        "seconds",
        "examples_per_second",
        "examples_per_second_per_device",
        "unet_forwards",
        "skipped",
        "loss_scale",
    ]
    assert log_a["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert (log_a.grad_norm > 0).all() and log_a.reward_margin.isna().all()  # pretraining has no pairs
    step_seconds = log_a.seconds.diff().fillna(log_a.seconds.iloc[0])  # each rounded to 1 ms: differences to 1 ms
    assert (np.abs(8 / log_a.examples_per_second - step_seconds) <= 0.0011).all()  # 8 examples per step
    assert log_a.examples_per_second_per_device.equals(log_a.examples_per_second)  # one process
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


def test_the_effective_batch_and_not_its_split_decides_the_training(tmp_path, world):
    """8 examples per step as 1 x 8, 2 x 4 or 4 x 2 (micro-batches x size) train the same model: the data order
    and every example's random numbers follow from its stream position, not from the batch it lands in. Only the
    order of floating-point sums differs, which Adam amplifies on near-zero gradients to well under 1% of the
    weights' movement; another seed (another data stream) moves them by far more."""
    settings = replace(SETTINGS, examples_per_step=8, checkpoint_every=0)
    initial = weights(make_objective(world))
    trained, logs = {}, {}
    for name, batch_size, seed in (("8", 8, 3), ("4", 4, 3), ("2", 2, 3), ("other seed", 8, 4)):
        objective = make_objective(world, batch_size=batch_size)
        logs[name], _ = train(objective, replace(settings, seed=seed), tmp_path / name)
        trained[name] = weights(objective)

    def largest_change(a: dict, b: dict) -> float:
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    moved = largest_change(trained["8"], initial)
    for split in ("4", "2"):
        assert np.allclose(logs[split].loss, logs["8"].loss, rtol=0, atol=1e-6), split
        assert largest_change(trained[split], trained["8"]) < 0.01 * moved, split
    assert largest_change(trained["other seed"], trained["8"]) > 0.1 * moved
    with pytest.raises(ConfigError, match="pairs_per_step 8 is not a multiple of batch_size 3"):
        train(make_objective(world, batch_size=3), settings, tmp_path / "3")


class LossScalingCPU(Accelerator):
    """A CPU accelerator with a GradScaler, as fp16 mixed precision has on CUDA: loss scaling, overflow checks on
    the unscaled gradients, skipped steps and a falling scale."""

    def __init__(self, init_scale: float) -> None:
        super().__init__(cpu=True)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)

    def unscale_gradients(self, optimizer=None) -> None:
        for opt in self._optimizers:
            self.scaler.unscale_(opt.optimizer)


class Amplified(torch.nn.Module):
    """An objective whose loss is `factor` times another's: with a loss scale near float32's limit its first
    scaled losses overflow, as fp16 ones do at fp16's much lower limit."""

    def __init__(self, inner: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor
        self.batch_size, self.source = inner.batch_size, inner.source

    def trainable_modules(self):
        return self.inner.trainable_modules()

    def draw(self, fetched, generators, indices=None):
        return self.inner.draw(fetched, generators, indices)

    def forward(self, **batch):
        loss, metrics = self.inner(**batch)
        return loss * self.factor, metrics


def test_fp16_overflows_skip_steps_instead_of_failing_and_resume_exactly(tmp_path, world):
    # a loss of ~4 times a scale of 2^127 overflows float32; the scale halves until the scaled loss fits
    settings = replace(SETTINGS, steps=10, checkpoint_every=0)

    def make_objective_(world):
        return Amplified(make_objective(world), 8.0)

    reference = make_objective_(world)
    log, _ = train(reference, settings, tmp_path / "ref", accelerator=LossScalingCPU(2.0**127))
    skipped = log[log.skipped == 1]
    assert 0 < len(skipped) < 10 and log.skipped.iloc[0] == 1  # overflows first, then trains
    # every overflow halves the scale (no growth within 2000 steps); which later steps overflow again depends on
    # the data (a rising loss can), so the scale is checked against the count of skips so far
    scales = log.loss_scale.tolist()
    assert scales == [2.0 ** (127 - k) for k in log.skipped.cumsum().tolist()]
    # the LR schedule (2 warm-up steps) starts with the first applied step
    applied = log[log.skipped == 0].lr.tolist()
    assert applied[:3] == pytest.approx([0.0, 5e-4, 1e-3])
    assert all(torch.isfinite(w).all() for w in weights(reference).values())

    def crash_at_8(step):
        if step == 8:
            raise InterruptError
        return {"step": step}

    resumable = replace(settings, checkpoint_every=2)
    with pytest.raises(InterruptError):
        train(make_objective_(world), resumable, tmp_path / "run", LossScalingCPU(2.0**127), crash_at_8, 1)
    state = torch.load(max((tmp_path / "run").glob("step-*")) / "state.pt", weights_only=True)
    assert state["scaler"]["scale"] < 2.0**127  # the lowered scale is part of the checkpoint
    resumed = make_objective_(world)
    log_resumed, _ = train(resumed, resumable, tmp_path / "run", LossScalingCPU(2.0**127))
    assert log_resumed.loss_scale.tolist() == scales and log_resumed.skipped.tolist() == log.skipped.tolist()
    for key, value in weights(reference).items():
        assert torch.equal(value, weights(resumed)[key]), key


def test_a_loss_that_stays_non_finite_still_stops_under_loss_scaling(tmp_path, world):
    objective = make_objective(world)
    with torch.no_grad():
        objective.unet.conv_in.weight.fill_(math.inf)
    with pytest.raises(TrainingDivergedError, match="not been finite for 5 steps"):
        train(objective, replace(SETTINGS, steps=20, checkpoint_every=0), tmp_path, accelerator=LossScalingCPU(2.0**16))


class Overflowing(torch.nn.Module):
    """A finite loss whose gradient overflows float32 at any loss scale >= 1/2."""

    batch_size = 1
    source = InMemory(4)

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.ones_(self.w.weight)

    def trainable_modules(self):
        return {"w": self.w}

    def draw(self, fetched, generators, indices=None):
        return {}

    def forward(self):
        return (self.w.weight**2).sum() * 3e38, {}


def test_a_collapsed_loss_scale_stops_training(tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"loss scale fell to 0\.5"):
        train(Overflowing(), replace(SETTINGS, steps=20), tmp_path, accelerator=LossScalingCPU(4.0))


def test_metrics_reach_the_host_once_per_optimiser_step(tmp_path, world, monkeypatch):
    """Four micro-batches a step: the metrics are summed on the device and moved to the host in one reduction per
    step, never per micro-batch (at 8 GPUs x 128 micro-batches that was 1000 host syncs a step)."""
    import inpo_bench.train as trainer

    calls, original = [], trainer._reduce

    def counted(values, accelerator):
        calls.append(sorted(values))
        assert all(torch.is_tensor(v) or isinstance(v, int | float) for v in values.values())
        return original(values, accelerator)

    monkeypatch.setattr(trainer, "_reduce", counted)
    settings = replace(SETTINGS, examples_per_step=16, steps=3, checkpoint_every=0)  # 4 micro-batches of 4
    log, _ = train(make_objective(world), settings, tmp_path / "s")
    assert len(calls) == 3 and len(log) == 3
    assert calls[0] == ["grad_norm", "loss", "model_mse", "unet_forwards"]
