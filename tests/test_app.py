"""The web app's work without its page (bridgedit/app/studio.py) on the bundled demo model: requests checked into one
line a person can act on, the equivalent `bridgedit generate` command making the same clip, one job on the device at
a time, and cancellation between steps. The page itself is driven in a browser in test_app_browser.py."""

import shlex
import threading

import numpy as np
import pytest
import torch

from bridgedit import generation
from bridgedit.app.studio import JobCancelled, Limits, Request, Studio
from bridgedit.cli.main import build_parser, main
from bridgedit.config import ConfigError
from bridgedit.generation import PromptItem
from bridgedit.media import MediaError, read_audio_track, read_frames, write_wav
from bridgedit.pipeline import BridgeDiTPipeline

VIDEO_PROMPT = "A red rubber ball bounces up and down on a beige floor."
AUDIO_PROMPT = "A dull, soft thud, repeated each time a rubber object hits the floor."
QUICK = dict(num_inference_steps=4)  # the demo model's own sizes, few steps


@pytest.fixture(scope="module")
def demo_pipe():
    return BridgeDiTPipeline.from_pretrained(generation.default_model(), dtype=torch.float32)


@pytest.fixture
def studio(demo_pipe, tmp_path):
    return Studio(demo_pipe, tmp_path / "clips")


def test_the_model_defaults_fill_the_page_and_its_limits_bound_it(studio):
    assert (studio.defaults.height, studio.defaults.width, studio.defaults.num_frames) == (64, 64, 17)
    assert studio.defaults.audio_guidance == 2.0 and studio.defaults.num_inference_steps == 25  # the model's own
    # its rotary table has 64 places per axis; its codec keeps every frame (stride 1), its patches 2 x 8 pixels
    # and its duration conditioning clamps seconds at 512 (StableAudioProjectionModel's max_value)
    limits = {"num_frames": 64, "height": 64 * 2 * 8, "width": 64 * 2 * 8, "audio_seconds": 512}
    assert studio.pipe.model_limits() == limits
    assert studio.limits == Limits(max_height=128, max_width=128, max_frames=61)
    with pytest.raises(ConfigError, match="frame count 65 is above this model's limit here \\(61\\)"):
        studio.settings(Request("text", num_frames=65))
    with pytest.raises(ConfigError, match="4k\\+1"):  # Wan's own rule, from the CLI's check
        studio.settings(Request("text", num_frames=18))


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Request("text", video_prompt="  ", audio_prompt=AUDIO_PROMPT), "write both captions"),
        (Request("text", video_prompt=VIDEO_PROMPT), "write both captions"),
        (Request("sound_for_video", audio_prompt=AUDIO_PROMPT), "upload a video file first"),
        (Request("video_for_sound", video_prompt=VIDEO_PROMPT), "upload a sound file first"),
        (Request("paint"), "unknown mode 'paint'"),
    ],
)
def test_a_request_that_cannot_run_is_named_in_one_line(studio, request_, message):
    with pytest.raises(ConfigError, match=message):
        studio.prompt_item(request_)
    assert not list(studio.out_dir.iterdir())  # refused before any work


def test_a_file_without_the_needed_stream_or_caption_is_named(studio, tmp_path):
    sound = write_wav(tmp_path / "sound.wav", np.zeros((1, 4000), dtype=np.float32), 4000)
    with pytest.raises(MediaError, match="has no video stream"):
        studio.prompt_item(Request("sound_for_video", video=str(sound), audio_prompt=AUDIO_PROMPT))
    with pytest.raises(ConfigError, match="write the video caption"):
        studio.prompt_item(Request("video_for_sound", audio=str(sound)))
    item = studio.prompt_item(Request("video_for_sound", audio=str(sound), video_prompt=VIDEO_PROMPT))
    assert item.given() == {"audio": str(sound)} and item.video_prompt == VIDEO_PROMPT


