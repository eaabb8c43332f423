"""`bridgedit generate` end to end on a saved tiny model: files, errors, resumable batches, two processes."""

import json
import os
import subprocess
from pathlib import Path

import av
import pytest
from conftest import two_cpu_processes

from bridgedit import tiny
from bridgedit.cli.main import main
from bridgedit.media import read_audio_track, read_video

DEFAULTS = dict(height=32, width=32, num_frames=9, num_inference_steps=2)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    pipe = tiny.bridgedit_pipeline()
    pipe.generation_defaults = DEFAULTS
    pipe.save_pretrained(path)
    return path


def _prompt_file(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_single_video_is_a_playable_sounding_mp4(model_dir, tmp_path, capsys):
    out = tmp_path / "ball.mp4"
    code = main(
        [
            "generate",
            "--video-prompt",
            "a red ball bounces",
            "--audio-prompt",
            "a rubber thud",
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--seed",
            "3",
            "--wav",
            "--json",
        ]
    )
    assert code == 0
    record = json.loads(capsys.readouterr().out.strip())
    assert record["video"] == str(out) and record["seed"] == 3 and record["frames"] == 9
    assert Path(record["wav"]).is_file()
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        assert sum(1 for _ in container.decode(video=0)) == 9


def test_text_encoders_can_be_offloaded_from_the_cli(model_dir, tmp_path, monkeypatch):
    from bridgedit.pipeline import BridgeDiTPipeline

    calls = []
    monkeypatch.setattr(BridgeDiTPipeline, "offload_text_encoders", lambda self: calls.append(1))
    for flag, expected in (([], []), (["--offload-text-encoders"], [1])):
        calls.clear()
        assert (
            main(
                [
                    "generate",
                    "--prompt",
                    "a bell rings",
                    "--model",
                    str(model_dir),
                    "--out",
                    str(tmp_path / "o.mp4"),
                    *flag,
                ]
            )
            == 0
        )
        assert calls == expected


def test_flags_override_the_model_defaults(model_dir, tmp_path, capsys):
    out = tmp_path / "wide.mp4"
    assert (
        main(
            [
                "generate",
                "--prompt",
                "a bell rings",
                "--model",
                str(model_dir),
                "--out",
                str(out),
                "--width",
                "48",
                "--frames",
                "5",
                "--steps",
                "1",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["frames"] == 5
    with av.open(str(out)) as container:
        assert container.streams.video[0].width == 48


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--prompt", "x", "--height", "40"], "height must be a positive multiple of 16; got 40"),
        (["--prompt", "x", "--frames", "10"], "4k\\+1"),
        (["--prompt", "x", "--device", "tpu9"], "device"),
        (["--prompt", "x", "--device", "cuda"], "not available here"),
        (["--prompt", "x", "--dtype", "half"], "unknown dtype 'half'"),
        (["--video-prompt", "x"], "either"),
        (["--prompt", "x", "--video-prompt", "y", "--audio-prompt", "z"], "either"),
        (["--prompt", "x", "--model", "/no/such/model"], "no model folder"),
    ],
)
def test_bad_input_is_one_line(model_dir, tmp_path, capsys, arguments, message):
    args = ["generate", "--out", str(tmp_path / "a.mp4")] + arguments
    if "--model" not in arguments:
        args += ["--model", str(model_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bridgedit generate: error:") and len(err.splitlines()) == 1
    assert __import__("re").search(message, err)


def test_unwritable_output_and_missing_model(model_dir, tmp_path, capsys, monkeypatch):
    assert main(["generate", "--prompt", "x", "--model", str(model_dir), "--out", "/no/such/dir/a.mp4"]) == 2
    assert "does not exist" in capsys.readouterr().err
    from bridgedit import generation

    monkeypatch.setattr(generation, "BUNDLED_MODEL", tmp_path / "no-bundled-model")  # an install without it
    assert main(["generate", "--prompt", "x", "--out", str(tmp_path / "a.mp4")]) == 2
    assert "no --model given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse rejects non-positive steps itself
        main(["generate", "--prompt", "x", "--steps", "0", "--out", str(tmp_path / "a.mp4")])
    assert exit_info.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


def test_empty_prompt_warns_but_generates(model_dir, tmp_path, caplog):
    assert (
        main(
            [
                "generate",
                "--video-prompt",
                "",
                "--audio-prompt",
                "a thud",
                "--model",
                str(model_dir),
                "--out",
                str(tmp_path / "empty.mp4"),
            ]
        )
        == 0
    )
    assert "empty video prompt" in caplog.text


@pytest.mark.slow
def test_batch_is_resumable(model_dir, tmp_path, capsys):
    prompts = _prompt_file(
        tmp_path / "prompts.jsonl",
        [
            {"id": "a", "video_prompt": "a red ball", "audio_prompt": "a thud"},
            {"id": "b", "prompt": "a bell rings", "seed": 9},
            {"id": "c", "video_prompt": "a blue cube", "audio_prompt": "a clang"},
        ],
    )
    out_dir = tmp_path / "out"
    args = ["generate", "--prompts", str(prompts), "--out-dir", str(out_dir), "--model", str(model_dir), "--json"]
    assert main(args) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in first] == ["a", "b", "c"] and [r["seed"] for r in first] == [0, 9, 2]
    (out_dir / "b.mp4").unlink()
    assert main(args) == 0
    second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in second] == ["b"]  # finished videos are skipped
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.mp4", "b.mp4", "c.mp4"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"video_prompt": "x", "audio_prompt": "y"}', '"id" must be'),
        ('{"id": "../up", "prompt": "x"}', '"id" must be'),
        ('{"id": "a", "video_prompt": "x"}', "either"),
        ('{"id": "a", "prompt": "x", "colour": "red"}', "unknown key"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_prompt_files_name_the_line(model_dir, tmp_path, capsys, line, message):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "ok", "prompt": "fine"}\n' + line + "\n")
    assert (
        main(["generate", "--prompts", str(prompts), "--out-dir", str(tmp_path / "o"), "--model", str(model_dir)]) == 2
    )
    err = capsys.readouterr().err
    assert f"{prompts}:2:" in err and message in err


@pytest.mark.slow
def test_batch_splits_across_two_cpu_processes(model_dir, tmp_path):
    rows = [{"id": f"clip{i}", "prompt": f"a ball number {i}"} for i in range(4)]
    prompts = _prompt_file(tmp_path / "prompts.jsonl", rows)
    out_dir = tmp_path / "out"
    command = [
        *two_cpu_processes(),
        "-m",
        "bridgedit.cli.main",
        "generate",
        "--prompts",
        str(prompts),
        "--out-dir",
        str(out_dir),
        "--model",
        str(model_dir),
        "--device",
        "cpu",
        "--json",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["id"] for r in records) == [f"clip{i}" for i in range(4)]  # each prompt exactly once
    assert {r["process_index"] for r in records} == {0, 1}
    assert {r["id"]: r["seed"] for r in records} == {f"clip{i}": i for i in range(4)}  # seeds independent of the split
    assert sorted(p.name for p in out_dir.iterdir()) == [f"clip{i}.mp4" for i in range(4)]


def test_the_bundled_demo_model_is_the_default(tmp_path, capsys):
    """The README's main job: a sounding video from the bundled model, with no --model."""
    from bridgedit import generation

    model = generation.default_model()
    assert model is not None, "bridgedit/assets/demo-model is missing (bridgedit synthetic recipe --install)"
    size = sum(f.stat().st_size for f in model.rglob("*") if f.is_file())
    assert size <= 25 * 2**20, f"the bundled model is {size / 2**20:.1f} MiB; the limit is 25 MiB"
    from bridgedit.synthetic.recipe import RecipeSettings  # what the recipe writes: the committed model keeps it

    stored = json.loads((model / "model_index.json").read_text())["generation_defaults"]
    assert stored == RecipeSettings.of_model(model).generation_defaults
    assert stored["audio_guidance"] == 2.0  # chosen and confirmed in docs/synthetic.md
    out = tmp_path / "demo.mp4"
    assert (
        main(
            [
                "generate",
                "--video-prompt",
                "A red rubber ball bounces up and down on a beige floor.",
                "--audio-prompt",
                "A dull, soft thud, repeated each time a rubber object hits the floor.",
                "--out",
                str(out),
                "--steps",
                "3",
                "--json",
            ]
        )
        == 0
    )
    record = json.loads(capsys.readouterr().out)
    frames, fps = read_video(out)
    audio, rate = read_audio_track(out)
    assert frames.shape == (17, 64, 64, 3) and fps == 15 and record["video"] == str(out)
    assert audio.shape[-1] >= 1.1 * rate


@pytest.mark.slow  # seconds: the quick core stays under a minute
def test_the_balanced_memory_level_writes_the_default_clip(tmp_path, capsys):
    """--memory balanced (text encoders off the device after encoding, Wan's VAE in tiles) on the bundled model: the
    same frames and sound as the default."""
    written = {}
    for level in ("max", "balanced"):
        out = tmp_path / f"{level}.mp4"
        prompts = ["--video-prompt", "A red ball bounces.", "--audio-prompt", "A dull thud."]
        assert main(["generate", *prompts, "--out", str(out), "--steps", "3", "--memory", level]) == 0
        written[level] = (read_video(out)[0], read_audio_track(out)[0])
    assert (written["max"][0] == written["balanced"][0]).all()
    assert (written["max"][1] == written["balanced"][1]).all()
    capsys.readouterr()
