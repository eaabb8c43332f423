"""The cross-modal gain: zero for a model that ignores the other stream, non-zero once bridges carry something."""

import pytest
import torch

from bridgedit import tiny
from bridgedit.config import BridgeConfig, ModelConfig
from bridgedit.data.cache import cache_dataset, load_cache_info
from bridgedit.data.dataset import CachedClips
from bridgedit.pipeline import BridgeDiTPipeline
from bridgedit.synthetic import make_dataset
from bridgedit.training.diagnostics import NOISE_LEVELS, cross_modal_gain, cross_modal_gain_on_cache
from bridgedit.training.trainer import batch_conditions

pytestmark = pytest.mark.slow  # trainings, encoders, processes: `make test-fast` leaves this file out

TEXT_TOKENS = 32


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("gain")
    make_dataset(root / "dataset", clips=3, seed=2)
    cache_dataset(
        tiny.bridgedit_pipeline(seed=0),
        root / "dataset",
        root / "cache",
        model="tiny",
        max_sequence_length=TEXT_TOKENS,
        progress=False,
    )
    return root


def _gain(root, pipe, size=3):
    clips = CachedClips(root / "dataset", root / "cache")
    batch = clips.batch(list(range(size)))
    keep = torch.zeros(size, dtype=torch.bool)
    conditions = batch_conditions(
        pipe, batch, keep, keep, clips.null_video_text, load_cache_info(root / "cache"), torch.device("cpu")
    )
    return cross_modal_gain(pipe.model.eval(), batch, conditions)


def _with_fusion(fusion):
    pipe = tiny.bridgedit_pipeline(seed=0)
    config = ModelConfig(
        bridge=BridgeConfig(**{**pipe.model.config.bridge.__dict__, "fusion": fusion}),
        trainable=pipe.model.config.trainable,
    )
    return BridgeDiTPipeline.from_pipes(pipe.video_pipe, pipe.audio_pipe, config)


def test_a_model_without_bridges_gains_nothing(clips):
    result = _gain(clips, _with_fusion("none"))
    for stream in ("audio", "video"):
        assert [entry["t"] for entry in result[stream]["levels"]] == list(NOISE_LEVELS)
        for entry in result[stream]["levels"]:
            assert entry["matched"] > 0 and entry["gain"] == 0.0
        assert result[stream]["mean_gain"] == 0.0


def test_untrained_bridges_gain_nothing_and_open_ones_do(clips):
    pipe = _with_fusion("dca")
    assert _gain(clips, pipe)["audio"]["mean_gain"] == 0.0  # gates start at zero: the identity
    with torch.no_grad():
        for block in pipe.model.bridges.blocks:
            for stream in (block.video, block.audio):
                stream.modulation.linear.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    result = _gain(clips, pipe)
    assert all(entry["gain"] != 0.0 for stream in ("audio", "video") for entry in result[stream]["levels"])


def test_needs_two_clips(clips):
    with pytest.raises(ValueError, match="at least 2 clips"):
        _gain(clips, _with_fusion("none"), size=1)


def test_gain_of_a_saved_model_on_its_cache(clips, tmp_path):
    pipe = _with_fusion("dca")
    with torch.no_grad():
        for block in pipe.model.bridges.blocks:
            block.audio.modulation.linear.bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    pipe.save_pretrained(tmp_path / "model", copy_towers=True)
    from_disk = cross_modal_gain_on_cache(
        tmp_path / "model", clips / "dataset", clips / "cache", split="train", max_clips=2
    )
    assert from_disk == _gain(clips, pipe, size=2)
