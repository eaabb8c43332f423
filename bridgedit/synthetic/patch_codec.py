"""PatchVideoCodec: a small, simple video codec for the demo model, in the place of the Wan VAE.

Every frame is cut into non-overlapping P x P pixel patches; a small MLP maps each patch (3 P^2 values) to a
z_dim-vector and another maps it back. No temporal compression: one latent frame per video frame. It speaks the
Wan VAE's interface as far as WanPipeline and bridgedit use it (`encode(x).latent_dist.mode()`,
`decode(z).sample` clamped to [-1, 1], `config.z_dim`, `latents_mean`, `latents_std`, `scale_factor_temporal`,
`scale_factor_spatial`), so the demo model is a WanPipeline like any other. Why not a tiny AutoencoderKLWan: at
the widths a CPU can train in minutes it learned the backgrounds and lost the objects (400 steps: L1 0.05 and
no object visible), where this codec reconstructs them; see docs/synthetic.md.

    pixels (B, 3, F, H, W) in [-1, 1]  ->  latents (B, z_dim, F, H / P, W / P)
"""

from __future__ import annotations

import logging

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from einops import rearrange
from torch import nn


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, outputs)
    )


class PatchVideoCodec(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        patch_size: int = 8,
        z_dim: int = 16,
        hidden_dim: int = 512,
        in_channels: int = 3,
        latents_mean: list[float] | None = None,
        latents_std: list[float] | None = None,
        scale_factor_temporal: int = 1,
        scale_factor_spatial: int | None = None,
        decoder_kernel: int = 1,
    ) -> None:
        super().__init__()
        if scale_factor_temporal != 1 or (scale_factor_spatial not in (None, patch_size)):
            raise ValueError("PatchVideoCodec compresses by patch_size in space and not at all in time")
        if decoder_kernel < 1 or decoder_kernel % 2 == 0:
            raise ValueError(f"decoder_kernel must be a positive odd number; got {decoder_kernel}")
        self.register_to_config(
            scale_factor_spatial=patch_size,
            latents_mean=latents_mean or [0.0] * z_dim,
            latents_std=latents_std or [1.0] * z_dim,
        )
        values = in_channels * patch_size**2
        self.encoder = _mlp(values, hidden_dim, z_dim)
        self.decoder = _mlp(z_dim, hidden_dim, values)
        if decoder_kernel > 1:  # the decoder's first layer reads the k x k latents around each patch, not one alone
            self.decoder[0] = nn.Conv3d(
                z_dim,
                hidden_dim,
                (1, decoder_kernel, decoder_kernel),
                padding=(0, decoder_kernel // 2, decoder_kernel // 2),
            )

    def encode_patches(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) -> (B, z_dim, F, H / P, W / P)."""
        p = self.config.patch_size
        if x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"frames of {x.shape[-1]}x{x.shape[-2]} pixels are not a whole number of {p}x{p} patches")
        patches = rearrange(x, "b c f (h p) (w q) -> b f h w (c p q)", p=p, q=p)
        return rearrange(self.encoder(patches), "b f h w z -> b z f h w")

    def decode_patches(self, z: torch.Tensor) -> torch.Tensor:
        """(B, z_dim, F, h, w) -> (B, 3, F, h P, w P), unclamped."""
        p = self.config.patch_size
        if self.config.decoder_kernel > 1:  # (B, hidden, F, h, w): each patch's neighbourhood, then per patch
            patches = self.decoder[1:](rearrange(self.decoder[0](z), "b c f h w -> b f h w c"))
        else:
            patches = self.decoder(rearrange(z, "b z f h w -> b f h w z"))
        return rearrange(patches, "b f h w (c p q) -> b c f (h p) (w q)", p=p, q=p, c=self.config.in_channels)

    def encode(self, x: torch.Tensor, return_dict: bool = True):
        """A deterministic posterior (the Wan VAE's interface): its mean and mode are the codes."""
        mean = self.encode_patches(x)
        parameters = torch.cat([mean, torch.full_like(mean, -30.0)], dim=1)  # log-variance at the floor
        posterior = DiagonalGaussianDistribution(parameters, deterministic=True)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True):
        video = self.decode_patches(z).clamp(-1.0, 1.0)
        return DecoderOutput(sample=video) if return_dict else (video,)


class _PatchCodecTypeNotice(logging.Filter):
    """WanPipeline annotates its vae as AutoencoderKLWan, so loading one with this codec logs a type warning;
    this codec is made to stand in that place, so that one warning is dropped (every other passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Expected types for vae") and PatchVideoCodec.__name__ in message)


logging.getLogger("diffusers.pipelines.pipeline_utils").addFilter(_PatchCodecTypeNotice())
