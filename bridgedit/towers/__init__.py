"""Towers: pretrained denoisers driven block by block (see `base.Tower`)."""

from .base import Tower, TowerState
from .stable_audio import AudioConditions, StableAudioTower, stable_audio_rotary_embedding
from .wan import VideoConditions, WanVideoTower

__all__ = [
    "AudioConditions",
    "StableAudioTower",
    "Tower",
    "TowerState",
    "VideoConditions",
    "WanVideoTower",
    "stable_audio_rotary_embedding",
]
