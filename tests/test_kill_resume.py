"""Kill -9 in the middle of a long job, then run it again: nothing lost, duplicated or corrupt, no temporary file
left where a later command reads, and the outputs those of an uninterrupted run.

Two ways to kill: when the job's output shows it has got somewhere (`killed_when`), or at the k-th call of a function
such as `os.replace` (`killed_at_call`): the moment an atomic write has its temporary file whole and not yet renamed,
or a checkpoint folder is whole and not yet named."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from bridgedit.atomic import TEMPORARY_NAME
from bridgedit.generation import default_model
from bridgedit.media import read_frames, read_wav

pytestmark = pytest.mark.slow  # processes started and killed

BRIDGEDIT = [sys.executable, "-m", "bridgedit.cli.main"]


def killed_when(argv: list[str], ready, timeout: float = 120.0) -> None:
    """Run `argv` and SIGKILL it as soon as `ready()` holds (it must not finish first)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert process.poll() is None, "the job finished before it could be killed"
            assert time.monotonic() < deadline, "the job never reached the point to kill it at"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


#: `python -c DIE_AT_CALL MODULE.FUNCTION K FOLDER ARGV...`: `bridgedit ARGV`, killed (SIGKILL) at the K-th call of
#: the function (os.replace, os.rename) whose destination, its second argument, lies in FOLDER
DIE_AT_CALL = """
import importlib, os, signal, sys
module_name, function_name = sys.argv[1].rsplit(".", 1)
module, k, folder, calls = importlib.import_module(module_name), int(sys.argv[2]), os.path.abspath(sys.argv[3]), []
real = getattr(module, function_name)
def dies_at_call_k(source, destination, *args, **kwargs):
    if os.path.abspath(destination).startswith(folder + os.sep):
        calls.append(destination)
        if len(calls) == k:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(source, destination, *args, **kwargs)
setattr(module, function_name, dies_at_call_k)
from bridgedit.cli.main import main
sys.exit(main(sys.argv[4:]))
"""


