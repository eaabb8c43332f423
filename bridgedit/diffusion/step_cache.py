"""First-block caching across sampling steps, for the joint model (opt-in: `pipe(..., step_cache=0.1)`).

Between neighbouring sampling steps most of a DiT's blocks change their input little. First-block caching (the idea
of diffusers' `FirstBlockCacheConfig`, after ParaAttention's "first block cache") runs the first block in every
forward and compares its residual (output minus input) with the one of the last fully computed forward: when the
relative change `mean|r - r_last| / mean|r_last|` is below the threshold, the rest of the network is not run and the
last computed tail residual (the hidden states after all blocks minus those after the first block) is added to this
forward's first-block output instead.

diffusers' hooks cannot do this here: they skip the blocks of one model from inside its own forward, while BridgeDiT
drives two towers block by block with bridges between them. The bridges join the towers, so the decision is joint:
the tail is skipped only when both towers' first blocks changed less than the threshold, and then both towers'
tails (bridges included) are reused. Each tower's first block runs before any bridge, so running both first blocks
ahead of the loop changes nothing (`tests/test_acceleration.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import check_non_negative_finite


def relative_change(current: torch.Tensor, previous: torch.Tensor) -> float:
    """mean |current - previous| / mean |previous| (diffusers' first-block cache measure)."""
    return float((current - previous).abs().mean() / previous.abs().mean().clamp_min(1e-12))


@dataclass
class StepCache:
    """The state of one sampling run's cache: make a new one per run. `threshold` 0 never reuses (every forward is
    computed, as without a cache)."""

    threshold: float
    computed: int = 0  # forwards run whole
    reused: int = 0  # forwards whose tail was reused
    _first_residuals: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _tail_residuals: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _pending: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_non_negative_finite("the step cache's threshold", self.threshold)

    @property
    def forwards(self) -> int:
        return self.computed + self.reused

    def reuse(
        self,
        video_before: torch.Tensor,
        video_after: torch.Tensor,
        audio_before: torch.Tensor,
        audio_after: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Given each tower's hidden states before and after its first block: the hidden states after all blocks
        (video, audio) from the cache, or None when the rest must be computed (then call `store` after it)."""
        residuals = (video_after - video_before, audio_after - audio_before)
        last = self._first_residuals
        if last is not None and all(r.shape == p.shape for r, p in zip(residuals, last)):
            if max(relative_change(r, p) for r, p in zip(residuals, last)) < self.threshold:
                self.reused += 1
                return video_after + self._tail_residuals[0], audio_after + self._tail_residuals[1]
        self._pending = residuals
        return None

    def store(
        self,
        video_after_first: torch.Tensor,
        audio_after_first: torch.Tensor,
        video_after_all: torch.Tensor,
        audio_after_all: torch.Tensor,
    ) -> None:
        """Remember a computed forward: its first-block residuals and its tail residuals."""
        self._first_residuals, self._pending = self._pending, None
        self._tail_residuals = (video_after_all - video_after_first, audio_after_all - audio_after_first)
        self.computed += 1
