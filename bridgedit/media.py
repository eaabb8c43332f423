"""Writing sounding videos: .mp4 with H.264 video and AAC audio (PyAV), .wav beside it (soundfile).

All writes are atomic: after a failure there is no partial file at the output path.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile

from .atomic import atomic_path

#: AAC adds a 1024-sample priming delay; at 32 kHz and above that is shorter than one frame at 30 fps.
MIN_AAC_RATE = 32_000
FALLBACK_AAC_RATE = 44_100


def aac_sample_rate(sample_rate: int) -> int:
    """The rate the .mp4's AAC track uses: the model's own when AAC supports it and it is >= 32 kHz."""
    supported = av.codec.Codec("aac", "w").audio_rates or ()
    if sample_rate in supported and sample_rate >= MIN_AAC_RATE:
        return sample_rate
    return FALLBACK_AAC_RATE


def _check_arrays(frames: np.ndarray, audio: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"video frames must be uint8 of shape (frames, height, width, 3); got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 (yuv420p) needs even height and width; got {frames.shape[1]}x{frames.shape[2]}")
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must have shape (channels, samples) with 1 or 2 channels; got {audio.shape}")


def write_sounding_video(
    path: str | os.PathLike,
    frames: np.ndarray,  # (F, H, W, 3) uint8
    fps: float,
    audio: np.ndarray,  # (channels, samples) float in [-1, 1]
    sample_rate: int,
    *,
    crf: int = 18,
) -> Path:
    """Mux frames and audio into an .mp4 (H.264 yuv420p + AAC stereo), atomically. Mono audio is duplicated."""
    _check_arrays(frames, audio)
    audio = np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    rate = Fraction(fps).limit_denominator(1001)
    out_rate = aac_sample_rate(sample_rate)
    path = Path(path)
    with atomic_path(path) as temporary:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            video_stream = container.add_stream("libx264", rate=rate, options={"crf": str(crf)})
            video_stream.width, video_stream.height = frames.shape[2], frames.shape[1]
            video_stream.pix_fmt = "yuv420p"
            audio_stream = container.add_stream("aac", rate=out_rate, layout="stereo")

            for frame in frames:
                for packet in video_stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in video_stream.encode():
                container.mux(packet)

            audio_frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout="stereo")
            audio_frame.sample_rate = sample_rate
            audio_frames = [audio_frame]
            if out_rate != sample_rate:
                resampler = av.AudioResampler(format="fltp", layout="stereo", rate=out_rate)
                audio_frames = resampler.resample(audio_frame) + resampler.resample(None)
            for resampled in audio_frames:
                for packet in audio_stream.encode(resampled):
                    container.mux(packet)
            for packet in audio_stream.encode(None):
                container.mux(packet)
    return path


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """(channels, samples) float audio to a 32-bit float .wav at the model's own rate, atomically."""
    path = Path(path)
    with atomic_path(path) as temporary:
        soundfile.write(str(temporary), np.asarray(audio, dtype=np.float32).T, sample_rate, subtype="FLOAT", format="WAV")
    return path
