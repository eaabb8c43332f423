"""Classifier-free guidance with one scale per modality (Eq. 11-12), as a wrapper around the network.

The conditional and unconditional passes are batched into one joint forward: the conditions are
concatenated once, when the wrapper is made, not at every step. A scale of 1 for both modalities
skips the unconditional half altogether.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from ..model import BridgeDiT
from .step_cache import StepCache


def concat_conditions(first: Any, second: Any) -> Any:
    """Concatenate two condition dataclasses of one type along the batch dimension (None stays None)."""
    values = {}
    for field in fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if (a is None) != (b is None):
            raise ValueError(f"conditions disagree on {field.name}: one is None, the other is not")
        values[field.name] = None if a is None else torch.cat([a, b], dim=0)
    return type(first)(**values)


@dataclass
class GuidedDenoiser:
    """fn(x_video, x_audio, t_video, t_audio) -> (pred_video, pred_audio), guided per Eq. 11-12:

    pred = pred(x, null) + w * (pred(x, T) - pred(x, null)),   w = video_scale or audio_scale
    """

    model: BridgeDiT
    video_conditions: Any
    audio_conditions: Any
    null_video_conditions: Any
    null_audio_conditions: Any
    video_scale: float
    audio_scale: float
    step_cache: StepCache | None = None  # first-block caching across the run's steps (off: None)

    def __post_init__(self) -> None:
        self.guided = self.video_scale != 1.0 or self.audio_scale != 1.0
        if self.guided:  # (null; conditional), computed once for the whole sampling run
            self._video_both = concat_conditions(self.null_video_conditions, self.video_conditions)
            self._audio_both = concat_conditions(self.null_audio_conditions, self.audio_conditions)

    def __call__(self, x_video, x_audio, t_video, t_audio) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.guided:
            return self.model(
                x_video,
                x_audio,
                t_video,
                t_audio,
                self.video_conditions,
                self.audio_conditions,
                step_cache=self.step_cache,
            )
        pred_video, pred_audio = self.model(
            torch.cat([x_video, x_video]),
            torch.cat([x_audio, x_audio]),
            torch.cat([t_video, t_video]),
            torch.cat([t_audio, t_audio]),
            self._video_both,
            self._audio_both,
            step_cache=self.step_cache,
        )
        null_video, cond_video = pred_video.chunk(2)
        null_audio, cond_audio = pred_audio.chunk(2)
        return (
            null_video + self.video_scale * (cond_video - null_video),  # Eq. 11
            null_audio + self.audio_scale * (cond_audio - null_audio),  # Eq. 12
        )
