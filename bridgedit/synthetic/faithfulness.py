"""Exact text-faithfulness checks for the synthetic world: is the named colour and shape on screen, and does
the audio sound like the named material?

Video: the object is the set of pixels above the floor that differ from the frame's dominant colour; its mean
colour names the nearest of the world's colours, and how much of its bounding box it fills names the shape
(a disc fills pi/4 of its box, a square all of it, a lamp's diamond half). Audio: the strongest frequency between 100 Hz and the
Nyquist limit during the loud part of the clip names the material with the nearest fundamental.
"""

from __future__ import annotations

import numpy as np

from .detect import object_mask
from .world import COLOURS, MATERIALS

#: how much of its bounding box each shape fills: a disc pi/4, a square all of it, the lamp's diamond half
SHAPE_FILLS = {"ball": np.pi / 4, "cube": 1.0, "lamp": 0.5}


def _object_masks(frames: np.ndarray):
    """(sky, mask) of each frame where the object covers at least a few pixels."""
    for frame in frames:
        sky, mask = object_mask(frame)
        if mask.sum() >= 4:
            yield sky, mask


def detected_colour(frames: np.ndarray) -> str | None:
    pixels = [sky[mask] for sky, mask in _object_masks(frames)]
    if not pixels:
        return None
    mean = np.concatenate(pixels).mean(axis=0)
    return min(COLOURS, key=lambda name: np.sum((np.array(COLOURS[name]) - mean) ** 2))


def detected_shape(frames: np.ndarray) -> str | None:
    fills = []
    for _, mask in _object_masks(frames):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
        fills.append(mask.sum() / box)
    if not fills:
        return None
    fill = np.median(fills)
    return min(SHAPE_FILLS, key=lambda name: abs(SHAPE_FILLS[name] - fill))


def detected_material(audio: np.ndarray, sample_rate: int) -> str | None:
    mono = np.asarray(audio, dtype=np.float64).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    loud = np.abs(mono) > 0.2 * np.abs(mono).max() if np.abs(mono).max() > 0 else np.zeros_like(mono, dtype=bool)
    if loud.sum() < 8:
        return None
    start = np.flatnonzero(loud)[0]
    segment = mono[start : start + round(0.1 * sample_rate)]
    spectrum = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), n=4 * len(segment)))
    frequencies = np.fft.rfftfreq(4 * len(segment), 1 / sample_rate)
    band = frequencies >= 100
    peak = frequencies[band][np.argmax(spectrum[band])]
    return min(MATERIALS, key=lambda name: abs(np.log(MATERIALS[name][0] / peak)))


def faithfulness(frames: np.ndarray, audio: np.ndarray, sample_rate: int, scene: dict) -> dict[str, bool]:
    """Per attribute named in the captions: is it what the clip shows / sounds like?"""
    return {
        "colour": detected_colour(frames) == scene["colour"],
        "shape": detected_shape(frames) == scene["shape"],
        "material": detected_material(audio, sample_rate) == scene["material"],
    }
