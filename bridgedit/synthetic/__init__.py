"""A procedural sounding world with exact event timing (the demo model's data and CPU science)."""

from .world import WorldSettings, make_dataset, render_clip

__all__ = ["WorldSettings", "make_dataset", "render_clip"]