def test_the_command_line_reads_back_as_the_same_generation():
    item = PromptItem(id="clip", video_prompt="it's 'quoted'", audio_prompt="", audio="/tmp/my sound.wav")
    explicit = {"num_inference_steps": 7, "audio_guidance": 2.5, "num_frames": 21, "hold": "renoised"}
    command = generation.generate_command(item, explicit, 3, out="a b.mp4", model="models/m", wav=True)
    words = shlex.split(command)
    assert words[:2] == ["bridgedit", "generate"]
    args = build_parser().parse_args(words[1:])
    assert (args.video_prompt, args.audio_prompt, args.audio, args.video) == ("it's 'quoted'", None, item.audio, None)
    assert (args.num_inference_steps, args.audio_guidance, args.num_frames, args.hold) == (7, 2.5, 21, "renoised")
    assert (args.seed, args.out, args.model, args.wav, args.video_guidance) == (3, "a b.mp4", "models/m", True, None)
    # every setting the CLI sets by flag reads back as it was written
    assert set(generation.SETTING_FLAGS) == set(generation.FLAG_SETTINGS)
    every = dict(
        height=96, width=80, num_frames=13, fps=12.5, audio_seconds=1.1, num_inference_steps=9, video_guidance=1 / 3,
        audio_guidance=0.0, schedule="native", sampler="heun", hold="clean", step_cache=0.05,
    )  # fmt: skip
    args = build_parser().parse_args(shlex.split(generation.generate_command(item, every, 0, out="o.mp4"))[1:])
    assert {key: getattr(args, key) for key in every} == every


@pytest.mark.slow
def test_the_command_shown_with_a_clip_makes_the_same_clip(studio, tmp_path, monkeypatch):
    result = studio.generate(
        Request("text", video_prompt=VIDEO_PROMPT, audio_prompt=AUDIO_PROMPT, seed=5, audio_guidance=3.0, **QUICK)
    )
    assert result.command.startswith("bridgedit generate ") and "--model" not in result.command  # the bundled one
    monkeypatch.chdir(tmp_path)
    assert main(shlex.split(result.command)[1:]) == 0
    again = tmp_path / shlex.split(result.command)[shlex.split(result.command).index("--out") + 1]
    np.testing.assert_array_equal(read_frames(again), read_frames(result.video))
    np.testing.assert_array_equal(read_audio_track(again)[0], read_audio_track(result.video)[0])
    assert result.wav.endswith(".wav") and result.picture.endswith(".png")
    assert result.parameters["audio_guidance"] == 3.0 and result.parameters["seed"] == 5
    assert 0.0 <= result.av_align <= 1.0


@pytest.mark.slow
def test_one_job_runs_on_the_device_at_a_time_and_a_cancelled_one_writes_nothing(studio):
    steps, errors = [], {}

    def job(session):
        def on_step(done, total):
            steps.append((session, done))
            if session == "b" and done == 2:
                assert studio.cancel("a") is False  # another session's cancel leaves this job alone
                assert studio.cancel("b") is True

        try:
            studio.generate(
                Request("text", video_prompt=VIDEO_PROMPT, audio_prompt=AUDIO_PROMPT, num_inference_steps=6),
                session,
                on_step,
            )
        except JobCancelled as error:
            errors[session] = str(error)

    threads = [threading.Thread(target=job, args=(session,)) for session in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sessions = [session for session, _ in steps]
    first = sessions[0]
    assert sessions == sorted(sessions, key=lambda s: s != first)  # one job's steps, then the other's: never mixed
    assert [done for session, done in steps if session == "a"] == list(range(1, 7))
    assert [done for session, done in steps if session == "b"] == [1, 2]  # stopped at its next step
    assert errors == {"b": "cancelled after 2 of 6 steps"}
    assert len(list(studio.out_dir.glob("*.mp4"))) == 1  # the cancelled job wrote nothing
    assert studio.cancel("b") is False  # nothing running


def test_one_prompt_is_made_into_two_captions_only_where_a_server_is_configured(demo_pipe, tmp_path):
    from bridgedit.captioning.rewrite import Captions

    class Rewriter:  # the captioning.rewrite.Rewriter interface (tested against a served LLM in test_rewrite.py)
        def rewrite(self, prompts):
            return [Captions(f"seen: {prompt}", f"heard: {prompt}") for prompt in prompts]

    with pytest.raises(ConfigError, match="no rewrite server is configured: start the app with --rewrite-url"):
        Studio(demo_pipe, tmp_path).rewrite("a lamp beeps")
    studio = Studio(demo_pipe, tmp_path, rewriter=Rewriter())
    assert studio.rewrite("  a lamp beeps ") == ("seen: a lamp beeps", "heard: a lamp beeps")
    with pytest.raises(ConfigError, match="write a prompt"):
        studio.rewrite(" ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["app", "--port", "70000"], "--port 70000 is not a port number"),
        (["app", "--model", "no/such/folder/here"], "no/such/folder/here"),
        (["app", "--device", "cuda:7"], "not available here"),
    ],
)
def test_the_app_command_refuses_what_cannot_serve_in_one_line_before_serving(argv, message, capsys, tmp_path):
    assert main([*argv, "--out-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("bridgedit app: error: ") and message in error and "\n" not in error
