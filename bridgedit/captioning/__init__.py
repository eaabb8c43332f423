"""HVGC captioning (§3.2, App. C.6): modality-pure video and audio captions from OpenAI-compatible LLM servers."""

from .prompts import PROMPT_VERSION
from .run import MODES, CaptionReport, CaptionSettings, caption_dataset, merge_captions

__all__ = ["MODES", "PROMPT_VERSION", "CaptionReport", "CaptionSettings", "caption_dataset", "merge_captions"]
