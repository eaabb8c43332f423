"""The two towers' noise processes and training targets (Eq. 4-6), and the timestep coupling (§3.1).

Audio (Stable Audio Open, v-prediction on a cosine schedule), t_A in [0, 1]:
    alpha = cos(pi t_A / 2), sigma = sin(pi t_A / 2)
    x_A(t_A) = alpha x_A + sigma eps_A,        target v = alpha eps_A - sigma x_A        (Eq. 5)
Video (Wan 2.1, flow matching), t_V in [0, 1000]:
    x_V(t_V) = (1 - t_V / 1000) x_V + (t_V / 1000) eps_V,     target eps_V - x_V         (Eq. 6)
Coupling: t_V = 1000 t_A.
"""

from __future__ import annotations

import math

import torch

VIDEO_TIMESTEP_SCALE = 1000.0  # Wan's timesteps run 0..1000; Stable Audio's 0..1


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # (B,) -> (B, 1, ..., 1), broadcastable against `like`
    return t.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def couple_timesteps(t_audio: torch.Tensor) -> torch.Tensor:
    """t_V = 1000 * t_A (§3.1)."""
    return VIDEO_TIMESTEP_SCALE * t_audio


def audio_alpha_sigma(t_audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    angle = t_audio * (math.pi / 2)
    return torch.cos(angle), torch.sin(angle)


def noise_audio(x_audio: torch.Tensor, noise: torch.Tensor, t_audio: torch.Tensor) -> torch.Tensor:
    alpha, sigma = audio_alpha_sigma(_per_sample(t_audio, x_audio))
    return alpha * x_audio + sigma * noise


def audio_target(x_audio: torch.Tensor, noise: torch.Tensor, t_audio: torch.Tensor) -> torch.Tensor:
    alpha, sigma = audio_alpha_sigma(_per_sample(t_audio, x_audio))
    return alpha * noise - sigma * x_audio


def noise_video(x_video: torch.Tensor, noise: torch.Tensor, t_video: torch.Tensor) -> torch.Tensor:
    s = _per_sample(t_video, x_video) / VIDEO_TIMESTEP_SCALE
    return (1 - s) * x_video + s * noise


def video_target(x_video: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x_video


def audio_v_to_data(x_t: torch.Tensor, v: torch.Tensor, t_audio: torch.Tensor) -> torch.Tensor:
    """x_0 implied by a v prediction: alpha x_t - sigma v."""
    alpha, sigma = audio_alpha_sigma(_per_sample(t_audio, x_t))
    return alpha * x_t - sigma * v


def video_velocity_to_data(x_t: torch.Tensor, velocity: torch.Tensor, t_video: torch.Tensor) -> torch.Tensor:
    """x_0 implied by a flow prediction: x_t - s * (eps - x_0), s = t_V / 1000."""
    return x_t - _per_sample(t_video, x_t) / VIDEO_TIMESTEP_SCALE * velocity
