"""Media I/O: sounding .mp4 files (H.264 + AAC, PyAV) and .wav (soundfile) written atomically, and sources
decoded and standardised into training clips (PyAV: decoding, scaling, resampling).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile

from .atomic import atomic_path
from .config import ConfigError, check_non_negative_finite, check_positive_finite

#: AAC adds a 1024-sample priming delay; at 32 kHz and above that is shorter than one frame at 30 fps.
MIN_AAC_RATE = 32_000
FALLBACK_AAC_RATE = 44_100
#: libx264 settings besides the quality: macroblock-tree rate control off. With it on, the same frames encoded again
#: can come out different (PyAV 18's x264 here: 13 different files from 6 synthetic-world clips encoded 12 times each,
#: with one encoder thread as with many; none with it off), so a dataset, a recipe or a generation made twice from a
#: seed would differ. It costs some bits at the same quality (about 15-20 % on those clips).
X264_PARAMS = "mbtree=0"


def aac_sample_rate(sample_rate: int) -> int:
    """The rate the .mp4's AAC track uses: the model's own when AAC supports it and it is >= 32 kHz."""
    supported = av.codec.Codec("aac", "w").audio_rates or ()
    if sample_rate in supported and sample_rate >= MIN_AAC_RATE:
        return sample_rate
    return FALLBACK_AAC_RATE


def _check_arrays(frames: np.ndarray, audio: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"video frames must be uint8 of shape (frames, height, width, 3); got {frames.dtype} {frames.shape}"
        )
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 (yuv420p) needs even height and width; got {frames.shape[1]}x{frames.shape[2]}")
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise ValueError(f"audio must have shape (channels, samples) with 1 or 2 channels; got {audio.shape}")


def _video_stream(container, frames: np.ndarray, fps: float, crf: int):
    """An H.264 (yuv420p) stream for `frames` in `container` (every stream is added before anything is muxed)."""
    stream = container.add_stream(
        "libx264", rate=Fraction(fps).limit_denominator(1001), options={"crf": str(crf), "x264-params": X264_PARAMS}
    )
    stream.width, stream.height = frames.shape[2], frames.shape[1]
    stream.pix_fmt = "yuv420p"
    return stream


def _mux_video(container, stream, frames: np.ndarray) -> None:
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _audio_stream(container, sample_rate: int):
    """An AAC stereo stream in `container` for audio at `sample_rate`."""
    return container.add_stream("aac", rate=aac_sample_rate(sample_rate), layout="stereo")


def _mux_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    """Encode `audio` (channels, samples; mono duplicated) into the AAC `stream`, resampled to its rate."""
    audio = np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    out_rate = stream.codec_context.sample_rate
    audio_frame = av.AudioFrame.from_ndarray(audio, format="fltp", layout="stereo")
    audio_frame.sample_rate = sample_rate
    audio_frames = [audio_frame]
    if out_rate != sample_rate:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=out_rate)
        audio_frames = resampler.resample(audio_frame) + resampler.resample(None)
    # explicit timestamps from 0: the encoder then shifts its 1024-sample priming before 0 and the
    # muxer writes an edit list, so players start the audio exactly with the first video frame
    # (without them the audio lags the video by the priming, 23 ms at 44.1 kHz)
    position = 0
    for resampled in audio_frames:
        resampled.pts, resampled.time_base = position, Fraction(1, out_rate)
        position += resampled.samples
        for packet in stream.encode(resampled):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_sounding_video(
    path: str | os.PathLike,
    frames: np.ndarray,  # (F, H, W, 3) uint8
    fps: float,
    audio: np.ndarray,  # (channels, samples) float in [-1, 1]
    sample_rate: int,
    *,
    crf: int = 18,
    comment: str | None = None,
) -> Path:
    """Mux frames and audio into an .mp4 (H.264 yuv420p + AAC stereo), atomically. Mono audio is duplicated.
    `comment`: the container's comment tag (how the clip was made, `generation.clip_record`).

    The same frames always make the same file: libx264's macroblock-tree rate control is off (`X264_PARAMS`)."""
    _check_arrays(frames, audio)
    path = Path(path)
    with atomic_path(path) as temporary:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            if comment is not None:
                container.metadata["comment"] = comment
            video_stream, audio_stream = (
                _video_stream(container, frames, fps, crf),
                _audio_stream(container, sample_rate),
            )
            _mux_video(container, video_stream, frames)
            _mux_audio(container, audio_stream, audio, sample_rate)
    return path


