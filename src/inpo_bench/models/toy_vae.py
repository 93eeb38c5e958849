"""The latent toy world's autoencoder: a tiny diffusers AutoencoderKL trained once on the world's pretraining renders
and frozen, as Stable Diffusion's VAE is (config `toy_model.vae`).

Why: a pixel-space base of this size stays an under-trained averaging model whose defects are soft edges and muddy
colours rather than the discrete errors preference data can remove; a decoder trained on renders turns a latent
near the data's into a clean render, so the base's imperfections are what it learned to choose (which colours,
which shape), as SD's are. The objective is the VAE's usual one: the squared reconstruction error of a posterior
sample plus `kl_weight` times the KL to N(0, I); with `latent_noise` the decoder also sees the sample moved by that
multiple of the batch's latent spread, so that latents a little off the data's still decode to clean renders. It
trains through the project's trainer (its resume, determinism and log).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from torch import nn

from ..methods.objectives import Generators, InMemory, normal


def build_vae(cfg: dict[str, Any], resolution: int) -> AutoencoderKL:
    """An AutoencoderKL downsampling by 2 ** (levels - 1) (factor 2: 16 x 16 x 3 -> 8 x 8 x latent_channels)."""
    widths = tuple(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(widths),
        up_block_types=("UpDecoderBlock2D",) * len(widths),
        block_out_channels=widths,
        latent_channels=cfg["latent_channels"],
        layers_per_block=1,
        norm_num_groups=cfg["norm_num_groups"],
        sample_size=resolution,
    )


class VAEPretrain(nn.Module):
    """The autoencoder's training objective on uint8 (N, H, W, 3) images, for train.train()."""

    name = "toy_vae"

    def __init__(self, vae: AutoencoderKL, images: np.ndarray, kl_weight: float, latent_noise: float, batch_size: int):
        super().__init__()
        self.vae = vae
        self.x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        self.kl_weight, self.latent_noise, self.batch_size = kl_weight, latent_noise, batch_size
        side = images.shape[1] // 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_shape = (vae.config.latent_channels, side, side)
        self.source = InMemory(len(self.x))

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    def draw(self, idx: torch.Tensor, generators: Generators, indices: Any = None) -> dict[str, Any]:
        return {
            "x": self.x[idx],
            "sample": normal(generators, self.latent_shape),  # the posterior sample's noise
            "moved": normal(generators, self.latent_shape),  # the decoder's input noise (latent_noise)
        }

    def forward(
        self, x: torch.Tensor, sample: torch.Tensor, moved: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        posterior = self.vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * sample
        if self.latent_noise > 0:
            z = z + self.latent_noise * z.detach().std() * moved
        reconstruction = self.vae.decode(z).sample
        error = (reconstruction.float() - x).pow(2).mean()
        kl = posterior.kl().mean() / z[0].numel()  # per latent value
        return error + self.kl_weight * kl, {"model_mse": error.detach(), "kl": kl.detach()}


@torch.no_grad()
def scaling_factor(vae: AutoencoderKL, images: np.ndarray, batch_size: int = 256) -> float:
    """1 / the standard deviation of the posterior means over `images`: scaled latents have unit variance, as SD's
    0.18215 gives its latents."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    means = torch.cat([vae.encode(x[i : i + batch_size]).latent_dist.mean for i in range(0, len(x), batch_size)])
    return float(1.0 / means.std())
