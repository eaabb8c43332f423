"""Sounding .mp4 export, read back with PyAV."""

import av
import numpy as np
import pytest
import soundfile

import bridgedit.media as media
from bridgedit.media import write_sounding_video, write_wav


def _clip(frames=27, fps=15, rate=44_100, size=(48, 64)):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, size=(frames, *size, 3), dtype=np.uint8)
    t = np.arange(round(frames / fps * rate)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    return video, audio


def _probe(path):
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        info = {
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "video_seconds": float(video.duration * video.time_base),
            "audio_seconds": float(audio.duration * audio.time_base),
            "sample_rate": audio.rate,
            "channels": audio.channels,
            "size": (video.height, video.width),
        }
        info["frames"] = sum(1 for _ in container.decode(video=0))
    return info


@pytest.mark.parametrize("rate, expected_rate", [(44_100, 44_100), (4_000, 44_100)])
def test_mp4_has_h264_and_aac_in_sync(tmp_path, rate, expected_rate):
    video, audio = _clip(rate=rate)
    path = write_sounding_video(tmp_path / "clip.mp4", video, 15, audio, rate)
    info = _probe(path)
    assert (info["video_codec"], info["audio_codec"]) == ("h264", "aac")
    assert info["frames"] == 27 and info["size"] == (48, 64)
    assert info["sample_rate"] == expected_rate and info["channels"] == 2
    assert abs(info["video_seconds"] - info["audio_seconds"]) <= 1 / 15


def test_mono_is_duplicated_to_stereo(tmp_path):
    video, audio = _clip()
    info = _probe(write_sounding_video(tmp_path / "mono.mp4", video, 15, audio[:1], 44_100))
    assert info["channels"] == 2


def test_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    video, audio = _clip()
    calls = []

    def failing(frame, format):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("encoder died")
        return av.VideoFrame.from_ndarray(frame, format=format)

    monkeypatch.setattr(media.av.VideoFrame, "from_ndarray", staticmethod(failing))
    with pytest.raises(RuntimeError, match="encoder died"):
        write_sounding_video(tmp_path / "clip.mp4", video, 15, audio, 44_100)
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary file


def test_bad_arrays_and_paths_are_named(tmp_path):
    video, audio = _clip()
    with pytest.raises(ValueError, match="uint8"):
        write_sounding_video(tmp_path / "a.mp4", video.astype(np.float32), 15, audio, 44_100)
    with pytest.raises(ValueError, match="even height and width"):
        write_sounding_video(tmp_path / "a.mp4", video[:, :47], 15, audio, 44_100)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_sounding_video(tmp_path / "missing" / "a.mp4", video, 15, audio, 44_100)


def test_wav_keeps_the_model_rate(tmp_path):
    _, audio = _clip(rate=4_000)
    data, rate = soundfile.read(str(write_wav(tmp_path / "a.wav", audio, 4_000)))
    assert rate == 4_000 and data.shape == (audio.shape[1], 2)
    np.testing.assert_allclose(data.T, audio, atol=1e-7)


def _decode_events(path):
    """Time of the brightest frame and of the loudest audio sample, as a player would see them."""
    with av.open(str(path)) as container:
        frames = [(f.time, f.to_ndarray(format="gray").mean()) for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        peak_time, peak = 0.0, -1.0
        for f in container.decode(audio=0):
            samples = np.abs(f.to_ndarray()).max(axis=0)
            if samples.max() > peak:
                peak, peak_time = samples.max(), f.time + samples.argmax() / f.sample_rate
    return max(frames, key=lambda x: x[1])[0], peak_time


@pytest.mark.parametrize("rate", [44_100, 16_000])
def test_a_flash_and_its_click_stay_together(tmp_path, rate):
    """AAC's priming delay is compensated: audio starts with the first frame (no 23 ms lag)."""
    video = np.full((30, 32, 32, 3), 20, np.uint8)
    video[15] = 255  # a flash at 1.0 s
    audio = np.zeros((2, 2 * rate), np.float32)
    audio[:, rate : rate + 20] = 0.9  # a click at 1.0 s
    flash, click = _decode_events(write_sounding_video(tmp_path / "sync.mp4", video, 15, audio, rate))
    assert flash == pytest.approx(1.0, abs=1e-6)
    assert click == pytest.approx(1.0, abs=0.002)


def test_the_same_frames_always_make_the_same_file(tmp_path):
    """Encoding is repeatable (media.X264_PARAMS; with x264's defaults these three synthetic-world clips, encoded six
    times each, come out as more than three different files), so a dataset or a recipe made twice from a seed is the
    same."""
    from bridgedit.synthetic.world import WorldSettings, draw_scene, render_clip

    world = WorldSettings(height=64, width=64, seconds=17 / 15, fps=15.0, sample_rate=4000, max_events=3)
    encoded = set()
    for index in range(3):
        rng = np.random.default_rng([0, index])
        frames, audio = render_clip(draw_scene(rng, world), world, rng)
        for attempt in range(6):
            path = write_sounding_video(
                tmp_path / f"{index}-{attempt}.mp4", frames, world.fps, audio[None], world.sample_rate
            )
            encoded.add(path.read_bytes())
    assert len(encoded) == 3
