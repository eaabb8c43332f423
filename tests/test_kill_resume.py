"""Kill -9 in the middle of a long job, then run it again: nothing lost, duplicated or corrupt, no temporary file
left where a later command reads, and the outputs those of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

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
    killed_when(batch(interrupted), lambda: len(list(interrupted.glob("*.wav"))) >= 2)
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
