"""A procedural sounding world with exact event timing (the demo model's data and CPU science)."""

from .detect import audio_events, sync_score, video_events
from .world import WorldSettings, make_dataset, render_clip

__all__ = ["WorldSettings", "audio_events", "make_dataset", "render_clip", "sync_score", "video_events"]
