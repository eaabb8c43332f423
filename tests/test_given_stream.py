"""Sound for a given video, video for a given sound: the hold modes, bringing a user's file or array to the model's
own size and rate, the pipeline, the CLI and batch mode."""

import json
import math

import av
import numpy as np
import pytest
import torch
from conftest import open_gates
from test_pipeline import AUDIO_PROMPT, SIZE, TEXT, TINY_BRIDGE, VIDEO_PROMPT, _noise, _pipes

from bridgedit import BridgeDiTPipeline, tiny
from bridgedit.cli.main import main
from bridgedit.config import ConfigError
from bridgedit.diffusion import hold_fixed
from bridgedit.diffusion.objectives import audio_alpha_sigma
from bridgedit.media import (
    ClipStandard,
    MediaError,
    read_frames,
    read_given_audio,
    read_given_video,
    standard_audio,
    standard_frames,
    write_sounding_video,
    write_wav,
)

# ----------------------------------------------------------------------------------------------------
# Hold modes
# ----------------------------------------------------------------------------------------------------


def _recording_denoiser(calls):
    def fn(x_video, x_audio, t_video, t_audio):
        calls.append((x_video.clone(), x_audio.clone(), t_video.clone(), t_audio.clone()))
        return torch.ones_like(x_video), torch.ones_like(x_audio)

    return fn


def test_clean_hold_shows_the_given_stream_at_noise_level_zero():
    given, x_audio = torch.randn(1, 16, 3, 4, 4), torch.randn(1, 4, 10)
    calls = []
    held = hold_fixed(_recording_denoiser(calls), video=given, mode="clean")
    v_video, v_audio = held(torch.randn_like(given), x_audio, torch.tensor([700.0]), torch.tensor([0.7]))
    x_video, _, t_video, t_audio = calls[0]
    assert torch.equal(x_video, given) and t_video.item() == 0.0 and t_audio.item() == pytest.approx(0.7)
    assert not v_video.any() and v_audio.eq(1).all()  # the held stream's prediction is discarded


@pytest.mark.parametrize("stream", ["video", "audio"])
def test_renoised_hold_noises_the_given_stream_to_each_steps_level_from_one_draw(stream):
    """Replacement sampling: at t_V, (1 - t_V / 1000) x0 + t_V / 1000 eps (Eq. 6); at t_A, cos x0 + sin eps (Eq. 5);
    the same eps at every step, at the step's own timestep."""
    given = torch.randn(1, 16, 3, 4, 4) if stream == "video" else torch.randn(1, 4, 10)
    noise = torch.randn_like(given)
    calls = []
    held = hold_fixed(_recording_denoiser(calls), mode="renoised", noise=noise, **{stream: given})
    other = torch.randn(1, 4, 10) if stream == "video" else torch.randn(1, 16, 3, 4, 4)
    for s in (0.9, 0.5, 0.1):
        args = (torch.randn_like(given), other) if stream == "video" else (other, torch.randn_like(given))
        held(*args, torch.tensor([1000 * s]), torch.tensor([s]))
    for (x_video, x_audio, t_video, t_audio), s in zip(calls, (0.9, 0.5, 0.1)):
        if stream == "video":
            assert t_video.item() == pytest.approx(1000 * s)
            torch.testing.assert_close(x_video, (1 - s) * given + s * noise)
        else:
            assert t_audio.item() == pytest.approx(s)
            alpha, sigma = audio_alpha_sigma(torch.tensor(s))
            torch.testing.assert_close(x_audio, alpha * given + sigma * noise)


def test_hold_modes_are_checked():
    with pytest.raises(ValueError, match="hold mode 'noisy' is unknown"):
        hold_fixed(lambda *a: a, video=torch.zeros(1), mode="noisy")
    with pytest.raises(ValueError, match="one noise draw"):
        hold_fixed(lambda *a: a, video=torch.zeros(1, 2), mode="renoised")


# ----------------------------------------------------------------------------------------------------
# A user's file or array, brought to the model's own
# ----------------------------------------------------------------------------------------------------


