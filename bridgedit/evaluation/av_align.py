"""AV-Align (Yariv et al., 2024): intersection over union of video motion peaks and audio onsets.

Follows the reference implementation (github.com/guyyariv/TempoTokens, av_align.py, current version):
- video: Farneback optical flow (0.5, 3, 15, 3, 5, 1.2, 0) between consecutive gray frames, mean magnitude per
  frame (the first pair's value counted for frame 0 too); peaks are strict local maxima of at least 0.1,
  at time index / fps;
- audio: librosa onsets of the mono signal at 22,050 Hz (librosa.load's rate) with default settings;
- matching: an audio onset matches a video peak when strictly within one frame (1 / fps); each video peak
  matches at most one onset ("current") or any number ("original", the first published version, which also
  had no 0.1 threshold: published numbers used both);
- IoU = matches / (onsets + peaks - matches). With no onset and no peak at all we return 0.0 (no evidence
  of alignment; the reference divides by zero there).
"""

from __future__ import annotations

import cv2
import numpy as np

LIBROSA_RATE = 22_050
PEAK_THRESHOLD = 0.1
VARIANTS = ("current", "original")


def optical_flow_magnitude(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean Farneback flow magnitude between two RGB frames."""
    flow = cv2.calcOpticalFlowFarneback(
        cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY),
        cv2.cvtColor(current, cv2.COLOR_RGB2GRAY),
        None,
        0.5,
        3,
        15,
        3,
        5,
        1.2,
        0,
    )
    return float(cv2.mean(cv2.magnitude(flow[..., 0], flow[..., 1]))[0])


def detect_video_peaks(frames: np.ndarray, fps: float, *, variant: str = "current") -> tuple[list[float], list[float]]:
    """(per-frame flow trajectory, peak times in seconds) for RGB frames (F, H, W, 3)."""
    if len(frames) < 2:
        return [], []
    flows = [optical_flow_magnitude(frames[i - 1], frames[i]) for i in range(1, len(frames))]
    trajectory = [flows[0], *flows]
    threshold = PEAK_THRESHOLD if variant == "current" else -np.inf
    peaks = [
        i / fps
        for i in range(1, len(trajectory) - 1)
        if trajectory[i - 1] < trajectory[i] > trajectory[i + 1] and trajectory[i] >= threshold
    ]
    return trajectory, peaks


def detect_audio_peaks(audio: np.ndarray, sample_rate: int) -> list[float]:
    """Onset times (s) of a mono or (channels, samples) signal, as librosa.load + onset_detect compute them."""
    import librosa

    mono = librosa.to_mono(np.asarray(audio, dtype=np.float32))
    if sample_rate != LIBROSA_RATE:
        mono = librosa.resample(mono, orig_sr=sample_rate, target_sr=LIBROSA_RATE)
    envelope = librosa.onset.onset_strength(y=mono, sr=LIBROSA_RATE)
    frames = librosa.onset.onset_detect(onset_envelope=envelope, sr=LIBROSA_RATE)
    return librosa.frames_to_time(frames, sr=LIBROSA_RATE).tolist()


def intersection_over_union(
    audio_peaks: list[float], video_peaks: list[float], fps: float, *, variant: str = "current"
) -> float:
    if not audio_peaks and not video_peaks:
        return 0.0
    matches, used = 0, [False] * len(video_peaks)
    for audio_peak in audio_peaks:
        for j, video_peak in enumerate(video_peaks):
            if (variant == "original" or not used[j]) and video_peak - 1 / fps < audio_peak < video_peak + 1 / fps:
                matches += 1
                used[j] = True
                break
    return matches / (len(audio_peaks) + len(video_peaks) - matches)


def av_align(frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int, *, variant: str = "current") -> float:
    if variant not in VARIANTS:
        raise ValueError(f"unknown AV-Align variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    _, video_peaks = detect_video_peaks(frames, fps, variant=variant)
    return intersection_over_union(detect_audio_peaks(audio, sample_rate), video_peaks, fps, variant=variant)
