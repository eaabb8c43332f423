"""Objectives (Eq. 4-6), joint samplers and classifier-free guidance (Eq. 11-12)."""

from .guidance import GuidedDenoiser, concat_conditions
from .objectives import (
    audio_alpha_sigma,
    audio_target,
    audio_v_to_data,
    couple_timesteps,
    noise_audio,
    noise_video,
    video_target,
    video_velocity_to_data,
)
from .samplers import (
    COUPLED_SAMPLERS,
    HOLD_MODES,
    StepCallback,
    coupled_grid,
    hold_fixed,
    sample_euler,
    sample_heun,
    sample_native,
)
from .step_cache import StepCache

__all__ = [
    "COUPLED_SAMPLERS",
    "HOLD_MODES",
    "GuidedDenoiser",
    "StepCache",
    "StepCallback",
    "audio_alpha_sigma",
    "audio_target",
    "audio_v_to_data",
    "concat_conditions",
    "couple_timesteps",
    "coupled_grid",
    "hold_fixed",
    "noise_audio",
    "noise_video",
    "sample_euler",
    "sample_heun",
    "sample_native",
    "video_target",
    "video_velocity_to_data",
]
