"""Event detectors for the synthetic world, and its event-level sync score.

Video: the object is the pixels above the floor line that differ from the frame's dominant background colour.
An impact is a frame where the object is nearest the floor and was moving down before (a strict local maximum
of its lowest row, reaching the bottom band of the arc); a flash is a frame where the object's visible area at
least doubles to over half its largest (a lamp lighting up). Audio: sudden rises of the short-time
energy (librosa's onset detector, AV-Align's, also fires where the room noise begins at the clip's start). Sync score: the intersection over union of the two event sets, an audio event matching a video
event strictly within one frame, one-to-one (AV-Align's current matching rule).
"""

from __future__ import annotations

import numpy as np

from ..evaluation.av_align import intersection_over_union

FLOOR_FRACTION = 0.85  # the world draws its floor at 85 % of the height


def object_mask(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the frame above the floor as int16, the pixels there that differ from its dominant background colour)."""
    sky = frame[: int(FLOOR_FRACTION * frame.shape[0])].astype(np.int16)
    background = np.median(sky.reshape(-1, 3), axis=0)
    return sky, np.abs(sky - background).sum(axis=-1) > 60


def object_bottom_rows(frames: np.ndarray) -> np.ndarray:
    """(F,) the lowest image row covered by the object in each frame (-1 where none is found)."""
    bottoms = np.full(len(frames), -1)
    for index, frame in enumerate(frames):
        _, mask = object_mask(frame)
        rows = np.flatnonzero(mask.any(axis=1))
        if len(rows):
            bottoms[index] = rows.max()
    return bottoms


def video_events(frames: np.ndarray, fps: float) -> list[float]:
    """Event times (s), sorted: impacts (touchdowns) and flashes (a lamp lighting up)."""
    return sorted(impact_times(frames, fps) + flash_times(frames, fps))


def flash_times(frames: np.ndarray, fps: float) -> list[float]:
    """Frames where the object's area at least doubles and reaches half its largest: something lit up."""
    areas = np.array([object_mask(frame)[1].sum() for frame in frames], dtype=float)
    if len(areas) == 0 or areas.max() < 4:
        return []
    before = np.concatenate([[0.0], areas[:-1]])
    onsets = (areas >= 2 * before + 1) & (areas >= 0.5 * areas.max())
    onsets[0] = False  # lit from the first frame: no visible onset
    return [i / fps for i in np.flatnonzero(onsets)]


def impact_times(frames: np.ndarray, fps: float) -> list[float]:
    """Frames where the object touches down (the lowest point of each arc)."""
    bottoms = object_bottom_rows(frames).astype(float)
    if (bottoms < 0).all():
        return []
    floor = FLOOR_FRACTION * frames.shape[1]
    low = floor - 0.25 * floor  # touching down: within the lowest quarter above the floor (the nearest frame
    # to a touchdown can be half a frame away from it, up to a fifth of the frame's height for a short arc)
    events = []
    for i in range(len(bottoms)):
        before = bottoms[i - 1] if i > 0 else -np.inf
        after = bottoms[i + 1] if i + 1 < len(bottoms) else -np.inf
        if bottoms[i] >= low and bottoms[i] > before and bottoms[i] >= after:
            events.append(i / fps)
    return events


def audio_events(audio: np.ndarray, sample_rate: int, *, rise_db: float = 6.0, refractory: float = 0.1) -> list[float]:
    """Impact times (s): where the short-time energy (5 ms RMS every 1 ms) jumps by at least `rise_db` within
    10 ms while loud enough to be more than noise (over 5 % of the clip's loudest moment and 3x its quietest
    level (5th percentile), which a steady ambience sets), at most one event
    per `refractory` seconds. A new hit on a still-ringing tail is found; a decaying ring is not."""
    mono = np.asarray(audio, dtype=np.float64).reshape(-1, np.shape(audio)[-1]).mean(axis=0)
    window, hop = max(1, round(0.005 * sample_rate)), max(1, round(0.001 * sample_rate))
    if len(mono) < window:
        return []
    frames = np.lib.stride_tricks.sliding_window_view(mono, window)[::hop]
    rms = np.sqrt((frames**2).mean(axis=1))  # (K,), one value per millisecond
    if rms.max() <= 0:
        return []
    level = 20 * np.log10(rms + 1e-9)
    lookback = 10
    floor = np.array([level[max(0, k - lookback) : k + 1].min() for k in range(len(level))])
    loud = rms >= max(0.05 * rms.max(), 3 * np.percentile(rms, 5))  # over the clip's quietest level (its ambience)
    candidates = np.flatnonzero((level - floor >= rise_db) & loud)
    events, last = [], -np.inf
    for k in candidates:
        time = (k * hop) / sample_rate
        if time - last >= refractory:
            events.append(time)
            last = time
    return events


def sync_score(frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int) -> float:
    """IoU of video impacts and audio onsets, matched within one frame, one-to-one."""
    return intersection_over_union(audio_events(audio, sample_rate), video_events(frames, fps), fps)