def _clip_file(path, *, frames=20, fps=24.0, size=(48, 80), rate=8000, audio=True, video=True):
    """A sounding .mp4 of another rate and size than the tiny model's: a frame index written in its pixels."""
    pictures = np.stack([np.full((*size, 3), 10 * i % 250, dtype=np.uint8) for i in range(frames)])
    sound = np.sin(2 * np.pi * 440 * np.arange(round(frames / fps * rate)) / rate).astype(np.float32)[None]
    if video and audio:
        write_sounding_video(path, pictures, fps, sound, rate)
    elif audio:
        write_wav(path, sound, rate)
    else:
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=int(fps))
            stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
            for picture in pictures:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            container.mux(stream.encode(None))
    return path


def test_a_file_of_any_rate_and_size_is_read_as_the_model_sees_it(tmp_path):
    standard = ClipStandard(seconds=9 / 15, fps=15.0, height=32, width=32, sample_rate=4000, min_seconds=0.0)
    path = _clip_file(tmp_path / "in.mp4")  # 24 fps, 80 x 48, 8 kHz, 0.83 s
    frames = read_given_video(path, standard)
    assert frames.shape == (9, 32, 32, 3)  # 9 frames at 15 fps, covered and centre-cropped
    audio = read_given_audio(path, standard)
    assert audio.shape == (round(9 / 15 * 4000),) and audio.dtype == np.float32  # mono at the model's rate
    short = _clip_file(tmp_path / "short.mp4", frames=4)  # 0.17 s: the last frame held, then silence
    assert read_given_video(short, standard).shape == (9, 32, 32, 3)
    assert not read_given_audio(short, standard)[-100:].any()


def test_arrays_are_brought_to_the_model_size_and_length():
    standard = ClipStandard(seconds=9 / 15, fps=15.0, height=32, width=32, sample_rate=4000, min_seconds=0.0)
    frames = standard_frames(np.zeros((3, 40, 64, 3), dtype=np.uint8), standard)
    assert frames.shape == (9, 32, 32, 3)
    assert standard_audio(np.ones((2, 10_000), dtype=np.float32), standard).shape == (2400,)
    with pytest.raises(MediaError, match="uint8 array"):
        standard_frames(np.zeros((3, 40, 64)), standard)


def test_files_without_the_needed_stream_or_unreadable_are_named(tmp_path):
    standard = ClipStandard(seconds=0.6, fps=15.0, height=32, width=32, sample_rate=4000, min_seconds=0.0)
    silent = _clip_file(tmp_path / "silent.mp4", audio=False)
    with pytest.raises(MediaError, match="silent.mp4 has no audio stream"):
        read_given_audio(silent, standard)
    sound = _clip_file(tmp_path / "sound.wav", video=False)
    with pytest.raises(MediaError, match="sound.wav has no video stream"):
        read_given_video(sound, standard)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="junk.mp4 is not readable media"):
        read_given_video(junk, standard)
    with pytest.raises(MediaError, match="does not exist"):
        read_given_video(tmp_path / "absent.mp4", standard)


# ----------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hold", ["clean", "renoised"])
@pytest.mark.parametrize("given", ["video", "audio"])
def test_the_held_stream_is_returned_bit_for_bit_and_the_bridges_read_it(given, hold):
    kwargs = dict(**SIZE, num_inference_steps=3, output_type="latent", **TEXT)
    bridged = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(bridged.model)
    clean_video, clean_audio = _noise(audio_frames=40)
    latents = clean_video if given == "video" else clean_audio
    out = bridged(
        VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), hold=hold, **{given: latents}, **kwargs
    )
    assert torch.equal(getattr(out, given), latents)
    generated = "audio" if given == "video" else "video"
    other = bridged(
        VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), hold=hold, **{given: -latents}, **kwargs
    )
    assert not torch.allclose(getattr(out, generated), getattr(other, generated))  # the bridges read the held stream


