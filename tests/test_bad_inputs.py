"""Bad input across the CLI: each row a command a user might run, answered with a non-zero exit and one line on stderr
naming the problem, never a traceback; and the fixed behaviours behind them (unreadable clips left out by name,
temporary files of killed writes never read and removed, resume checking every promised file)."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from bridgedit import generation
from bridgedit.atomic import remove_stale_temporaries
from bridgedit.cli.main import main
from bridgedit.evaluation.evaluate import evaluate, find_clips
from bridgedit.media import write_sounding_video

PROMPTS = ["--video-prompt", "A red ball bounces.", "--audio-prompt", "A dull thud."]


@pytest.fixture
def files(tmp_path):
    """Bad files: non-UTF-8 prompts, captions and config; a model whose bridge weights are damaged."""
    (tmp_path / "prompts.jsonl").write_bytes(b'{"id": "a", "prompt": "caf\xe9"}\n')
    (tmp_path / "captions.jsonl").write_bytes(b'{"id": "a", "video": "x", "audio": "\xff"}\n')
    (tmp_path / "config.yaml").write_bytes(b"model:\n  base: x\n# \xfe\n")
    (tmp_path / "unknown.yaml").write_text("model:\n  base: tiny\n  colour: red\ndata:\n  dataset: x\n")
    (tmp_path / "empty.jsonl").write_text("")
    damaged = tmp_path / "damaged-model"
    shutil.copytree(generation.default_model(), damaged)
    (damaged / "bridge" / "model.safetensors").write_bytes(b"junk")
    hub_towers = "model:\n  video: Wan-AI/Wan2.1-T2V-1.3B-Diffusers\n  audio: stabilityai/stable-audio-open-1.0\n"
    (tmp_path / "missing-data.yaml").write_text(hub_towers + "data:\n  dataset: no/such/dataset\n")
    (tmp_path / "offline.yaml").write_text(hub_towers + "data:\n  dataset: made\n  synthetic: {clips: 2}\n")
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "manifest.jsonl").write_text(json.dumps({"id": "a", "path": "clips/a.mp4"}) + "\n")
    clips = tmp_path / "clips"
    clips.mkdir()
    frames = np.zeros((9, 32, 32, 3), dtype=np.uint8)
    write_sounding_video(clips / "a.mp4", frames, 15.0, np.zeros((1, 4000), dtype=np.float32), 8000)
    return tmp_path


ROWS = [
    ("generate", [*PROMPTS, "--frames", "81"], "frames 81 is beyond this model's limit of 64"),
    ("generate", [*PROMPTS, "--video-guidance", "nan"], "video guidance must be a finite number; got nan"),
    ("generate", [*PROMPTS, "--audio-guidance", "inf"], "audio guidance must be a finite number; got inf"),
    ("generate", [*PROMPTS, "--fps", "inf"], "fps must be a positive, finite number; got inf"),
    ("generate", [*PROMPTS, "--height", "7"], "height must be a positive multiple of 16; got 7"),
    ("generate", [*PROMPTS, "--model", "{tmp}/damaged-model"], "model.safetensors is damaged"),
    ("generate", [*PROMPTS, "--out", "/proc/clip.mp4"], "output folder /proc is not writable"),
    (
        "generate",
        ["--prompts", "{tmp}/prompts.jsonl", "--out-dir", "{tmp}/out"],
        "is not UTF-8 text: byte 0xe9 on line 1",
    ),
    ("evaluate", ["--generated", "{tmp}/clips", "--captions", "{tmp}/captions.jsonl"], "captions.jsonl is not UTF-8"),
    ("describe", ["--preset", "tiny2"], "unknown preset 'tiny2'; known presets: "),
    ("generate", [*PROMPTS, "--audio-seconds", "1e9"], "audio seconds 1e+09 is beyond this model's limit of 512"),
    (
        "generate",
        [*PROMPTS, "--seed", str(2**64)],
        "seed must be an integer from 0 to 2**64 - 1; got 18446744073709551616",
    ),
    ("generate", [*PROMPTS, "--steps", "-3"], "argument --steps: must be a positive integer, got -3"),
    ("generate", [*PROMPTS, "--step-cache", "-1"], "the step cache's threshold must be a finite number, 0 or more"),
    ("generate", [*PROMPTS, "--width", "1000000"], "width 1000000 is beyond this model's limit of 1024"),
    (
        "generate",
        ["--audio-prompt", "A thud.", "--video", "{tmp}/prompts.jsonl"],
        "prompts.jsonl is not readable media",
    ),
    ("generate", ["--prompts", "{tmp}/empty.jsonl", "--out-dir", "{tmp}/out"], "empty.jsonl holds no prompts"),
    ("generate", ["--prompts", "{tmp}/clips", "--out-dir", "{tmp}/out"], "prompt file {tmp}/clips does not exist"),
    ("train", ["--config", "{tmp}/clips"], "config {tmp}/clips does not exist"),
    ("train", ["--config", "{tmp}/unknown.yaml"], "unknown key(s) in model: 'colour'; known: audio, base, bridge"),
    ("synthetic", ["make", "--out", "{tmp}/w", "--clips", "0"], "clips must be 1 or more; got 0"),
    (
        "synthetic",
        ["make", "--out", "{tmp}/w", "--seconds", "nan"],
        "seconds must be a positive, finite number; got nan",
    ),
    ("prepare", ["{tmp}/clips", "--out", "{tmp}/d", "--height", "63"], "height must be an even number of pixels"),
    ("evaluate", ["--generated", "{tmp}/empty.jsonl"], "empty.jsonl is not a folder"),
    ("train", ["--config", "{tmp}/config.yaml"], "config.yaml is not UTF-8 text: byte 0xfe on line 3"),
    ("train", ["--config", "{tmp}/missing-data.yaml"], "no/such/dataset is not a prepared dataset"),  # before towers
    (
        "train",
        ["--config", "{tmp}/offline.yaml"],
        "cannot load the video tower from 'Wan-AI/Wan2.1-T2V-1.3B-Diffusers'",
    ),
    (
        "caption",
        [
            "{tmp}/dataset",
            "--out",
            "{tmp}/c.jsonl",
            "--vlm-url",
            "http://127.0.0.1:9/v1",
            "--llm-url",
            "http://127.0.0.1:9/v1",
        ],
        "manifest.jsonl: record 1 lacks audio_path",
    ),
]


@pytest.mark.parametrize(("command", "arguments", "message"), ROWS, ids=[row[2][:40] for row in ROWS])
def test_a_bad_input_is_one_line_naming_the_problem(command, arguments, message, files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = [command, *(argument.replace("{tmp}", str(files)) for argument in arguments)]
    message = message.replace("{tmp}", str(files))
    if command == "generate" and "--out-dir" not in argv:
        argv += ["--steps", "1"] + ([] if "--out" in argv else ["--out", str(files / "clip.mp4")])
    try:
        code = main(argv)
    except SystemExit as end:  # argparse's own checks (a flag's type): usage, then the one error line
        code = end.code
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith(f"bridgedit {command}: error: ") and message in error[-1]
    assert not any("Traceback" in line for line in error)
    assert not (files / "clip.mp4").exists()


HEAVY_LIBRARIES = ("torch", "diffusers", "transformers", "accelerate", "gradio")

HELP_PROBE = """
import json, sys
from bridgedit.cli.main import SUBCOMMANDS, main

