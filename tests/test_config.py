import pytest

from bridgedit.config import (
    BridgeConfig,
    ClipSpec,
    CodecStrides,
    ConfigError,
    ModelConfig,
    SequenceLengths,
    TrainableConfig,
    check_clip,
)


def test_paper_defaults():
    """Table 5: 4 bridges, width 1536, 12 heads, timestep width 1536, placement [3,7,11,15] / [2,5,8,11]."""
    bridge = BridgeConfig()
    assert (bridge.fusion, bridge.width, bridge.num_heads, bridge.timestep_embed_dim) == ("dca", 1536, 12, 1536)
    assert bridge.video_blocks == (3, 7, 11, 15) and bridge.audio_blocks == (2, 5, 8, 11)
    assert bridge.num_bridges == 4
    trainable = TrainableConfig()
    assert (trainable.policy, trainable.video_last_blocks, trainable.audio_last_blocks) == ("bridges+last_blocks", 5, 5)


def test_default_lengths_from_real_codec_configs():
    """DESIGN §2: 81 frames -> 21 latent frames; 21 x 30 x 52 = 32,760 video tokens; 5.4 s -> 117 audio tokens."""
    strides = CodecStrides.from_components(
        wan_vae_config={"temperal_downsample": [False, True, True]},
        wan_transformer_config={"patch_size": [1, 2, 2]},
        oobleck_config={"downsampling_ratios": [2, 4, 4, 8, 8]},
    )
    assert strides == CodecStrides()
    lengths = SequenceLengths.compute(ClipSpec(), strides)
    assert ClipSpec().seconds == pytest.approx(5.4)
    assert lengths.latent_frames == 21 and (lengths.latent_height, lengths.latent_width) == (60, 104)
    assert lengths.video_grid == (21, 30, 52) and lengths.video_tokens == 32_760
    assert lengths.audio_latent_length == lengths.audio_tokens == 117


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fusion="cross"), "bridge.fusion='cross' is unknown"),
        (dict(video_blocks=(3, 7), audio_blocks=(2,)), "one video and one audio block per bridge"),
        (dict(video_blocks=(3, -1), audio_blocks=(2, 5)), "negative index"),
        (dict(video_blocks=(7, 3), audio_blocks=(2, 5)), r"video_blocks=\[7, 3\] must be strictly increasing"),
        (dict(video_blocks=(3, 3), audio_blocks=(2, 5)), "strictly increasing"),
        (dict(video_blocks=(), audio_blocks=()), "use fusion='none'"),
        (dict(width=100, num_heads=12), "multiple of bridge.num_heads"),
    ],
)
def test_invalid_bridge_configs_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BridgeConfig(**kwargs)


def test_none_fusion_ignores_placement():
    assert BridgeConfig(fusion="none", video_blocks=(), audio_blocks=()).num_bridges == 0


def test_invalid_trainable_config():
    with pytest.raises(ConfigError, match="trainable.policy='all' is unknown"):
        TrainableConfig(policy="all")
    with pytest.raises(ConfigError, match=">= 0"):
        TrainableConfig(video_last_blocks=-1)


@pytest.mark.parametrize(
    "clip, message",
    [
        (ClipSpec(height=470), "height must be a positive multiple of 16; got 470"),
        (ClipSpec(width=830), "width must be a positive multiple of 16; got 830"),
        (ClipSpec(num_frames=80), "4k\\+1"),
        (ClipSpec(fps=0), "positive"),
    ],
)
def test_clip_sizes_wan_cannot_take(clip, message):
    with pytest.raises(ConfigError, match=message):
        check_clip(clip, CodecStrides())


def test_model_config_round_trip_and_unknown_keys():
    config = ModelConfig(bridge=BridgeConfig(fusion="additive", video_blocks=(1,), audio_blocks=(0,)))
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown key\\(s\\) in bridge: 'heads'"):
        ModelConfig.from_dict({"bridge": {"heads": 8}})
