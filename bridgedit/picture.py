"""A sounding clip as one picture, to see the sync one hears: its frames along a time axis over the spectrogram of its
sound, every frame's time ticked, and AV-Align's motion peaks and sound onsets marked where they fall.

Drawn with matplotlib (`pip install -e '.[app]'`, or `.[bench]`). The web app draws one under each result;
`bridgedit synthetic picture` draws the synthetic world's clips with their true events (synthetic/picture.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import ConfigError

#: how the marks are drawn: motion peaks (AV-Align's optical-flow peaks), sound onsets (its librosa onsets)
MOTION_COLOUR, ONSET_COLOUR, FRAME_TICK_COLOUR = "red", "orange", "white"
#: at most this many frames in the strip (evenly spaced, each over its own time)
MAX_STRIP_FRAMES = 24


def pyplot():
    """matplotlib's pyplot on the Agg backend; a one-line ConfigError where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("drawing needs matplotlib: pip install -e '.[app]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_spectrogram(axis, audio: np.ndarray, rate: int) -> None:
    """A mono sound's log-power spectrogram (20 ms windows) in kHz, up to where 99.9 % of its energy lies (a 4 kHz
    model's sound in a 44.1 kHz file fills the bottom tenth of the full range)."""
    from scipy.signal import spectrogram as stft_power

    window = min(max(64, int(rate * 0.02)), len(audio))
    freqs, times, power = stft_power(audio, fs=rate, nperseg=window, noverlap=window * 3 // 4)
    axis.pcolormesh(times, freqs / 1000, 10 * np.log10(power + 1e-10), shading="auto", cmap="magma")
    cumulative = np.cumsum(power.sum(axis=1))
    top = freqs[min(np.searchsorted(cumulative, 0.999 * cumulative[-1]) + 1, len(freqs) - 1)]
    axis.set_ylim(0, max(top, 500.0) / 1000)
    axis.set_ylabel("kHz", fontsize=6)


def draw_filmstrip(axis, frames: np.ndarray, fps: float, max_frames: int = MAX_STRIP_FRAMES) -> None:
    """Frames (F, H, W, 3) on a time axis in seconds: every `stride`-th frame drawn over [its time, its time +
    stride / fps), so each sits above the sound it is shown with."""
    stride = -(-len(frames) // max_frames)  # ceil
    height = frames.shape[1]
    for index in range(0, len(frames), stride):
        start = index / fps
        end = min(index + stride, len(frames)) / fps
        axis.imshow(frames[index], extent=(start, end, height, 0), aspect="auto")
    axis.set_xlim(0, len(frames) / fps)
    axis.set_ylim(height, 0)
    axis.set_axis_off()


def sync_picture(video: str | Path, out: str | Path, *, title: str | None = None) -> dict:
    """Draw a sounding video file as its filmstrip over its spectrogram, with every frame's time ticked at the top of
    the spectrogram and AV-Align's motion peaks (red, dotted across both) and sound onsets (orange) marked. Returns
    {"av_align", "motion_peaks", "sound_onsets", "frame_times"} (seconds)."""
    from .evaluation.av_align import detect_audio_peaks, detect_video_peaks, intersection_over_union
    from .media import read_audio_track, read_video

    plt = pyplot()
    frames, fps = read_video(video)
    sound, rate = read_audio_track(video)
    mono = sound.mean(axis=0)  # (channels, samples) -> (samples,)
    _, motion_peaks = detect_video_peaks(frames, fps)
    onsets = detect_audio_peaks(mono, rate)
    score = intersection_over_union(onsets, motion_peaks, fps)
    frame_times = [index / fps for index in range(len(frames))]

    figure, axes = plt.subplots(2, 1, figsize=(8, 3.6), gridspec_kw={"height_ratios": [1.0, 1.6]}, sharex=True)
    draw_filmstrip(axes[0], frames, fps)
    draw_spectrogram(axes[1], mono, rate)
    top = axes[1].get_ylim()[1]
    axes[1].vlines(frame_times, 0.92 * top, top, colors=FRAME_TICK_COLOUR, linewidth=0.6)
    for peak in motion_peaks:
        for axis in axes:
            axis.axvline(peak, color=MOTION_COLOUR, linestyle=":", linewidth=1.2)
    for onset in onsets:
        axes[1].axvline(onset, color=ONSET_COLOUR, linewidth=1.0)
    axes[1].set_xlim(0, max(len(frames) / fps, len(mono) / rate))
    axes[1].set_xlabel(
        f"seconds · AV-Align {score:.2f} · ticks: the {len(frames)} frames ({fps:g} fps) · red dotted: motion peaks · "
        "orange: sound onsets",
        fontsize=7,
    )
    axes[1].tick_params(labelsize=7)
    if title:
        axes[0].set_title(title, fontsize=8, loc="left")
    figure.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return {"av_align": score, "motion_peaks": motion_peaks, "sound_onsets": onsets, "frame_times": frame_times}
