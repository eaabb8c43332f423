"""Text conditions as each tower wants them, built in one place for generation and for training.

Generation encodes prompts with the diffusers pipelines' own `encode_prompt`; the cache stores the same
states at their true length; these functions pad and assemble them identically, so a model trains on
exactly the conditions it will see when generating (`tests/test_cache.py` checks the equality).
"""

from __future__ import annotations

import torch

from .towers import AudioConditions, VideoConditions


def pad_states(states: list[torch.Tensor], length: int) -> torch.Tensor:
    """[(L_i, D)] -> (B, length, D), zero after each sequence's true length (as both pipelines pad)."""
    batch = torch.zeros(len(states), length, states[0].shape[-1], dtype=states[0].dtype, device=states[0].device)
    for i, state in enumerate(states):
        batch[i, : min(len(state), length)] = state[:length]
    return batch


def video_conditions(text_states: torch.Tensor) -> VideoConditions:
    """Wan: UMT5 states (B, max_sequence_length, D), zero-padded."""
    return VideoConditions(text_states)


def audio_conditions(audio_pipe, text_states: torch.Tensor, seconds: float | list[float]) -> AudioConditions:
    """Stable Audio: projected T5 states (B, L, C) followed by the seconds_start / seconds_total tokens in
    cross-attention; the two duration embeddings side by side as the global token (StableAudioPipeline)."""
    batch = text_states.shape[0]
    seconds_start, seconds_end = audio_pipe.encode_duration(0.0, seconds, text_states.device, False, batch)
    return AudioConditions(
        text_states=torch.cat(
            [text_states, seconds_start.to(text_states.dtype), seconds_end.to(text_states.dtype)], dim=1
        ),
        global_states=torch.cat([seconds_start, seconds_end], dim=2).to(text_states.dtype),
    )


def null_audio_conditions(conditions: AudioConditions) -> AudioConditions:
    """Stable Audio's null condition without a negative prompt: zero text-and-duration states, same global token."""
    return AudioConditions(torch.zeros_like(conditions.text_states), conditions.global_states, conditions.text_mask)