def test_the_two_hold_modes_differ_and_the_default_is_the_models(tmp_path):
    kwargs = dict(**SIZE, num_inference_steps=3, output_type="latent", **TEXT)
    bridged = BridgeDiTPipeline.from_pipes(*_pipes(), TINY_BRIDGE)
    open_gates(bridged.model)
    given, _ = _noise()

    def sample(**extra):
        return bridged(
            VIDEO_PROMPT, AUDIO_PROMPT, generator=torch.Generator().manual_seed(5), video=given, **kwargs, **extra
        ).audio

    clean, renoised = sample(hold="clean"), sample(hold="renoised")
    assert not torch.allclose(clean, renoised)
    assert torch.equal(sample(), clean)  # no default recorded: clean
    bridged.generation_defaults["hold"] = "renoised"  # what training with coupled timesteps records
    assert torch.equal(sample(), renoised)
    with pytest.raises(ConfigError, match="not both"):
        bridged(VIDEO_PROMPT, AUDIO_PROMPT, video=given, audio=torch.zeros(1, 4, 40), **kwargs)


@pytest.mark.slow
def test_a_file_is_encoded_as_the_cache_encodes_it(tmp_path):
    from bridgedit.data.cache import encode_video

    pipe = tiny.bridgedit_pipeline()
    path = _clip_file(tmp_path / "in.mp4")
    out = pipe(
        VIDEO_PROMPT,
        AUDIO_PROMPT,
        video=str(path),
        height=64,
        width=64,
        num_frames=17,
        num_inference_steps=2,
        output_type="latent",
        progress=False,
    )
    standard = ClipStandard(
        seconds=17 / 15, fps=15.0, height=64, width=64, sample_rate=pipe.sample_rate, min_seconds=0.0
    )
    assert torch.equal(out.video, encode_video(pipe, read_given_video(path, standard))[None])


# ----------------------------------------------------------------------------------------------------
# The CLI and batch mode
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("given") / "model"
    tiny.bridgedit_pipeline().save_pretrained(path)
    return path


@pytest.mark.slow
def test_sound_for_a_video_from_the_cli(model_dir, tmp_path, capsys):
    source = _clip_file(tmp_path / "in.mp4", audio=False)  # a silent clip
    out = tmp_path / "out.mp4"
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--video",
                str(source),
                "--audio-prompt",
                "a rubber thud",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert record["given"] == {"video": str(source)}
    with av.open(str(out)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
    assert read_frames(out).shape == (17, 64, 64, 3)  # the model's own size and length


@pytest.mark.slow
def test_video_for_a_sound_from_the_cli_and_its_errors(model_dir, tmp_path, capsys):
    sound = _clip_file(tmp_path / "in.wav", video=False)
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--audio",
                str(sound),
                "--video-prompt",
                "a red ball",
                "--out",
                str(tmp_path / "out.mp4"),
                "--hold",
                "renoised",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--audio",
                str(tmp_path / "out.mp4.png"),
                "--video-prompt",
                "x",
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    silent = _clip_file(tmp_path / "silent.mp4", audio=False)
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--audio",
                str(silent),
                "--video-prompt",
                "x",
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "silent.mp4 has no audio stream" in err and len(err.strip().splitlines()) == 1
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--video",
                str(silent),
                "--video-prompt",
                "x",
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    assert 'a held "video" needs "audio_prompt"' in capsys.readouterr().err


@pytest.mark.slow
def test_batch_lines_may_carry_a_video_or_an_audio(model_dir, tmp_path, capsys):
    source = _clip_file(tmp_path / "in.mp4")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps(row)
            for row in [
                {"id": "sound", "video": str(source), "audio_prompt": "a rubber thud"},
                {"id": "picture", "audio": str(source), "video_prompt": "a red ball"},
                {"id": "both", "video_prompt": "a red ball", "audio_prompt": "a thud"},
            ]
        )
        + "\n"
    )
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--prompts",
                str(prompts),
                "--out-dir",
                str(tmp_path / "out"),
                "--json",
            ]
        )
        == 0
    )
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r.get("given") for r in records] == [{"video": str(source)}, {"audio": str(source)}, None]
    assert all((tmp_path / "out" / f"{r['id']}.mp4").is_file() for r in records)
    assert math.isclose(records[0]["seconds"], 17 / 15, rel_tol=0.01)


