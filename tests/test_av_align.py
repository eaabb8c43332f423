"""AV-Align on videos made here: a textured square that jumps only at known frames, with a click at each jump."""

import numpy as np
import pytest

from bridgedit.evaluation.av_align import av_align, detect_audio_peaks, detect_video_peaks, intersection_over_union

FPS, RATE, FRAMES = 15, 22_050, 60
JUMPS = (10, 25, 40, 52)


def jumping_square(jumps=JUMPS):
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
    background = np.full((96, 128, 3), 40, np.uint8)
    frames, x = [], 10
    for index in range(FRAMES):
        if index in jumps:
            x = 80 if x == 10 else 10
        frame = background.copy()
        frame[36:60, x : x + 24] = texture
        frames.append(frame)
    return np.stack(frames)


def clicks(times, seconds=FRAMES / FPS):
    audio = np.zeros(round(seconds * RATE), np.float32)
    for t in times:
        start = round(t * RATE)
        audio[start : start + 200] = np.hanning(400)[200:] * np.sign(np.sin(np.arange(200)))
    return audio


@pytest.mark.slow  # seconds: the quick core stays under a minute
def test_detectors_find_the_events():
    _, video_peaks = detect_video_peaks(jumping_square(), FPS)
    assert video_peaks == pytest.approx([j / FPS for j in JUMPS])
    audio_peaks = detect_audio_peaks(clicks([j / FPS for j in JUMPS]), RATE)
    assert len(audio_peaks) == len(JUMPS)
    assert np.max(np.abs(np.array(audio_peaks) - np.array(JUMPS) / FPS)) < 1 / FPS


def test_aligned_scores_one_and_shifted_scores_zero():
    frames = jumping_square()
    assert av_align(frames, FPS, clicks([j / FPS for j in JUMPS]), RATE) == 1.0
    assert av_align(frames, FPS, clicks([(j + 3) / FPS for j in JUMPS]), RATE) == 0.0
    stereo = np.stack([clicks([j / FPS for j in JUMPS])] * 2)
    assert av_align(frames, FPS, stereo, RATE) == 1.0


def test_matching_rules_of_both_variants():
    fps = 10.0
    # two onsets near one video peak: one-to-one matches once, the original variant twice
    assert intersection_over_union([1.0, 1.02], [1.01], fps) == pytest.approx(1 / (2 + 1 - 1))
    assert intersection_over_union([1.0, 1.02], [1.01], fps, variant="original") == pytest.approx(2 / (2 + 1 - 2))
    assert intersection_over_union([1.0], [1.1], fps) == 0.0  # exactly one frame apart: not within (strict)
    assert intersection_over_union([], [], fps) == 0.0  # defined: no evidence of alignment
    assert intersection_over_union([1.0], [], fps) == 0.0


def test_threshold_ignores_tiny_motion():
    frames = np.full((20, 64, 64, 3), 100, np.uint8)
    frames[10, 30:34, 30:34] = 104  # a barely visible flicker
    _, current = detect_video_peaks(frames, FPS)
    _, original = detect_video_peaks(frames, FPS, variant="original")
    assert current == [] and len(original) >= 1
