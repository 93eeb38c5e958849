"""The moving average of weights (ema.py) against a float64 recurrence, inside and outside the training loop."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from inpo_bench.ema import WeightAverage
from inpo_bench.train import train
from tests.test_train import SETTINGS, make_objective, weights


def reference_average(values: list[float], decay: float) -> list[float]:
    """diffusers EMAModel's recurrence written out: shadow starts at the initial weight, update n uses
    d = min(decay, (1 + n) / (10 + n))."""
    shadow, out = values[0], []
    for n, w in enumerate(values[1:]):
        d = min(decay, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * w
        out.append(shadow)
    return out


def test_the_average_follows_the_warmed_up_recurrence():
    layer = nn.Linear(1, 1, bias=False)
    frozen = nn.Linear(1, 1, bias=False).requires_grad_(False)
    modules = {"layer": layer, "frozen": frozen}
    with torch.no_grad():
        layer.weight.fill_(1.0)
    average = WeightAverage(modules, decay=0.5)
    values, seen = [1.0], []
    for w in (3.0, -2.0, 5.0, 0.25, 7.0):
        with torch.no_grad():
            layer.weight.fill_(w)
        values.append(w)
        average.update()
        seen.append(float(average.shadow["layer.weight"]))
    # decays 0.1, 2/11, 3/12, 4/13, then capped at 0.5
    assert seen == pytest.approx(reference_average(values, 0.5), rel=1e-6)
    assert list(average.shadow) == ["layer.weight"]  # frozen parameters are not averaged
    with average.applied():
        assert layer.weight.item() == pytest.approx(seen[-1], rel=1e-6)
    assert layer.weight.item() == 7.0  # the trained weight is back
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(modules, decay=1.0)


def test_training_with_an_average_leaves_the_trajectory_alone_and_ends_on_the_average(tmp_path, world):
    def probe(objective):
        param = objective.unet.conv_in.weight
        return lambda step: {"step": step, "w": float(param.detach()[0, 0, 0, 0])}

    plain = make_objective(world)
    log_plain, evals_plain = train(plain, SETTINGS, tmp_path / "plain", evaluate=probe(plain), eval_every=1)
    averaged = make_objective(world)
    settings = replace(SETTINGS, ema_decay=0.6)
    log_avg, evals_avg = train(averaged, settings, tmp_path / "avg", evaluate=probe(averaged), eval_every=1)

    assert log_avg["loss"].tolist() == log_plain["loss"].tolist()  # the average never feeds back into training
    expected = reference_average(evals_plain["w"].tolist(), 0.6)
    assert evals_avg["w"].tolist()[1:] == pytest.approx(expected, rel=1e-5)  # evaluations measure the average
    assert averaged.unet.conv_in.weight[0, 0, 0, 0].item() == pytest.approx(expected[-1], rel=1e-5)
    assert not torch.equal(averaged.unet.conv_in.weight, plain.unet.conv_in.weight)


class InterruptError(Exception):
    pass


def test_resume_restores_the_average(tmp_path, world):
    settings = replace(SETTINGS, ema_decay=0.6)
    reference = make_objective(world)
    train(reference, settings, tmp_path / "ref")

    def crash_at_5(step):
        if step == 5:
            raise InterruptError
        return {"step": step}

    with pytest.raises(InterruptError):
        train(make_objective(world), settings, tmp_path / "run", evaluate=crash_at_5, eval_every=1)
    resumed = make_objective(world)
    train(resumed, settings, tmp_path / "run", evaluate=lambda s: {"step": s}, eval_every=1)
    for (k, v), w in zip(weights(reference).items(), weights(resumed).values()):
        assert torch.equal(v, w), k
