"""Training objectives: one nn.Module per method whose forward returns (loss, metrics) for a drawn micro-batch.

The trainer owns the loop (optimiser, accumulation, checkpoints) and the data order (data/order.py): it hands an
objective the fetched examples of a micro-batch and one seeded generator per example. The objective owns what
differs between methods: which modules train, what random numbers each example draws (always in the same order
from its own generator, so forward is a deterministic function of the batch), and the loss. Keeping the loss
inside forward() lets DistributedDataParallel wrap the objective as one model.

`objective.source` is what the trainer's DataLoader reads: `len`, `fetch(indices)` (CPU work, possibly in worker
processes) and `workers`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..diffusion import add_noise

if TYPE_CHECKING:
    from ..models.bundle import T2IModel
from .losses import epsilon_loss, per_sample_mse

Generators = list[torch.Generator]


def uniform(generators: Generators) -> torch.Tensor:
    """One U(0, 1) number per example."""
    return torch.cat([torch.rand(1, generator=g) for g in generators])


def integers(generators: Generators, low: int, high: int) -> torch.Tensor:
    """One integer of [low, high] per example."""
    return torch.cat([torch.randint(low, high + 1, (1,), generator=g) for g in generators])


def normal(generators: Generators, shape: tuple[int, ...]) -> torch.Tensor:
    """One standard normal tensor of `shape` per example, stacked."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators])


