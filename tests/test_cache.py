"""`bridgedit cache`: latents and text states per clip, equal to what generation computes, resumable, split."""

import json
import os
import subprocess

import pytest
import torch
from conftest import two_cpu_processes

from bridgedit import tiny
from bridgedit.cli.main import main
from bridgedit.conditioning import audio_conditions, pad_states, video_conditions
from bridgedit.config import ConfigError
from bridgedit.data.cache import INFO_NAME, cache_dataset, load_cache_info, load_cached_clip
from bridgedit.synthetic import make_dataset

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out

TEXT_TOKENS = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    make_dataset(root / "dataset", clips=4, seed=0)
    pipe = tiny.bridgedit_pipeline()
    pipe.save_pretrained(root / "model")
    return root, pipe


def test_cached_states_make_exactly_the_generation_conditions(setup, tmp_path):
    root, pipe = setup
    cache_dataset(
        pipe, root / "dataset", tmp_path / "cache", model="tiny", max_sequence_length=TEXT_TOKENS, progress=False
    )
    record = json.loads((root / "dataset" / "manifest.jsonl").read_text().splitlines()[0])
    clip = load_cached_clip(tmp_path / "cache", record["id"])
    captions, seconds = record["captions"], record["duration"]
    info = load_cache_info(tmp_path / "cache")

    expected = pipe.encode_prompts(
        [captions["video"]], [captions["audio"]], audio_seconds=seconds, max_sequence_length=TEXT_TOKENS
    )
    video = video_conditions(pad_states([clip["video_text"]], info["video_max_tokens"]))
    audio = audio_conditions(pipe.audio_pipe, pad_states([clip["audio_text"]], info["audio_max_tokens"]), seconds)
    assert torch.equal(video.text_states, expected.video.text_states)
    assert torch.equal(audio.text_states, expected.audio.text_states)
    assert torch.equal(audio.global_states, expected.audio.global_states)
    assert clip["video_text"].shape[0] < TEXT_TOKENS  # stored at the true length, not padded


def test_latents_invert_the_pipelines_decoding(setup, tmp_path):
    root, pipe = setup
    cache_dataset(
        pipe, root / "dataset", tmp_path / "cache", model="tiny", max_sequence_length=TEXT_TOKENS, progress=False
    )
    record = json.loads((root / "dataset" / "manifest.jsonl").read_text().splitlines()[0])
    clip = load_cached_clip(tmp_path / "cache", record["id"])
    assert clip["video_latents"].shape == (16, 5, 8, 8)  # 17 frames, 64x64 -> 5 x 8 x 8
    assert clip["audio_latents"].shape == (4, 567)  # ceil(17 / 15 s * 4000 Hz / hop 8)
    vae = pipe.video_pipe.vae
    raw = vae.encode(torch.zeros(1, 3, 17, 64, 64)).latent_dist.mode()[0]
    mean = torch.tensor(vae.config.latents_mean).view(-1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(-1, 1, 1, 1)
    normalised = (raw - mean) / std
    torch.testing.assert_close(normalised * std + mean, raw)  # what decode_video undoes


def test_resume_and_settings_check(setup, tmp_path, capsys):
    root, _ = setup
    args = [
        "cache",
        str(root / "dataset"),
        "--model",
        str(root / "model"),
        "--out",
        str(tmp_path / "c"),
        "--max-sequence-length",
        str(TEXT_TOKENS),
    ]
    assert main(args) == 0
    assert "encoded 4 clip(s)" in capsys.readouterr().out
    (tmp_path / "c" / "clips" / "clip00002.safetensors").unlink()
    assert main(args) == 0
    assert "encoded 1 clip(s)" in capsys.readouterr().out
    assert main(args[:-1] + ["16"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_the_same_model_folder_named_another_way_reuses_the_cache(setup, tmp_path, monkeypatch):
    """A cache made with a model folder named relative to one working directory is the same model's when the folder
    is named absolutely (the recipe's relative --out against the ablation's absolute --recipe), and when named
    relative to another directory; another folder's is refused. Caches made before the absolute naming, which
    recorded the relative path, are compared from the working directory."""
    root, pipe = setup
    cache = tmp_path / "cache"
    monkeypatch.chdir(root)
    assert cache_dataset(pipe, "dataset", cache, model="model", max_sequence_length=TEXT_TOKENS, progress=False) == 4
    assert load_cache_info(cache)["model"] == str((root / "model").resolve())
    (cache / "clips" / "clip00001.safetensors").unlink()
    monkeypatch.chdir(root / "dataset")
    assert (
        cache_dataset(pipe, root / "dataset", cache, model="../model", max_sequence_length=TEXT_TOKENS, progress=False)
        == 1
    )
    assert (
        cache_dataset(
            pipe, root / "dataset", cache, model=root / "model", max_sequence_length=TEXT_TOKENS, progress=False
        )
        == 0
    )
    other = tmp_path / "other-model"
    other.mkdir()
    with pytest.raises(ConfigError, match="made with other settings"):
        cache_dataset(pipe, root / "dataset", cache, model=other, max_sequence_length=TEXT_TOKENS, progress=False)

    info = json.loads((cache / INFO_NAME).read_text())
    (cache / INFO_NAME).write_text(json.dumps({**info, "model": "model"}))  # as an older bridgedit wrote it
    monkeypatch.chdir(root)
    assert (
        cache_dataset(
            pipe, root / "dataset", cache, model=root / "model", max_sequence_length=TEXT_TOKENS, progress=False
        )
        == 0
    )


def test_clips_the_model_cannot_take_are_named(setup, tmp_path):
    root, pipe = setup
    make_dataset(tmp_path / "odd", clips=1, seconds=1.0)  # 15 frames: not 4k+1
    with pytest.raises(ConfigError, match="Wan needs 4k\\+1"):
        cache_dataset(pipe, tmp_path / "odd", tmp_path / "c", model="tiny", progress=False)
    make_dataset(tmp_path / "rate", clips=1, sample_rate=8000)
    with pytest.raises(ConfigError, match="takes 4000 Hz"):
        cache_dataset(pipe, tmp_path / "rate", tmp_path / "c2", model="tiny", progress=False)


def test_two_processes_split_the_clips(setup, tmp_path):
    root, _ = setup
    command = [
        *two_cpu_processes(),
        "-m",
        "bridgedit.cli.main",
        "cache",
        str(root / "dataset"),
        "--model",
        str(root / "model"),
        "--out",
        str(tmp_path / "c"),
        "--device",
        "cpu",
        "--max-sequence-length",
        str(TEXT_TOKENS),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "process 0: encoded 2 clip(s)" in result.stdout and "process 1: encoded 2 clip(s)" in result.stdout
    assert len(list((tmp_path / "c" / "clips").iterdir())) == 4