def write_with_original_stream(
    path: str | os.PathLike,
    original: str | os.PathLike,
    kept: str,
    seconds: float,
    *,
    frames: np.ndarray | None = None,
    fps: float | None = None,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    crf: int = 18,
    comment: str | None = None,
) -> Path:
    """An .mp4 of `original`'s `kept` ("video" or "audio") stream copied untouched (no re-encode; its packets up to
    `seconds`) and the generated other stream (`frames` at `fps`, or `audio` at `sample_rate`) encoded as
    `write_sounding_video` encodes it; atomically."""
    path = Path(path)
    with atomic_path(path) as temporary, av.open(str(original)) as source:
        streams = source.streams.video if kept == "video" else source.streams.audio
        if not streams:
            raise MediaError(f"{original} has no {kept} stream")
        with av.open(str(temporary), mode="w", format="mp4") as container:
            if comment is not None:
                container.metadata["comment"] = comment
            copied = container.add_stream_from_template(streams[0])
            generated = (
                _audio_stream(container, sample_rate) if kept == "video" else _video_stream(container, frames, fps, crf)
            )
            for packet in source.demux(streams[0]):
                if packet.dts is None:  # the demuxer's flushing packet
                    continue
                if packet.pts is not None and float(packet.pts * packet.time_base) >= seconds:
                    break
                packet.stream = copied
                container.mux(packet)
            if kept == "video":
                _mux_audio(container, generated, audio, sample_rate)
            else:
                _mux_video(container, generated, frames)
    return path


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT") -> Path:
    """(channels, samples) float audio to a .wav (32-bit float by default, or e.g. "PCM_16"), atomically."""
    path = Path(path)
    with atomic_path(path) as temporary:
        soundfile.write(
            str(temporary), np.asarray(audio, dtype=np.float32).T, sample_rate, subtype=subtype, format="WAV"
        )
    return path


# ----------------------------------------------------------------------------------------------------
# Reading and standardising (§4.1: 5.4 s clips, 15 fps, 832x480, 44.1 kHz mono)
# ----------------------------------------------------------------------------------------------------


class MediaError(ValueError):
    """A source that cannot become a training clip; the message is the reason recorded in rejects."""


@dataclass(frozen=True)
class ClipStandard:
    seconds: float = 5.4
    fps: float = 15.0
    height: int = 480
    width: int = 832
    sample_rate: int = 44_100
    min_seconds: float = 1.0  # shorter sources are rejected; between this and `seconds` they are padded

    def __post_init__(self) -> None:
        check_positive_finite("seconds", self.seconds)
        check_positive_finite("fps", self.fps)
        for name in ("height", "width"):  # H.264 in 4:2:0 halves both sizes for colour
            value = getattr(self, name)
            if value < 2 or value % 2:
                raise ConfigError(f"{name} must be an even number of pixels (H.264 4:2:0); got {value}")
        if self.sample_rate < 1:
            raise ConfigError(f"sample rate must be a positive number of samples a second; got {self.sample_rate}")
        check_non_negative_finite("min seconds", self.min_seconds)

    @property
    def num_frames(self) -> int:
        return round(self.seconds * self.fps)

    @property
    def num_samples(self) -> int:
        return round(self.seconds * self.sample_rate)


@dataclass
class StandardClip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    audio: np.ndarray  # (samples,) float32 mono
    start: float  # offset of the clip in the source, seconds
    padded_seconds: float  # how much of the clip is padding (last frame held, silence)
    source_duration: float


def _duration(container) -> float | None:
    if container.duration is not None:
        return container.duration / av.time_base
    lengths = [float(s.duration * s.time_base) for s in container.streams if s.duration is not None]
    return max(lengths) if lengths else None


def _covering_size(width: int, height: int, standard: ClipStandard) -> tuple[int, int]:
    """Resize so the frame covers the target, keeping the aspect ratio (then centre-crop)."""
    scale = max(standard.width / width, standard.height / height)
    return max(standard.width, round(width * scale)), max(standard.height, round(height * scale))


def _standard_frame(frame, standard: ClipStandard) -> np.ndarray:
    width, height = _covering_size(frame.width, frame.height, standard)
    image = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()
    top, left = (height - standard.height) // 2, (width - standard.width) // 2
    return image[top : top + standard.height, left : left + standard.width]


