"""`bridgedit app`: a web app for generating sounding videos (Gradio; `pip install -e '.[app]'`).

studio.py does the work (checks, one job on the device at a time, cancellation, result files); ui.py draws the page.
"""

from .studio import MODES, JobCancelled, Limits, Request, Result, Studio

__all__ = ["MODES", "JobCancelled", "Limits", "Request", "Result", "Studio"]
