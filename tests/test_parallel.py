"""Sequence parallel sampling: one clip over two processes (gloo, on this CPU) equals the one-process clip.

diffusers (0.42) places each process of a parallel config on an accelerator and divides by their count; on a CPU the
scripts below say there is one (`torch.accelerator.device_count`), which is all the shim does: the splits, the
all-to-all exchanges and the gathers are diffusers' own, over gloo."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import open_gates, two_cpu_processes
from safetensors.torch import load_file

from bridgedit import tiny
from bridgedit.config import ConfigError
from bridgedit.media import read_frames
from bridgedit.parallel import enable_sequence_parallel

pytestmark = pytest.mark.slow  # processes launched

SIZE = dict(height=32, width=64, num_frames=9, num_inference_steps=3, max_sequence_length=16, progress=False)
PROMPTS = ("a red ball bounces on the floor", "a loud rubber thud")
SHIM = "import torch\ntorch.accelerator.device_count = lambda: 1  # see the module's docstring\n"


def _pipeline():
    pipe = tiny.bridgedit_pipeline(seed=0)
    open_gates(pipe.model)  # bridges that mix the streams: their gathers and splits matter
    return pipe


def _launch(script: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "run.py"
    path.write_text(SHIM + textwrap.dedent(script))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(__file__))
    done = subprocess.run([*two_cpu_processes(), str(path)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_clip_sampled_over_two_processes_equals_the_one_process_clip(tmp_path):
    _launch(
        f"""
        from accelerate import PartialState
        from safetensors.torch import save_file
        from test_parallel import PROMPTS, SIZE, _pipeline
        from bridgedit.parallel import enable_sequence_parallel

        state = PartialState(cpu=True)
        pipe = _pipeline()
        tokens_seen = []  # what the second video block gets: this process's share of the tokens
        pipe.video_pipe.transformer.blocks[1].register_forward_pre_hook(
            lambda module, args: tokens_seen.append(args[0].shape[1])
        )
        assert enable_sequence_parallel(pipe) == 2
        out = pipe(*PROMPTS, **SIZE, generator=torch.Generator().manual_seed(0), output_type="latent")
        save_file(
            {{"video": out.video, "audio": out.audio, "tokens_seen": torch.tensor(tokens_seen)}},
            {str(tmp_path)!r} + f"/rank{{state.process_index}}.safetensors",
        )
        """,
        tmp_path,
    )
    alone = _pipeline()(*PROMPTS, **SIZE, generator=torch.Generator().manual_seed(0), output_type="latent")
    grid_tokens = 3 * (32 // 16) * (64 // 16)  # latent frames x the patch grid (Wan's VAE / 8, patches / 2)
    for rank in (0, 1):
        split = load_file(str(tmp_path / f"rank{rank}.safetensors"))
        assert set(split["tokens_seen"].tolist()) == {grid_tokens // 2}  # every forward saw half the tokens
        torch.testing.assert_close(split["video"], alone.video, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(split["audio"], alone.audio, rtol=1e-4, atol=1e-5)


def test_generate_parallel_sequence_writes_the_one_process_clip_once(tmp_path):
    prompts = ["--video-prompt", "A red rubber ball bounces.", "--audio-prompt", "A dull thud.", "--steps", "4"]
    done = _launch(
        f"""
        import sys
        from bridgedit.cli.main import main

        sys.exit(main(["generate", *{prompts!r}, "--parallel", "sequence", "--out", {str(tmp_path / "split.mp4")!r}]))
        """,
        tmp_path,
    )
    assert done.stdout.count("wrote ") == 1  # the main process writes; the other samples with it
    alone = subprocess.run(
        [sys.executable, "-m", "bridgedit.cli.main", "generate", *prompts, "--out", str(tmp_path / "alone.mp4")],
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    split, single = read_frames(tmp_path / "split.mp4").astype(int), read_frames(tmp_path / "alone.mp4").astype(int)
    assert split.shape == single.shape and np.abs(split - single).max() <= 2


def test_sequence_parallel_refuses_what_it_cannot_split():
    with pytest.raises(ConfigError, match="needs several processes: run under `accelerate launch`"):
        enable_sequence_parallel(_pipeline())