def _read_frames(container, start: float, end: float, standard: ClipStandard) -> np.ndarray:
    """The frame shown at each instant start + k / fps (the latest source frame at or before it; the first
    frame for instants before any frame); past the segment's `end` the last frame is held (padding)."""
    stream = container.streams.video[0]
    container.seek(max(0, int(start / stream.time_base)), stream=stream, backward=True)
    targets = [start + k / standard.fps for k in range(standard.num_frames)]
    chosen: list = []  # decoded frames, one per target so far
    held = None  # the latest decoded frame at or before the next target
    waiting = 0  # targets before the first decoded frame
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        if frame.time > end + 1e-6:
            break
        while len(chosen) + waiting < len(targets) and frame.time > targets[len(chosen) + waiting] + 1e-6:
            if held is None:
                waiting += 1
            else:
                chosen.append(held)
        if len(chosen) + waiting == len(targets):
            break
        held = frame
        if waiting:
            chosen, waiting = [frame] * waiting + chosen, 0
    if held is None and not chosen:
        raise MediaError("no decodable video frames in the clip")
    chosen += [held or chosen[-1]] * (len(targets) - len(chosen) - waiting)
    images: dict[int, np.ndarray] = {}  # each distinct source frame is scaled and cropped once
    return np.stack([images.setdefault(id(f), _standard_frame(f, standard)) for f in chosen])


def _read_audio(container, start: float, end: float, standard: ClipStandard) -> np.ndarray:
    stream = container.streams.audio[0]
    container.seek(max(0, int(start / stream.time_base)), stream=stream, backward=True)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=standard.sample_rate)
    chunks, base = [], None
    for frame in container.decode(stream):
        if frame.time is not None and base is None:
            base = frame.time
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
        if frame.time is not None and frame.time > end:
            break
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    if not chunks or base is None:
        raise MediaError("no decodable audio in the clip")
    samples = np.concatenate(chunks).astype(np.float32)
    first = max(0, round((start - base) * standard.sample_rate))
    available = max(0, round((end - start) * standard.sample_rate))
    audio = samples[first : first + min(available, standard.num_samples)]
    return np.pad(audio, (0, standard.num_samples - len(audio)))  # silence after the source ends


def read_standard_clip(
    path: str | os.PathLike,
    standard: ClipStandard,
    *,
    segment: tuple[float | None, float | None] = (None, None),
    rng: np.random.Generator,
) -> StandardClip:
    """Decode a source into a standard clip: a random `standard.seconds` window of the segment (drawn with
    `rng`), or the whole segment padded (last frame held, silence) when it is shorter."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            if not container.streams.audio:
                raise MediaError("no audio stream")
            duration = _duration(container)
            if duration is None:
                raise MediaError("unknown duration")
            segment_start = max(0.0, segment[0] or 0.0)
            segment_end = min(duration, segment[1] if segment[1] is not None else duration)
            available = segment_end - segment_start
            if available < standard.min_seconds:
                raise MediaError(f"too short: {available:.2f} s < {standard.min_seconds:g} s")
            if available >= standard.seconds:
                start = segment_start + float(rng.uniform(0.0, available - standard.seconds))
                end, padded = start + standard.seconds, 0.0
            else:
                start, end, padded = segment_start, segment_end, standard.seconds - available
            frames = _read_frames(container, start, end, standard)
            audio = _read_audio(container, start, end, standard)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as error:
        raise MediaError(f"cannot decode: {type(error).__name__}: {error}") from None
    return StandardClip(frames=frames, audio=audio, start=start, padded_seconds=padded, source_duration=duration)


def check_given_stream(path: str | os.PathLike, kind: str) -> None:
    """Raise MediaError unless `path` is readable media with a `kind` ("video" or "audio") stream; cheap (no decoding),
    for checking a user's file before any model loads."""
    container, _ = _open_given(path, kind)
    container.close()


def _open_given(path: str | os.PathLike, kind: str):
    """Open a user's file that must have a `kind` ("video" or "audio") stream; (container, duration in s or None)."""
    if not os.path.isfile(path):
        raise MediaError(f"{path} does not exist")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise MediaError(f"{path} is not readable media ({type(error).__name__})") from None
    streams = container.streams.video if kind == "video" else container.streams.audio
    if not streams:
        container.close()
        raise MediaError(f"{path} has no {kind} stream")
    return container, _duration(container)


