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
from typing import Any

import numpy as np
import torch
from torch import nn

from ..diffusion import add_noise
from ..models.bundle import T2IModel
from .inversion import InversionSettings, invert, max_steps
from .losses import dpo_loss, epsilon_loss, implicit_accuracy, inpo_target, per_sample_mse

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

    def draw(self, idx: torch.Tensor, generators: Generators) -> dict[str, Any]:
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
    ) -> tuple[torch.Tensor, dict[str, float]]:
        context = self.text_encoder(tokens).last_hidden_state
        x_t = add_noise(x0, noise, self.abar[t])
        eps = self.unet(x_t, t, encoder_hidden_states=context).sample
        loss = epsilon_loss(eps, noise)
        return loss, {"model_mse": float(per_sample_mse(eps.detach(), noise).mean())}


def plain_eps(unet: nn.Module, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A UNet conditioned on text alone (the toy model, SD 1.x/2.x); SDXL passes T2IModel.eps instead."""
    return unet(x, t, encoder_hidden_states=context).sample


class _PairObjective(nn.Module):
    """The trained UNet (`policy`) and the shared per-pair draws of SFT, Diffusion-DPO and DDIM-InPO: caption
    dropout, the timestep, a horizontal flip of each image, in that order from the pair's generator.

    `data` is a source of data/pairs.py (PairData, EncodedPairs, LazyPairs); `eps_fn(unet, x, t, context)` calls a
    UNet with the model kind's conditioning (T2IModel.eps).
    """

    def __init__(
        self,
        unet: nn.Module,
        data: Any,
        abar: torch.Tensor,
        batch_size: int,
        caption_dropout: float,
        t_min: int,
        t_max: int | None,
        eps_fn: Callable[..., torch.Tensor],
    ) -> None:
        super().__init__()
        self.policy = unet
        t_max = len(abar) - 1 if t_max is None else t_max
        if not 0 <= t_min <= t_max < len(abar):
            raise ValueError(f"timestep range [{t_min}, {t_max}] must lie within [0, {len(abar) - 1}]")
        self.data = self.source = data
        self.register_buffer("abar", abar.clone(), persistent=False)
        self.batch_size = batch_size
        self.caption_dropout = caption_dropout
        self.t_min, self.t_max = t_min, t_max
        self.eps_fn = eps_fn

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.policy}

    def _draw_common(
        self, fetched: Any, generators: Generators
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        dropped = uniform(generators) < self.caption_dropout
        t = integers(generators, self.t_min, self.t_max)
        flips = torch.stack([uniform(generators) < 0.5, uniform(generators) < 0.5], dim=1)
        x0_w, x0_l, context = self.data.encode(fetched, flips)
        context = context.clone()
        context[dropped] = self.data.empty.to(context)
        return x0_w, x0_l, {"context": context, "t": t}


class SFT(_PairObjective):
    """Supervised fine-tuning: the denoising loss on the preferred image of each pair."""

    name = "sft"

    def __init__(
        self,
        unet: nn.Module,
        data: Any,
        abar: torch.Tensor,
        batch_size: int,
        caption_dropout: float,
        t_min: int = 0,
        t_max: int | None = None,
        eps_fn: Callable[..., torch.Tensor] = plain_eps,
    ) -> None:
        super().__init__(unet, data, abar, batch_size, caption_dropout, t_min, t_max, eps_fn)

    def draw(self, fetched: Any, generators: Generators) -> dict[str, Any]:
        x0, _, batch = self._draw_common(fetched, generators)
        return {**batch, "x0": x0, "noise": normal(generators, tuple(x0.shape[1:]))}

    def forward(
        self, x0: torch.Tensor, context: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        eps = self.eps_fn(self.policy, add_noise(x0, noise, self.abar[t]), t, context)
        loss = epsilon_loss(eps, noise)
        return loss, {"model_mse": float(loss.detach())}


class Preference(_PairObjective):
    """Diffusion-DPO (inversion=None) and DDIM-InPO (inversion settings given): one loss, two ways to get x_t.

    Diffusion-DPO noises winner and loser with the same t and the same epsilon and regresses onto epsilon.
    DDIM-InPO inverts each image with DDIM (under no_grad, with the policy or the frozen reference) to the
    shared t and regresses onto tau = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), a different target per image.
    Both then apply -logsigmoid(-0.5 beta ((m_w - m_l) - (r_w - r_l))) to the per-sample MSEs.
    """

    def __init__(
        self,
        unet: nn.Module,
        data: Any,
        abar: torch.Tensor,
        batch_size: int,
        caption_dropout: float,
        beta: float,
        t_min: int = 0,
        t_max: int | None = None,
        inversion: InversionSettings | None = None,
        timestep_offset: int = 1,
        eps_fn: Callable[..., torch.Tensor] = plain_eps,
        reference_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(unet, data, abar, batch_size, caption_dropout, t_min, t_max, eps_fn)
        # the frozen reference starts equal to the policy; kept out of the parameters the optimiser sees, and in
        # half precision under mixed-precision training, as the official scripts keep it
        self.reference = copy.deepcopy(unet).requires_grad_(False).eval()
        if reference_dtype is not None:
            self.reference.to(reference_dtype)
        self.beta = beta
        self.inversion = inversion
        self.timestep_offset = timestep_offset
        self.name = "dpo" if inversion is None else "inpo"

    def draw(self, fetched: Any, generators: Generators) -> dict[str, Any]:
        x0_w, x0_l, batch = self._draw_common(fetched, generators)
        shape = tuple(x0_w.shape[1:])
        if self.inversion is None:
            extra = {"noise": normal(generators, shape)}  # shared by winner and loser
        else:  # (steps, pairs, 2, ...) -> (steps, winners then losers, ...), the order forward() inverts in
            eta = normal(generators, (max_steps(len(self.abar), self.inversion), 2, *shape)).transpose(0, 1)
            extra = {"eta_noise": torch.cat([eta[:, :, 0], eta[:, :, 1]], dim=1)}
        return {**batch, "x0_w": x0_w, "x0_l": x0_l, **extra}

    def _inversion_eps(self, context: torch.Tensor) -> Any:
        unet = self.policy if self.inversion.model == "policy" else self.reference
        guidance = self.inversion.guidance
        empty = self.data.empty.to(context)

        def eps_fn(x: torch.Tensor, timesteps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            ctx = context[index]
            if guidance == 1.0:
                return self.eps_fn(unet, x, timesteps, ctx)
            both = self.eps_fn(
                unet, torch.cat([x, x]), torch.cat([timesteps, timesteps]), torch.cat([empty.expand_as(ctx), ctx])
            )
            eps_u, eps_c = both.chunk(2)
            return eps_u + guidance * (eps_c - eps_u)

        return eps_fn

    def forward(
        self,
        x0_w: torch.Tensor,
        x0_l: torch.Tensor,
        context: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        eta_noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        b = len(x0_w)
        x0 = torch.cat([x0_w, x0_l])
        context2, t2 = torch.cat([context, context]), torch.cat([t, t])
        abar_t = self.abar[t2]
        extra: dict[str, float] = {}
        if self.inversion is None:
            target = torch.cat([noise, noise])
            x_t = add_noise(x0, target, abar_t)
        else:
            with torch.no_grad():
                x_t, evaluations = invert(
                    self._inversion_eps(context2), x0, t2, self.abar, self.inversion, eta_noise, self.timestep_offset
                )
            target = inpo_target(x_t, x0, abar_t)
            extra["inversion_evals"] = float(evaluations)
        pred = self.eps_fn(self.policy, x_t, t2, context2)
        with torch.no_grad():
            ref = self.eps_fn(self.reference, x_t, t2, context2)
        model_mse, ref_mse = per_sample_mse(pred, target), per_sample_mse(ref, target)
        losses, inside = dpo_loss(model_mse[:b], model_mse[b:], ref_mse[:b], ref_mse[b:], self.beta)
        return losses.mean(), {
            "implicit_acc": implicit_accuracy(inside),
            "model_mse": float(model_mse.detach().mean()),
            "ref_mse": float(ref_mse.mean()),
            **extra,
        }
