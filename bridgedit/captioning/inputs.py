"""What the captioning models receive: evenly sampled frames as base64 JPEG data URLs, the clip's audio as
base64 WAV, or the video file itself, in the OpenAI chat-completions content format."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..media import read_frames


def sample_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """`count` frames spread evenly over the clip, first and last included (all when there are fewer)."""
    if count >= len(frames):
        return frames
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


def jpeg_data_url(frame: np.ndarray, quality: int = 90) -> str:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_parts(video: Path, count: int) -> list[dict]:
    return [
        {"type": "image_url", "image_url": {"url": jpeg_data_url(f)}} for f in sample_frames(read_frames(video), count)
    ]


def video_part(video: Path) -> dict:
    """The whole video file, for servers that take video input (e.g. vLLM's `video_url`)."""
    return {
        "type": "video_url",
        "video_url": {"url": "data:video/mp4;base64," + base64.b64encode(video.read_bytes()).decode()},
    }


def audio_part(audio: Path) -> dict:
    """The clip's audio as OpenAI's `input_audio` (base64 WAV)."""
    return {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(audio.read_bytes()).decode(), "format": "wav"},
    }


def user_message(text: str, media: list[dict] | None = None) -> list[dict]:
    content = [*(media or []), {"type": "text", "text": text}] if media else text
    return [{"role": "user", "content": content}]