def _given_container(path: str | os.PathLike, kind: str, standard: ClipStandard):
    """Open a user's file for its `kind` ("video" or "audio") stream; (container, seconds to read)."""
    container, duration = _open_given(path, kind)
    shortest = 1 / standard.fps if kind == "video" else 1 / standard.sample_rate
    if duration is not None and duration < shortest:
        container.close()
        raise MediaError(f"{path} is shorter than one {'frame' if kind == 'video' else 'sample'} ({duration:.4f} s)")
    return container, min(duration if duration is not None else standard.seconds, standard.seconds)


def read_given_video(path: str | os.PathLike, standard: ClipStandard) -> np.ndarray:
    """A user's video as a model sees it, by the code `prepare` uses: `standard.num_frames` frames at its frame rate
    from the start (the last frame held past the file's end), covering its size and centre-cropped. (F, H, W, 3)."""
    container, seconds = _given_container(path, "video", standard)
    try:
        with container:
            return _read_frames(container, 0.0, seconds, standard)
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise MediaError(f"{path}: cannot decode its video ({type(error).__name__}: {error})") from None


def read_given_audio(path: str | os.PathLike, standard: ClipStandard) -> np.ndarray:
    """A user's sound as a model hears it, by the code `prepare` uses: mono, resampled to its rate, cut to
    `standard.seconds` (silence after the file's end). (samples,) float32."""
    container, seconds = _given_container(path, "audio", standard)
    try:
        with container:
            return _read_audio(container, 0.0, seconds, standard)
    except (av.error.FFmpegError, ValueError, IndexError) as error:
        raise MediaError(f"{path}: cannot decode its audio ({type(error).__name__}: {error})") from None


def standard_frames(frames: np.ndarray, standard: ClipStandard) -> np.ndarray:
    """Frames given as an array (F, H, W, 3) uint8, taken to be at the model's frame rate: each covering-resized and
    centre-cropped as `prepare` does, cut to `standard.num_frames` (the last held when there are fewer)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise MediaError(f"video frames must be a (F, H, W, 3) uint8 array; got {frames.dtype} {frames.shape}")
    chosen = list(frames[: standard.num_frames])
    chosen += [chosen[-1]] * (standard.num_frames - len(chosen))
    return np.stack([_standard_frame(av.VideoFrame.from_ndarray(frame, format="rgb24"), standard) for frame in chosen])


def standard_audio(audio: np.ndarray, standard: ClipStandard) -> np.ndarray:
    """A waveform given as an array, (samples,) or (channels, samples) at the model's rate: mono, cut or padded with
    silence to `standard.num_samples`."""
    if audio.ndim not in (1, 2) or not audio.shape[-1]:
        raise MediaError(f"audio must be a (samples,) or (channels, samples) array; got shape {audio.shape}")
    mono = (audio if audio.ndim == 1 else audio.mean(axis=0)).astype(np.float32)[: standard.num_samples]
    return np.pad(mono, (0, standard.num_samples - len(mono)))


def read_frames(path: str | os.PathLike) -> np.ndarray:
    """Every frame of a (standardised) video, (F, H, W, 3) uint8."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(channels, samples) float32 and the sample rate."""
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """Every frame (F, H, W, 3) uint8 and the frame rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
    return read_frames(path), fps


def read_audio_track(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A file's first audio stream as (channels, samples) float32 at its own rate; MediaError when there is none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise MediaError(f"{path} has no audio stream")
        chunks, rate = [], container.streams.audio[0].rate
        for frame in container.decode(audio=0):
            chunks.append(
                frame.to_ndarray().reshape(frame.layout.nb_channels, -1)
                if frame.format.is_planar
                else frame.to_ndarray().reshape(-1, frame.layout.nb_channels).T
            )
    if not chunks:
        raise MediaError(f"{path}: no decodable audio")
    return np.concatenate(chunks, axis=1).astype(np.float32), rate


def read_comment(path: str | os.PathLike) -> str | None:
    """A media file's comment tag (None where it has none); MediaError when it is not readable media."""
    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except (av.error.FFmpegError, OSError) as error:
        raise MediaError(f"{path} is not readable media ({type(error).__name__})") from None
