"""Named model presets: the towers' architecture configs (from their public diffusers repos), the clip size
and the bridge settings of the paper. A preset needs no weights: `build_on_meta` makes the model on the
meta device, for sizes and FLOPs; real weights load through the pipeline (from the hub ids below or
local folders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers import StableAudioDiTModel, WanTransformer3DModel

from . import tiny
from .config import (
    RELEASED_BRIDGE,
    BridgeConfig,
    ClipSpec,
    CodecStrides,
    ConfigError,
    ModelConfig,
    SequenceLengths,
    TrainableConfig,
)
from .release import STABLE_AUDIO_OPEN_1_0, WAN_T2V_1_3B


@dataclass(frozen=True)
class Preset:
    name: str
    video_repo: str
    audio_repo: str
    video_transformer: dict[str, Any]  # WanTransformer3DModel config
    audio_transformer: dict[str, Any]  # StableAudioDiTModel config
    wan_vae: dict[str, Any]  # the AutoencoderKLWan config keys that set strides
    oobleck_vae: dict[str, Any]  # the AutoencoderOobleck config keys that set the hop and rate
    video_text_tokens: int  # UMT5 tokens per prompt (WanPipeline pads to max_sequence_length)
    audio_text_tokens: int  # T5 tokens per prompt (the tokenizer's model_max_length), before the 2 duration tokens
    clip: ClipSpec = field(default_factory=ClipSpec)
    model: ModelConfig = field(default_factory=ModelConfig)

    @property
    def strides(self) -> CodecStrides:
        return CodecStrides.from_components(
            wan_vae_config=self.wan_vae,
            wan_transformer_config=self.video_transformer,
            oobleck_config=self.oobleck_vae,
        )

    def lengths(self, clip: ClipSpec | None = None) -> SequenceLengths:
        return SequenceLengths.compute(clip or self.clip, self.strides)


# Wan2.1-T2V-1.3B-Diffusers/transformer/config.json: 30 blocks, width 1536 (12 x 128), FFN 8960
_WAN_1_3B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    image_dim=None,
    added_kv_proj_dim=None,
    rope_max_seq_len=1024,
)
# stable-audio-open-1.0/transformer/config.json: 24 blocks, width 1536 (24 x 64), 1024-frame window
_STABLE_AUDIO_OPEN = dict(
    sample_size=1024,
    in_channels=64,
    num_layers=24,
    attention_head_dim=64,
    num_attention_heads=24,
    num_key_value_attention_heads=12,
    out_channels=64,
    cross_attention_dim=768,
    time_proj_dim=256,
    global_states_input_dim=1536,
    cross_attention_input_dim=768,
)

_REAL_SIZE = dict(
    video_repo=WAN_T2V_1_3B,
    audio_repo=STABLE_AUDIO_OPEN_1_0,
    video_transformer=_WAN_1_3B,
    audio_transformer=_STABLE_AUDIO_OPEN,
    wan_vae={"temperal_downsample": [False, True, True]},
    oobleck_vae={"downsampling_ratios": [2, 4, 4, 8, 8], "sampling_rate": 44_100},
    video_text_tokens=512,
    audio_text_tokens=128,
)

PRESETS: dict[str, Preset] = {
    # the authors' released architecture (../shared/official-release.md): Table 5's placement, width and heads,
    # its bridge options, the first five blocks of each tower trainable, 116 audio latent frames at 5.4 s
    "wan2.1-t2v-1.3b+stable-audio-open-1.0": Preset(
        name="wan2.1-t2v-1.3b+stable-audio-open-1.0",
        **_REAL_SIZE,
        clip=ClipSpec(audio_length_rounding="floor"),
        model=ModelConfig(
            bridge=BridgeConfig(**RELEASED_BRIDGE), trainable=TrainableConfig(policy="bridges+first_blocks")
        ),
    ),
    # the paper's Table 5 as bridgedit's first real-size models built it: one joint timestep embedding, audio tokens
    # without the global token, the last five blocks trainable, 117 audio latent frames
    "wan2.1-t2v-1.3b+stable-audio-open-1.0-table5": Preset(
        name="wan2.1-t2v-1.3b+stable-audio-open-1.0-table5", **_REAL_SIZE
    ),
    # the tiny components of `bridgedit.tiny`, for trying things in seconds on a CPU
    "tiny": Preset(
        name="tiny",
        video_repo="(bridgedit.tiny)",
        audio_repo="(bridgedit.tiny)",
        video_transformer={**tiny.WAN_TRANSFORMER_CONFIG, "num_layers": 6},
        audio_transformer={**tiny.STABLE_AUDIO_TRANSFORMER_CONFIG, "num_layers": 6},
        wan_vae=tiny.WAN_VAE_CONFIG,
        oobleck_vae=tiny.OOBLECK_VAE_CONFIG,
        video_text_tokens=tiny.TINY_MAX_TEXT_TOKENS,
        audio_text_tokens=tiny.TINY_MAX_TEXT_TOKENS,
        clip=ClipSpec(
            height=64, width=64, num_frames=9, fps=15.0, audio_sample_rate=tiny.OOBLECK_VAE_CONFIG["sampling_rate"]
        ),
        model=ModelConfig(
            bridge=BridgeConfig(video_blocks=(1, 3), audio_blocks=(0, 2), width=32, num_heads=2, timestep_embed_dim=32),
            trainable=TrainableConfig(video_last_blocks=2, audio_last_blocks=2),
        ),
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def build_on_meta(preset: Preset, model_config: ModelConfig | None = None):
    """The preset's BridgeDiT with no weights (meta tensors): seconds and almost no memory at any size."""
    from .model import BridgeDiT

    with torch.device("meta"):
        video = WanTransformer3DModel(**preset.video_transformer)
        audio = StableAudioDiTModel(**preset.audio_transformer)
        return BridgeDiT(video, audio, model_config or preset.model)