class InMemory:
    """A source whose examples are already tensors in the objective: fetching is just the indices."""

    workers = 0

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def fetch(self, indices: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(indices)


class Pretrain(nn.Module):
    """Denoising pretraining from scratch on (image, caption) data; the text encoder trains jointly."""

    name = "pretrain"

    def __init__(
        self, model: T2IModel, images: np.ndarray, captions: list[str], caption_dropout: float, batch_size: int
    ) -> None:
        super().__init__()
        self.unet = model.unet
        self.text_encoder = model.text_encoder
        self.register_buffer("abar", model.alphas_cumprod.clone(), persistent=False)
        self.x0 = model.images_to_x0(images)
        unique = sorted(set(captions) | {""})
        self.tokens = model.tokenize(unique)
        index = {c: i for i, c in enumerate(unique)}
        self.caption_index = torch.tensor([index[c] for c in captions])
        self.empty_index = index[""]
        self.caption_dropout = caption_dropout
        self.batch_size = batch_size
        self.num_timesteps = model.num_train_timesteps
        self.source = InMemory(len(self.x0))

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "text_encoder": self.text_encoder}

    def draw(self, idx: torch.Tensor, generators: Generators, indices: Any = None) -> dict[str, Any]:
        captions = self.caption_index[idx].clone()
        captions[uniform(generators) < self.caption_dropout] = self.empty_index
        return {
            "x0": self.x0[idx],
            "tokens": self.tokens[captions],
            "t": integers(generators, 0, self.num_timesteps - 1),
            "noise": normal(generators, tuple(self.x0.shape[1:])),
        }

    def forward(
        self, x0: torch.Tensor, tokens: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        context = self.text_encoder(tokens).last_hidden_state
        x_t = add_noise(x0, noise, self.abar[t])
        eps = self.unet(x_t, t, encoder_hidden_states=context).sample
        loss = epsilon_loss(eps, noise)
        return loss, {"model_mse": per_sample_mse(eps.detach(), noise).mean()}


# the layers autocast runs in half precision on CPU and CUDA alike: their weights are cast to the autocast dtype
# there anyway, so storing them in it changes no result
AUTOCAST_HALF_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def half_matmul_layers(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store the weights of `module`'s Linear and Conv layers in `dtype`, every other parameter in float32.

    Under autocast a float32 policy computes exactly what this module computes: its Linear / Conv weights are cast
    to the autocast dtype at each call, the same rounding as storing them so, while normalisation layers run on
    float32 weights. The official scripts (SalesforceAIResearch/DiffusionDPO, JaydenLyh/InPO train.py) cast the
    whole reference to the weight dtype, which also rounds the GroupNorm / LayerNorm scales and shifts: once they
    have left 1 and 0 (an SFT initialisation), policy and reference disagree at step 0 (bf16: DDIM-InPO's loss .650
    instead of log 2 on the SD stand-in with every weight moved by 0.01;
    tests/test_objectives.py::test_every_method_starts_at_its_known_value).
    """
    for layer in module.modules():
        if isinstance(layer, AUTOCAST_HALF_LAYERS):
            layer.to(dtype)
    return module


def plain_eps(unet: nn.Module, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A UNet conditioned on text alone (the toy model, SD 1.x/2.x); SDXL passes T2IModel.eps instead."""
    return unet(x, t, encoder_hidden_states=context).sample


class PairObjective(nn.Module):
    """The trained UNet (`policy`), optionally a frozen `reference`, and the per-pair draws every pair method
    shares: caption dropout, the timestep, a horizontal flip of each image, in that order from the pair's
    generator (methods add theirs after these). `t_table` (config t_sampling) maps each drawn timestep to the one
    trained at.

    `data` is a source of data/pairs.py (PairData, EncodedPairs, LazyPairs); `eps_fn(unet, x, t, context)` calls a
    UNet with the model kind's conditioning (T2IModel.eps). With `reference`, a frozen copy of the initial UNet is
    kept out of the optimiser's parameters; under mixed-precision training its matrix-multiplying layers are stored
    in half precision (`reference_dtype`, see `half_matmul_layers`), as the official scripts keep the reference in
    their weight dtype.
    """

    def __init__(
        self,
        unet: nn.Module,
        data: Any,
        abar: torch.Tensor,
        batch_size: int,
        caption_dropout: float,
        t_min: int = 0,
        t_max: int | None = None,
        t_table: torch.Tensor | None = None,
        eps_fn: Callable[..., torch.Tensor] = plain_eps,
        reference: bool = False,
        reference_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.policy = unet
        if reference:
            self.reference = copy.deepcopy(unet).requires_grad_(False).eval()
            if reference_dtype is not None:
                half_matmul_layers(self.reference, reference_dtype)
        t_max = len(abar) - 1 if t_max is None else t_max
        if not 0 <= t_min <= t_max < len(abar):
            raise ValueError(f"timestep range [{t_min}, {t_max}] must lie within [0, {len(abar) - 1}]")
        self.data = self.source = data
        self.register_buffer("abar", abar.clone(), persistent=False)
        self.batch_size = batch_size
        self.caption_dropout = caption_dropout
        self.t_min, self.t_max = t_min, t_max
        if t_table is not None and (len(t_table) != len(abar) or t_table.min() < 0 or t_table.max() >= len(abar)):
            raise ValueError(f"t_table must map each of the {len(abar)} timesteps to one of them")
        self.t_table = t_table
        self.eps_fn = eps_fn

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.policy}

    def draw_common(
        self, fetched: Any, generators: Generators
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        dropped = uniform(generators) < self.caption_dropout
        t = integers(generators, self.t_min, self.t_max)
        if self.t_table is not None:  # t_sampling: the drawn timestep stands for the one trained at
            t = self.t_table[t]
        flips = torch.stack([uniform(generators) < 0.5, uniform(generators) < 0.5], dim=1)
        x0_w, x0_l, context = self.data.encode(fetched, flips)
        context = context.clone()
        context[dropped] = self.data.empty.to(context)
        return x0_w, x0_l, {"context": context, "t": t}


def pair_mse(
    objective: PairObjective, x_t: torch.Tensor, t2: torch.Tensor, context2: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Policy and reference predictions on a (winners then losers) batch and their per-sample MSEs."""
    pred = objective.eps_fn(objective.policy, x_t, t2, context2)
    with torch.no_grad():
        ref = objective.eps_fn(objective.reference, x_t, t2, context2)
    return pred, ref, per_sample_mse(pred, target), per_sample_mse(ref, target)
