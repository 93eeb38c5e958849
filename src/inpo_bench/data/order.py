"""Which training examples each micro-batch of each process gets, and where each example's random numbers come from.

Examples are visited epoch by epoch, every epoch a fresh permutation of all of them: sampling without replacement,
as the official scripts' shuffled DataLoader does. The permutations make one global stream of example positions
0, 1, 2, ...; optimiser step s takes the positions [s * E, (s + 1) * E) for an effective batch of E examples, and
micro-batch m of process r takes its own consecutive slice of them (sharding across ranks, like a DistributedSampler):

    position = s * E + (m * processes + r) * batch_size + i,   E = batch_size * grad_accum * processes

So a step trains on the same examples however E is split into processes and accumulation, and every random number
an example needs (caption dropout, timestep, flips, noise) is drawn from a generator seeded by (seed, position):
the training is a function of the config and seed alone, not of the GPU count (up to the order of floating-point
sums), and a resumed run needs no generator state, only its step counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError

_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A 63-bit hash of integers (splitmix64 rounds): decorrelated seeds for neighbouring inputs."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK)) & _MASK
        state = (state + 0x9E3779B97F4A7C15) & _MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        state = z ^ (z >> 31)
    return state >> 1


@dataclass(frozen=True)
class Layout:
    """How one optimiser step's examples are split: per-process micro-batches, accumulation, processes."""

    batch_size: int
    grad_accum: int
    processes: int

    @property
    def per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.processes

    @classmethod
    def for_step(cls, per_step: int, batch_size: int, processes: int, what: str = "pairs_per_step") -> Layout:
        """The layout that trains `per_step` examples per optimiser step; refuses a split that does not divide."""
        per_micro = batch_size * processes
        if per_step % per_micro:
            raise ConfigError(
                f"{what} {per_step} is not a multiple of batch_size {batch_size} x {processes} process(es) = "
                f"{per_micro}: gradient accumulation needs a whole number of micro-batches; change {what}, the "
                "per-GPU batch_size or the GPU count"
            )
        return cls(batch_size, per_step // per_micro, processes)

    def positions(self, step: int, micro: int, process: int) -> np.ndarray:
        """Global stream positions of one micro-batch of one process."""
        start = step * self.per_step + (micro * self.processes + process) * self.batch_size
        return np.arange(start, start + self.batch_size, dtype=np.int64)


class ExampleOrder:
    """Position in the global stream -> example index: one seeded permutation of all examples per epoch."""

    def __init__(self, num_examples: int, seed: int) -> None:
        if num_examples < 1:
            raise ValueError("no examples to train on")
        self.num_examples = num_examples
        self.seed = seed
        self._cache: dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) >= 2:  # a micro-batch spans at most two epochs
                self._cache.pop(min(self._cache))
            rng = np.random.Generator(np.random.PCG64(mix(self.seed, epoch, 0x0D0E)))
            self._cache[epoch] = rng.permutation(self.num_examples)
        return self._cache[epoch]

    def examples(self, positions: np.ndarray) -> np.ndarray:
        epochs, offsets = np.divmod(np.asarray(positions, dtype=np.int64), self.num_examples)
        out = np.empty(len(offsets), dtype=np.int64)
        for epoch in np.unique(epochs):
            where = epochs == epoch
            out[where] = self.permutation(int(epoch))[offsets[where]]
        return out


def example_generators(seed: int, positions: np.ndarray) -> list[torch.Generator]:
    """One generator per example, seeded by (seed, its stream position)."""
    return [torch.Generator().manual_seed(mix(seed, int(p))) for p in positions]
