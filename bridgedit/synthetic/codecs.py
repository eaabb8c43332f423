"""The demo model's codecs, trained on a dataset's clips so that a small model's latents decode to real pictures
and sounds: the patch video codec (`bridgedit.synthetic.patch_codec`) and a tiny diffusers AutoencoderOobleck.

The video codec learns from random single frames (it codes each frame's patches independently); its loss is the
L1 pixel error with object pixels (those unlike the frame's median colour) weighted 21x, since objects cover
about 2 % of a frame. Its per-channel latent mean and std over the data are then written into its config
(`latents_mean` / `latents_std`, as the real Wan VAE has), so the diffusion model sees unit-scale latents.
The audio codec is trained as an autoencoder of the posterior mean (what `bridgedit cache` stores and the
pipeline decodes) plus a small KL term; its loss is the waveform L1 plus a multi-resolution STFT loss (spectral
convergence + log-magnitude L1, as in Parallel WaveGAN and Stable Audio's autoencoder training).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderOobleck

from ..data.manifest import clip_files, load_manifest
from ..media import read_frames, read_wav
from .patch_codec import PatchVideoCodec

logger = logging.getLogger(__name__)

KL_WEIGHT = 1e-6
#: extra weight of object pixels in the video loss: objects cover ~2 % of a frame, and a plain L1 codec first
#: learns (and long stays at) backgrounds only
OBJECT_WEIGHT = 20.0
STFT_RESOLUTIONS = ((256, 64), (128, 32), (64, 16))  # (FFT size, hop) at the world's 4 kHz: 64 ms ... 16 ms


def load_clips(dataset: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray, int]:
    """All clips of a split in memory: frames (N, F, H, W, 3) uint8, mono audio (N, samples) float32, rate."""
    frames, audio, rate = [], [], None
    for record in load_manifest(dataset, split=split):
        video_path, audio_path = clip_files(dataset, record)
        frames.append(read_frames(video_path))
        wave, rate = read_wav(audio_path)
        audio.append(wave.mean(axis=0))
    if not frames:
        raise ValueError(f"{dataset} has no clips in split {split!r}")
    return np.stack(frames), np.stack(audio).astype(np.float32), int(rate)


def _lr_at(step: int, steps: int, lr: float, warmup: int = 20) -> float:
    """Linear warm-up, then cosine to a tenth."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _train(
    model: torch.nn.Module,
    loss_of_batch: Callable[[torch.Generator], torch.Tensor],
    steps: int,
    lr: float,
    seed: int,
    name: str,
    log_every: int = 50,
) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, steps, lr)
        loss = loss_of_batch(generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step == 0:
            logger.info("%s codec step %d/%d  loss %.4f", name, step + 1, steps, np.mean(losses[-log_every:]))
    return losses


# ----------------------------------------------------------------------------------------------------
# Video
# ----------------------------------------------------------------------------------------------------


def _pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 (B, F, H, W, 3) -> float (B, 3, F, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def foreground(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, F, H, W) 1.0 where a pixel differs from its frame's median colour (objects), else 0.0; x (B, 3, F, H, W)."""
    background = x.flatten(3).median(dim=-1).values[..., None, None]  # (B, 3, F, 1, 1)
    return ((x - background).abs().sum(dim=1, keepdim=True) > 0.15).float()


def train_video_codec(
    codec: PatchVideoCodec,
    frames: np.ndarray,
    *,
    steps: int,
    frames_per_batch: int = 48,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train `codec` in place on random single frames of `frames` (N, F, H, W, 3); returns the loss per step."""
    flat = frames.reshape(-1, *frames.shape[2:])  # (N * F, H, W, 3)

    def loss_of_batch(generator: torch.Generator) -> torch.Tensor:
        picked = torch.randint(len(flat), (frames_per_batch,), generator=generator)
        x = _pixels(flat[picked.numpy()][:, None])  # (B, 3, 1, H, W)
        reconstruction = codec.decode_patches(codec.encode_patches(x))
        weights = 1.0 + OBJECT_WEIGHT * foreground(x)  # (B, 1, 1, H, W)
        return (weights * (reconstruction - x).abs()).mean() / weights.mean()

    losses = _train(codec, loss_of_batch, steps, lr, seed, "video")
    codec.eval()
    return losses


@torch.no_grad()
def set_latent_statistics(vae: PatchVideoCodec, frames: np.ndarray, batch_size: int = 8) -> None:
    """Write the per-channel mean and std of the posterior means over `frames` into the VAE's config."""
    latents = torch.cat(
        [vae.encode(_pixels(frames[i : i + batch_size])).latent_dist.mode() for i in range(0, len(frames), batch_size)]
    )  # (N, C, F', H', W')
    channels = latents.transpose(0, 1).reshape(latents.shape[1], -1)  # (C, N * F' * H' * W')
    vae.register_to_config(latents_mean=channels.mean(1).tolist(), latents_std=channels.std(1).clamp_min(1e-4).tolist())


# ----------------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------------


def multi_resolution_stft_loss(
    estimate: torch.Tensor, target: torch.Tensor, resolutions=STFT_RESOLUTIONS
) -> torch.Tensor:
    """Mean over resolutions of spectral convergence + L1 of log magnitudes; inputs (B, samples)."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        window = torch.hann_window(n_fft, device=estimate.device)
        spectra = [
            torch.stft(x, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-5)
            for x in (estimate, target)
        ]
        convergence = torch.linalg.norm(spectra[1] - spectra[0]) / torch.linalg.norm(spectra[1]).clamp_min(1e-5)
        total = total + convergence + F.l1_loss(spectra[0].log(), spectra[1].log())
    return total / len(resolutions)


def train_audio_codec(
    vae: AutoencoderOobleck,
    audio: np.ndarray,
    *,
    steps: int,
    batch_size: int = 8,
    window_samples: int = 2048,
    lr: float = 2e-3,
    seed: int = 0,
) -> list[float]:
    """Train `vae` in place on random windows of mono `audio` (N, samples), duplicated to the codec's channels."""
    hop = math.prod(vae.config.downsampling_ratios)
    window_samples = min(window_samples, audio.shape[1]) // hop * hop
    data = torch.from_numpy(audio)

    def loss_of_batch(generator: torch.Generator) -> torch.Tensor:
        clips = torch.randint(len(audio), (batch_size,), generator=generator)
        starts = torch.randint(audio.shape[1] - window_samples + 1, (batch_size,), generator=generator)
        mono = torch.stack([data[c, s : s + window_samples] for c, s in zip(clips.tolist(), starts.tolist())])
        x = mono[:, None].expand(-1, vae.config.audio_channels, -1)  # (B, channels, samples)
        posterior = vae.encode(x).latent_dist
        reconstruction = vae.decode(posterior.mode()).sample[..., :window_samples]
        estimate = reconstruction.reshape(-1, window_samples)
        target = x.reshape(-1, window_samples)
        return (
            F.l1_loss(estimate, target)
            + multi_resolution_stft_loss(estimate, target)
            + KL_WEIGHT * posterior.kl().mean()
        )

    losses = _train(vae, loss_of_batch, steps, lr, seed, "audio")
    vae.eval()
    return losses
