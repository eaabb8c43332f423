"""A sounding clip as one picture: its frames side by side over its sound, the events marked on both.

Video events (impacts, flashes) and audio onsets come from the synthetic world's detectors (`detect.py`); a clip of
the world may also give its true event times. Drawn with matplotlib (`pip install -e '.[bench]'`), the spectrogram as the product's pictures draw it
(bridgedit/picture.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..picture import draw_spectrogram, pyplot
from .detect import audio_events, video_events

TRUE_COLOUR, VIDEO_COLOUR, AUDIO_COLOUR = "lime", "red", "orange"


def event_marks(frames: np.ndarray, audio: np.ndarray, fps: float, rate: int, true_events: list[float]) -> dict:
    """Where to mark events: on the filmstrip (F frames of width W side by side, x in pixels: the middle of an event's
    frame) and on the sound (x in seconds). "true": the world's event times; "detected": the detectors' events."""
    width = frames.shape[2]

    def on_filmstrip(times):
        return [(round(t * fps) + 0.5) * width for t in times]

    return {
        "filmstrip": {"true": on_filmstrip(true_events), "detected": on_filmstrip(video_events(frames, fps))},
        "waveform": {"true": list(true_events), "detected": audio_events(audio, rate)},
    }


def draw_clip(
    axes,
    frames: np.ndarray,
    audio: np.ndarray,
    fps: float,
    rate: int,
    true_events: list[float],
    title: str,
    *,
    spectrogram: bool = False,
) -> None:
    """Two axes: the frames side by side (F, H, W, 3) -> (H, F * W, 3), and the mono sound (waveform, or a
    log-magnitude spectrogram); true events dashed green, detected ones solid (video red, audio orange)."""
    height, width = frames.shape[1:3]
    filmstrip = np.concatenate(list(frames), axis=1)  # (H, F * W, 3)
    # aspect "auto": the strip spans the axis's width, as the sound below it does, so a frame sits over its time
    axes[0].imshow(filmstrip, extent=(0, len(frames) * width, height, 0), aspect="auto")
    axes[0].set_title(title, fontsize=8, loc="left")
    axes[0].set_axis_off()
    seconds = len(frames) / fps
    if spectrogram:
        draw_spectrogram(axes[1], audio, rate)
    else:
        axes[1].plot(np.arange(len(audio)) / rate, audio, linewidth=0.3, color="tab:blue")
        axes[1].set_yticks([])
    axes[1].set_xlim(0, seconds)
    axes[1].set_xlabel("seconds", fontsize=6)
    axes[1].tick_params(labelsize=6)
    marks = event_marks(frames, audio, fps, rate, true_events)
    for x in marks["filmstrip"]["true"]:
        axes[0].axvline(x, color=TRUE_COLOUR, linestyle="--", linewidth=0.8)
    for x in marks["waveform"]["true"]:
        axes[1].axvline(x, color=TRUE_COLOUR, linestyle="--", linewidth=0.8)
    for x in marks["filmstrip"]["detected"]:
        axes[0].axvline(x, color=VIDEO_COLOUR, linewidth=1.0)
    for x in marks["waveform"]["detected"]:
        axes[1].axvline(x, color=AUDIO_COLOUR, linewidth=1.0)
    # the video events on the sound's axis too, at their frame's time: where sound and picture should meet
    for x in video_events(frames, fps):
        axes[1].axvline(x, color=VIDEO_COLOUR, linewidth=1.0, linestyle=":")


def clip_picture(
    video: str | Path, out: str | Path, *, title: str | None = None, true_events: list[float] = ()
) -> dict:
    """Draw a sounding .mp4 as its filmstrip over its spectrogram with the detected events; returns the events."""
    from ..media import read_audio_track, read_video

    plt = pyplot()
    frames, fps = read_video(video)
    sound, rate = read_audio_track(video)
    mono = sound.mean(axis=0) if sound.ndim == 2 else sound
    strip_height = 12 * frames.shape[1] / (len(frames) * frames.shape[2])  # inches: the filmstrip spans 12 inches
    figure, axes = plt.subplots(
        2, 1, figsize=(12, strip_height + 2.4), gridspec_kw={"height_ratios": [strip_height, 2.0]}
    )
    draw_clip(axes, frames, mono, fps, rate, list(true_events), title or Path(video).name, spectrogram=True)
    figure.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return {"video_events": video_events(frames, fps), "audio_onsets": audio_events(mono, rate)}
