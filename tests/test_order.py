"""The data order: epoch-wise sampling without replacement, sharding across processes, per-example randomness."""

import numpy as np
import pytest
import torch

from inpo_bench.data.order import ExampleOrder, Layout, example_generators, mix
from inpo_bench.errors import ConfigError


def test_each_epoch_visits_every_example_once_in_a_fresh_order():
    order = ExampleOrder(37, seed=5)
    stream = order.examples(np.arange(37 * 3))
    epochs = stream.reshape(3, 37)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(37))
    assert not np.array_equal(epochs[0], epochs[1])
    # the old sampler drew with replacement: over one epoch's worth of draws about 1/e of the examples go unseen
    assert len(np.unique(stream[:37])) == 37
    assert np.array_equal(ExampleOrder(37, seed=5).examples(np.arange(50, 90)), stream[50:90])  # a pure function
    assert not np.array_equal(ExampleOrder(37, seed=6).examples(np.arange(37)), epochs[0])


@pytest.mark.parametrize(("batch_size", "grad_accum", "processes"), [(12, 1, 1), (2, 3, 2), (1, 6, 2), (3, 1, 4)])
def test_a_step_covers_the_same_positions_however_it_is_split(batch_size, grad_accum, processes):
    layout = Layout(batch_size, grad_accum, processes)
    assert layout.per_step == 12
    for step in (0, 5):
        seen = np.concatenate([layout.positions(step, m, r) for m in range(grad_accum) for r in range(processes)])
        assert sorted(seen.tolist()) == list(range(step * 12, step * 12 + 12))  # disjoint shards, nothing left out


def test_layout_for_a_step_derives_accumulation_and_refuses_what_does_not_divide():
    assert Layout.for_step(1024, 1, 8) == Layout(1, 128, 8)
    assert Layout.for_step(2048, 2, 4).grad_accum == 256
    with pytest.raises(ConfigError, match=r"pairs_per_step 1024 is not a multiple of batch_size 1 x 3 process"):
        Layout.for_step(1024, 1, 3)


def test_example_generators_depend_only_on_seed_and_position():
    a = [torch.rand(3, generator=g) for g in example_generators(0, np.array([4, 5]))]
    b = [torch.rand(3, generator=g) for g in example_generators(0, np.array([5, 4]))]
    assert torch.equal(a[0], b[1]) and torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    c = [torch.rand(3, generator=g) for g in example_generators(1, np.array([4]))]
    assert not torch.equal(a[0], c[0])
    assert len({mix(0, p) for p in range(10_000)}) == 10_000 and all(0 <= mix(7, p) < 2**63 for p in range(100))
