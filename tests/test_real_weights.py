"""Checks against the public weights, for machines that have them on disk; skipped (and reported) elsewhere.

Set BRIDGEDIT_WAN=<folder of Wan-AI/Wan2.1-T2V-1.3B-Diffusers> and
BRIDGEDIT_STABLE_AUDIO=<folder of stabilityai/stable-audio-open-1.0>; for the authors' released checkpoints also
BRIDGEDIT_RELEASE_CKPT=<a .ckpt of Guan123/BridgeDiT, e.g. vgg-ss/bicross-1.3B/epoch=20-step=3318.ckpt>.
"""

import os
from pathlib import Path

import pytest
import torch

from bridgedit.presets import PRESETS

pytestmark = pytest.mark.real_weights

WAN, STABLE_AUDIO = os.environ.get("BRIDGEDIT_WAN"), os.environ.get("BRIDGEDIT_STABLE_AUDIO")
requires_weights = pytest.mark.skipif(
    not (WAN and STABLE_AUDIO and Path(WAN).is_dir() and Path(STABLE_AUDIO).is_dir()),
    reason="public weights not on disk (set BRIDGEDIT_WAN and BRIDGEDIT_STABLE_AUDIO to their folders)",
)


@requires_weights
def test_preset_configs_match_the_published_ones():
    from diffusers import StableAudioDiTModel, WanTransformer3DModel

    preset = PRESETS["wan2.1-t2v-1.3b+stable-audio-open-1.0"]
    wan = WanTransformer3DModel.load_config(WAN, subfolder="transformer")
    audio = StableAudioDiTModel.load_config(STABLE_AUDIO, subfolder="transformer")
    for key, value in preset.video_transformer.items():
        assert tuple(wan[key]) == tuple(value) if isinstance(value, tuple) else wan[key] == value, key
    for key, value in preset.audio_transformer.items():
        assert audio[key] == value, key


@requires_weights
def test_generates_with_the_real_towers(tmp_path):
    from diffusers import StableAudioPipeline, WanPipeline

    from bridgedit import BridgeConfig, BridgeDiTPipeline

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = BridgeDiTPipeline.from_pipes(
        WanPipeline.from_pretrained(WAN, dtype=dtype),
        StableAudioPipeline.from_pretrained(STABLE_AUDIO, dtype=dtype),
        BridgeConfig(),
    ).to(device)
    out = pipe(
        "a hammer strikes an anvil",
        "metallic clanging",
        height=160,
        width=160,
        num_frames=17,
        num_inference_steps=2,
        generator=torch.Generator(device).manual_seed(0),
        progress=False,
    )
    assert out.video.shape == (1, 17, 160, 160, 3) and out.audio.shape == (1, 2, round(17 / 15 * 44_100))
    pipe.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["bridge", "model_index.json"]


RELEASE_CKPT = os.environ.get("BRIDGEDIT_RELEASE_CKPT")


@requires_weights
@pytest.mark.skipif(
    not (RELEASE_CKPT and Path(RELEASE_CKPT).is_file()),
    reason="no released checkpoint on disk (set BRIDGEDIT_RELEASE_CKPT to a Guan123/BridgeDiT .ckpt)",
)
def test_released_checkpoint_converts_and_generates(tmp_path):
    """The real release: every key of the checkpoint maps onto the released architecture over the public towers,
    and the converted folder generates a (short) sounding clip with the release's sampling settings."""
    from bridgedit.official import convert_official
    from bridgedit.pipeline import BridgeDiTPipeline

    conversion = convert_official(RELEASE_CKPT, tmp_path / "model", video_model=WAN, audio_model=STABLE_AUDIO)
    assert conversion.config.bridge.num_bridges == 4 and conversion.config.bridge.width == 1536
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    pipe = BridgeDiTPipeline.from_pretrained(tmp_path / "model", dtype=dtype).to(device)
    defaults = pipe.generation_defaults
    out = pipe(
        "a dog barks by a pool",
        "a dog barking",
        height=160,
        width=160,
        num_frames=17,
        num_inference_steps=2,
        schedule=defaults["schedule"],
        audio_length_rounding=defaults["audio_length_rounding"],
        negative_video_prompt=defaults["negative_video_prompt"],
        negative_audio_prompt=defaults["negative_audio_prompt"],
        generator=torch.Generator(device).manual_seed(0),
        progress=False,
    )
    assert out.video.shape == (1, 17, 160, 160, 3) and torch.isfinite(torch.from_numpy(out.audio)).all()