def killed_at_call(function: str, k: int, folder: Path, argv: list[str]) -> None:
    """Run `bridgedit ARGV` and SIGKILL it as it calls `function` (os.replace, os.rename) for the k-th time with a
    destination in `folder` (the job's output: other libraries' writes elsewhere do not count)."""
    probe = [sys.executable, "-c", DIE_AT_CALL, function, str(k), str(folder), *argv]
    done = subprocess.run(probe, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def bridgedit(argv: list[str]) -> None:
    done = subprocess.run([*BRIDGEDIT, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if TEMPORARY_NAME.match(p.name))


def same_clip(a: Path, b: Path) -> None:
    """Two writes of the same clip (separate processes: equal to encoder rounding)."""
    if a.suffix == ".wav":
        (x, rate_x), (y, rate_y) = read_wav(a), read_wav(b)
        assert rate_x == rate_y and x.shape == y.shape and np.abs(x - y).max() < 1e-3, a.name
    else:
        x, y = read_frames(a).astype(int), read_frames(b).astype(int)
        assert x.shape == y.shape and np.abs(x - y).max() <= 2, a.name


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Six synthetic sounding clips with a manifest: sources for `prepare`, a dataset for `cache`."""
    out = tmp_path_factory.mktemp("kill") / "world"
    bridgedit(["synthetic", "make", "--out", str(out), "--clips", "6"])
    return out


def test_prepare_killed_between_a_clips_two_files_resumes_to_the_uninterrupted_dataset(world, tmp_path):
    def prepare(out: Path) -> list[str]:
        return ["prepare", str(world / "clips"), "--out", str(out), "--seconds", "1", "--height", "64", "--width", "64"]

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    bridgedit(prepare(straight))
    # renames: settings.json, then each clip's .wav and .mp4: the 5th is the second clip's .mp4, written whole
    killed_at_call("os.replace", 5, interrupted, prepare(interrupted))
    assert len((interrupted / "manifest.jsonl").read_text().splitlines()) == 1
    assert len(temporaries(interrupted)) == 1  # the second clip's .mp4, never renamed
    bridgedit(prepare(interrupted))
    assert temporaries(interrupted) == []
    lines = (interrupted / "manifest.jsonl").read_text().splitlines()
    assert sorted(lines) == sorted((straight / "manifest.jsonl").read_text().splitlines())  # each clip once
    clips = sorted(p.name for p in (straight / "clips").iterdir())
    assert len(clips) == 12 and sorted(p.name for p in (interrupted / "clips").iterdir()) == clips
    for name in clips:
        same_clip(interrupted / "clips" / name, straight / "clips" / name)


def test_cache_killed_mid_write_resumes_to_the_uninterrupted_cache(world, tmp_path):
    def cache(out: Path) -> list[str]:
        return ["cache", str(world), "--model", str(default_model()), "--out", str(out), "--max-sequence-length", "16"]

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    bridgedit(cache(straight))
    killed_at_call(
        "os.replace", 4, interrupted, cache(interrupted)
    )  # info, null caption, clip 1, then clip 2 written whole
    assert [p.name for p in (interrupted / "clips").iterdir() if p.name.startswith("clip")] == ["clip00000.safetensors"]
    assert len(temporaries(interrupted)) == 1  # the second clip's, never renamed
    bridgedit(cache(interrupted))
    assert temporaries(interrupted) == []
    files = sorted(p.relative_to(straight) for p in straight.rglob("*") if p.is_file())
    assert (
        len(files) == 8 and sorted(p.relative_to(interrupted) for p in interrupted.rglob("*") if p.is_file()) == files
    )
    for file in files:
        if file.suffix == ".safetensors":
            a, b = load_file(interrupted / file), load_file(straight / file)
            assert a.keys() == b.keys()
            for key in a:
                assert np.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), (file, key, np.abs(a[key] - b[key]).max())
        else:
            assert (interrupted / file).read_text() == (straight / file).read_text(), file


TRAIN_CONFIG = """
model: {{base: tiny}}
data: {{dataset: {dataset}, synthetic: {{clips: 4, seed: 0}}, max_sequence_length: 16}}
optim: {{lr: 1.0e-3, warmup_steps: 2, min_lr: 1.0e-4}}
train: {{steps: 6, batch_size: 2, mixed_precision: "no", gradient_checkpointing: false, seed: 0}}
checkpoint: {{dir: {run}, every: 3}}
log: {{every: 100}}
"""


def test_training_killed_while_saving_resumes_to_the_uninterrupted_weights(tmp_path):
    def train(run: str) -> list[str]:
        config = tmp_path / f"{run}.yaml"
        config.write_text(TRAIN_CONFIG.format(dataset=tmp_path / "dataset", run=tmp_path / run))
        return ["train", "--config", str(config)]

    bridgedit(train("straight"))
    killed_at_call(
        "os.rename", 2, tmp_path / "interrupted", train("interrupted")
    )  # the second checkpoint is whole but not yet named
    folder = tmp_path / "interrupted"
    assert sorted(p.name for p in folder.iterdir()) == [".checkpoint-000006.partial", "checkpoint-000003", "latest"]
    bridgedit([*train("interrupted"), "--resume", "latest"])
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-000003", "checkpoint-000006", "latest"]
    weights = sorted(p.relative_to(tmp_path / "straight") for p in (tmp_path / "straight").rglob("*.safetensors"))
    assert len(weights) >= 2
    for file in weights:
        a, b = load_file(folder / file), load_file(tmp_path / "straight" / file)
        assert a.keys() == b.keys()
        for key in a:
            assert np.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), (file, key)


def test_a_batch_killed_mid_way_resumes_to_the_uninterrupted_result(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    lines = [
        {"id": f"clip{i}", "video_prompt": f"A red ball bounces {i} times.", "audio_prompt": "A dull thud."}
        for i in range(6)
    ]
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))

    def batch(out: Path) -> list[str]:
        return [*BRIDGEDIT, "generate", "--prompts", str(prompts), "--out-dir", str(out), "--steps", "8", "--wav"]

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    subprocess.run(batch(straight), check=True, capture_output=True)

    def two_clips_written() -> bool:  # whole files only: glob matches the hidden temporary files of writes too
        return len([p for p in interrupted.glob("*.wav") if not p.name.startswith(".")]) >= 2

    killed_when(batch(interrupted), two_clips_written)
    finished = {p.name: p.stat().st_mtime_ns for p in interrupted.iterdir() if not p.name.startswith(".")}
    assert 2 <= len(finished) < 12  # killed mid-way
    subprocess.run(batch(interrupted), check=True, capture_output=True)
    names = sorted(p.name for p in interrupted.iterdir())
    assert names == sorted(p.name for p in straight.iterdir())  # every clip and .wav, no temporary file left
    assert len(names) == 12
    for name, written in finished.items():  # what was finished was not made again
        assert (interrupted / name).stat().st_mtime_ns == written, name
    for name in names:  # the same seeds, the same clips (to float rounding: separate processes on a CPU)
        if name.endswith(".wav"):
            (a, rate_a), (b, rate_b) = read_wav(interrupted / name), read_wav(straight / name)
            assert rate_a == rate_b and a.shape == b.shape and np.abs(a - b).max() < 1e-3, name
        else:
            a, b = read_frames(interrupted / name).astype(int), read_frames(straight / name).astype(int)
            assert a.shape == b.shape and np.abs(a - b).max() <= 2, name
