"""Decoding sources into standard clips: frame timing, crop/pad, resize, resampling, rejects."""

import numpy as np
import pytest

from bridgedit.media import ClipStandard, MediaError, read_standard_clip, write_sounding_video

SOURCE_FPS, SOURCE_RATE = 30, 48_000
BITS = 7


def make_source(path, seconds=3.0, *, size=(60, 100), audio=True, click_at=1.0):
    """Frame i shows i in binary as 7 horizontal bands (white = 1), robust to compression and cropping;
    one click at `click_at`."""
    n = round(seconds * SOURCE_FPS)
    frames = np.zeros((n, *size, 3), np.uint8)
    for i in range(n):
        for bit in range(BITS):
            if i >> bit & 1:
                frames[i, bit * size[0] // BITS : (bit + 1) * size[0] // BITS] = 255
    sound = np.zeros((2, round(seconds * SOURCE_RATE)), np.float32)
    start = round(click_at * SOURCE_RATE)
    sound[:, start : start + 50] = 0.8
    if not audio:
        import av

        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=SOURCE_FPS)
            stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path
    return write_sounding_video(path, frames, SOURCE_FPS, sound, SOURCE_RATE)


STANDARD = ClipStandard(seconds=2.0, fps=15, height=32, width=48, sample_rate=16_000)


def _indices(clip):
    height = clip.frames.shape[1]
    centres = [round((bit + 0.5) * height / BITS) for bit in range(BITS)]
    return [sum(1 << bit for bit, row in enumerate(centres) if frame[row].mean() > 128) for frame in clip.frames]


def test_random_crop_picks_the_frame_shown_at_each_instant(tmp_path):
    source = make_source(tmp_path / "src.mp4")
    clip = read_standard_clip(source, STANDARD, rng=np.random.default_rng(0))
    assert clip.frames.shape == (30, 32, 48, 3) and clip.audio.shape == (32_000,)
    assert 0 <= clip.start <= 1.0 and clip.padded_seconds == 0
    expected = [int(np.floor((clip.start + k / 15) * SOURCE_FPS + 1e-6)) for k in range(30)]
    assert _indices(clip) == expected
    click = clip.start + np.argmax(np.abs(clip.audio)) / STANDARD.sample_rate
    assert click == pytest.approx(1.0, abs=0.002)


def test_crop_is_seeded(tmp_path):
    source = make_source(tmp_path / "src.mp4")
    a = read_standard_clip(source, STANDARD, rng=np.random.default_rng(5))
    b = read_standard_clip(source, STANDARD, rng=np.random.default_rng(5))
    c = read_standard_clip(source, STANDARD, rng=np.random.default_rng(6))
    assert a.start == b.start != c.start


def test_short_sources_are_padded(tmp_path):
    source = make_source(tmp_path / "short.mp4", seconds=1.5, click_at=0.5)
    clip = read_standard_clip(source, STANDARD, rng=np.random.default_rng(0))
    assert clip.start == 0 and clip.padded_seconds == pytest.approx(0.5, abs=0.01)
    indices = _indices(clip)
    assert indices[:22] == [int(np.floor(k / 15 * SOURCE_FPS + 1e-6)) for k in range(22)]
    assert indices[23:] == [indices[22]] * 7  # the last frame is held
    assert np.abs(clip.audio[round(1.55 * 16_000) :]).max() == 0  # silence after the source


def test_segments_and_aspect_ratio(tmp_path):
    source = make_source(tmp_path / "src.mp4", size=(40, 120))  # 3:1, wider than the 3:2 target
    clip = read_standard_clip(source, STANDARD, segment=(0.5, 2.5), rng=np.random.default_rng(0))
    assert clip.start == pytest.approx(0.5) and clip.frames.shape[1:3] == (32, 48)


def test_rejects_with_reasons(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x01 definitely not a video" * 100)
    with pytest.raises(MediaError, match="cannot decode"):
        read_standard_clip(tmp_path / "broken.mp4", STANDARD, rng=np.random.default_rng(0))
    with pytest.raises(MediaError, match="no audio stream"):
        read_standard_clip(make_source(tmp_path / "mute.mp4", audio=False), STANDARD, rng=np.random.default_rng(0))
    with pytest.raises(MediaError, match="too short"):
        read_standard_clip(
            make_source(tmp_path / "tiny.mp4", seconds=0.5, click_at=0.1), STANDARD, rng=np.random.default_rng(0)
        )