@pytest.mark.slow
def test_keep_original_muxes_the_given_stream_untouched(model_dir, tmp_path, capsys):
    """--keep-original: the file's own video stream, copied packet for packet (its size and rate, no re-encode), next
    to the audio generated for the model's view of it."""
    source = _clip_file(tmp_path / "in.mp4", audio=False)  # 80 x 48 at 24 fps: not the model's 64 x 64 at 15
    out = tmp_path / "kept.mp4"
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--video",
                str(source),
                "--audio-prompt",
                "a thud",
                "--out",
                str(out),
                "--keep-original",
            ]
        )
        == 0
    )
    with av.open(str(out)) as kept, av.open(str(source)) as original:
        assert {s.type for s in kept.streams} == {"video", "audio"}
        kept_packets = [bytes(p) for p in kept.demux(kept.streams.video[0]) if p.size]
        original_packets = [bytes(p) for p in original.demux(original.streams.video[0]) if p.size]
    assert kept_packets == original_packets  # 20 frames at 24 fps = 0.83 s: all within the 1.13 s clip
    assert read_frames(out).shape == (20, 48, 80, 3)


# ----------------------------------------------------------------------------------------------------
# Every clip says how it was made
# ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_clip_carries_how_it_was_made_and_is_made_again_from_it(model_dir, tmp_path, capsys):
    import hashlib

    from bridgedit.generation import read_clip_record
    from bridgedit.media import read_audio_track

    source = _clip_file(tmp_path / "in.mp4", audio=False)
    first = tmp_path / "first.mp4"
    assert (
        main(
            [
                "generate",
                "--model",
                str(model_dir),
                "--video",
                str(source),
                "--audio-prompt",
                "a rubber thud",
                "--out",
                str(first),
                "--seed",
                "3",
                "--steps",
                "3",
                "--hold",
                "renoised",
            ]
        )
        == 0
    )
    record = read_clip_record(first)
    weights = (model_dir / "bridge" / "model.safetensors").read_bytes()
    assert record["model"] == str(model_dir.resolve())
    assert record["model_weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert (record["seed"], record["audio_prompt"], record["video"]) == (3, "a rubber thud", str(source))
    assert record["settings"]["num_inference_steps"] == 3 and record["settings"]["hold"] == "renoised"
    assert record["bridgedit_version"] and record["dtype"] == "float32"

    assert main(["generate", "--from", str(first)]) == 0  # written beside it as first-again.mp4
    again = tmp_path / "first-again.mp4"
    assert np.array_equal(read_frames(again), read_frames(first))
    assert np.array_equal(read_audio_track(again)[0], read_audio_track(first)[0])
    assert main(["generate", "--from", str(first), "--seed", "4", "--out", str(tmp_path / "other.mp4")]) == 0
    assert not np.array_equal(read_audio_track(tmp_path / "other.mp4")[0], read_audio_track(first)[0])
    capsys.readouterr()
    assert main(["generate", "--from", str(source)]) == 2  # a file bridgedit did not write
    err = capsys.readouterr().err
    assert "does not say how it was made" in err and len(err.strip().splitlines()) == 1


def test_a_clip_shorter_than_one_frame_is_refused(tmp_path):
    standard = ClipStandard(seconds=0.6, fps=15.0, height=32, width=32, sample_rate=4000, min_seconds=0.0)
    blink = _clip_file(tmp_path / "blink.mp4", frames=1, fps=24.0, audio=False)  # 1/24 s: under one 1/15 s frame
    with pytest.raises(MediaError, match="blink.mp4 is shorter than one frame"):
        read_given_video(blink, standard)