for command in [[]] + [[module.add_parser.__module__.rsplit(".", 1)[1].replace("_", "-")] for module in SUBCOMMANDS]:
    try:
        main([*command, "--help"])
    except SystemExit as end:
        assert end.code == 0, command
print(json.dumps([name for name in {heavy} if name in sys.modules]))
"""


def test_help_answers_without_importing_any_heavy_library():
    """`bridgedit --help` and every subcommand's help import no torch, diffusers, transformers, accelerate or gradio
    (they took 8 s before anything printed); the work's imports happen inside each subcommand's run."""
    probe = HELP_PROBE.format(heavy=HEAVY_LIBRARIES)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert "usage: bridgedit synthetic" in done.stdout and "usage: bridgedit convert-official" in done.stdout


def test_debug_prints_the_whole_traceback(files, capsys, monkeypatch):
    monkeypatch.setenv("BRIDGEDIT_DEBUG", "1")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        main(["generate", "--prompts", str(files / "prompts.jsonl"), "--out-dir", str(files / "out")])


def test_evaluate_leaves_out_an_unreadable_clip_by_name_and_never_reads_a_temporary_file(files, caplog):
    clips = files / "clips"
    shutil.copy(clips / "a.mp4", clips / "b.mp4")
    (clips / "junk.mp4").write_bytes(b"not a video")
    shutil.copy(clips / "a.mp4", clips / ".c.mp4.k3j_x9a2.mp4")  # what a killed atomic write leaves
    assert sorted(find_clips(clips)) == ["a", "b", "junk"]
    with caplog.at_level("WARNING"):
        result = evaluate(clips, metrics=["av_align"], progress=False)
    assert result.n == 2 and result.unpaired == {"unreadable": ["junk"]}
    assert "junk.mp4 cannot be decoded" in caplog.text
    with pytest.raises(ValueError, match="junk.mp4 cannot be decoded"):
        evaluate(clips, metrics=["av_align"], progress=False, strict=True)


@pytest.mark.slow  # seconds: the quick core stays under a minute
def test_a_batch_resumes_every_promised_file_and_removes_killed_writes_temporaries(tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "ball", "video_prompt": "A red ball.", "audio_prompt": "A thud."}) + "\n")
    out = tmp_path / "out"
    batch = ["generate", "--prompts", str(prompts), "--out-dir", str(out), "--steps", "2"]
    assert main(batch) == 0
    first = (out / "ball.mp4").read_bytes()
    out.joinpath(".ball.mp4.ab12cd_3.mp4").write_bytes(b"half a clip")  # a write killed mid-way
    out.joinpath(".notes").write_text("a user's hidden file")  # not ours: kept
    assert main([*batch, "--wav"]) == 0  # the .wav was promised now: the clip is made again, with it
    assert (out / "ball.wav").is_file() and (out / "ball.mp4").read_bytes() == first  # the same seed, the same clip
    assert sorted(p.name for p in out.iterdir()) == [".notes", "ball.mp4", "ball.wav"]
    assert remove_stale_temporaries(out) == []
    capsys.readouterr()


def test_config_values_are_read_as_their_declared_types(tmp_path):
    from bridgedit.config import ConfigError
    from bridgedit.training.config import TrainConfig

    def load(text):
        path = tmp_path / "config.yaml"
        path.write_text("model:\n  base: tiny\ndata:\n  dataset: data/mine\n" + text)
        return TrainConfig.from_yaml(path)

    assert load("optim:\n  lr: 5e-5\n  min_lr: 1e-7\n").optim.lr == 5e-5  # YAML 1.1 reads 5e-5 as a string
    for text, message in (
        ("train:\n  steps: 2.5\n", "train.steps must be an integer; got 2.5"),
        ("optim:\n  lr: fast\n", "optim.lr must be a number; got 'fast'"),
        ("optim:\n  lr: .nan\n", "optim.lr must be a finite number"),
        ("train:\n  mixed_precision: no\n", "train.mixed_precision must be a string; got False (quote it"),
        ("log:\n  tensorboard: 1\n", "log.tensorboard must be true or false; got 1"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load(text)
