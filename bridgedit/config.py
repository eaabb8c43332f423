"""The schema of a BridgeDiT model: bridge settings, freezing policy and every derived length.

Every length (frames -> latent frames -> tokens; seconds -> audio latent frames -> tokens) is computed
here and only here, from rates and strides; nothing else in the package types them by hand.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------------------------------
# Bridges
# ----------------------------------------------------------------------------------------------------

#: Fusion kinds known to `bridgedit.bridge`. "dca" is the paper's Dual Cross-Attention (§3.3); the rest
#: are the baselines of §4.3.2 / Table 9 ("none" is the "Separate" row: two towers, no interaction).
FUSION_KINDS = ("dca", "full_attention", "additive", "v2a", "a2v", "none")

#: Table 5's placement, "Uniform (Early Bias)" of Table 8: 0-based indices of the tower blocks after
#: which each bridge runs.
DEFAULT_VIDEO_BRIDGE_BLOCKS = (3, 7, 11, 15)
DEFAULT_AUDIO_BRIDGE_BLOCKS = (2, 5, 8, 11)


#: the choices of BridgeConfig's string options, first the default (bridgedit's first models)
BRIDGE_CHOICES = {
    "condition": ("joint", "tower"),
    "additive": ("time_aligned", "global_mean"),
    "stream_width": ("bridge", "tower"),
    "init": ("dit", "release"),
    "full_attention_scale": ("standard", "release"),
}

#: the authors' released bridge (../shared/official-release.md), as BridgeConfig options over Table 5's placement
RELEASED_BRIDGE = dict(
    condition="tower",
    rotary=True,
    audio_global_token=True,
    additive="global_mean",
    stream_width="tower",
    init="release",
    full_attention_scale="release",
)


class ConfigError(ValueError):
    """A configuration that cannot describe a valid model; the message names the field and the fix."""


def read_text(path: str | Path) -> str:
    """A user's text file (prompts, captions, configs, manifests) as UTF-8; ConfigError naming the file and the first
    byte that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{data[error.start]:02x} on line {line} (save it as UTF-8)"
        ) from None


@dataclass(frozen=True)
class BridgeConfig:
    """The trainable interaction module (Table 5, "Architecture Configuration")."""

    fusion: str = "dca"
    video_blocks: tuple[int, ...] = DEFAULT_VIDEO_BRIDGE_BLOCKS
    audio_blocks: tuple[int, ...] = DEFAULT_AUDIO_BRIDGE_BLOCKS
    width: int = 1536  # channels of Q, K, V inside a bridge block
    num_heads: int = 12
    timestep_embed_dim: int = 1536
    mlp_ratio: float = 4.0
    # add a fixed sinusoidal encoding of each token's time to both streams before mixing (not in the paper; the
    # towers' rotary positions never reach the hidden states, so without it a bridge cannot tell when a token is)
    time_encoding: bool = False
    # ALiBi on one time axis (not in the paper): attention logits between tokens at times t_q, t_k (latent video
    # frames) get -slope_h * |t_q - t_k|, slope_h = time_bias / 2**h for head h; 0 = off. Lets an untrained bridge
    # already read the other stream at the same moment (see docs/synthetic.md, "Why DCA does not beat none here")
    time_bias: float = 0.0
    # add a fixed sinusoidal encoding of each video token's row and column (half the channels each) to the video
    # stream before mixing (not in the paper): without it a bridge knows where a token is only from what it shows,
    # and cannot tell a ball touching the floor from one in mid-air (docs/synthetic.md §3.2)
    space_encoding: bool = False
    # --- the authors' released architecture (../shared/official-release.md); the defaults are bridgedit's first
    # models, which every model saved before these fields existed means ---
    # what a stream's adaLN reads: "joint" = one embedding of both timesteps (summed sinusoid MLPs) for every stream;
    # "tower" = each stream its own tower's time embedding (Wan's temb, Stable Audio's timestep_proj(time_proj(t)))
    condition: str = "joint"
    # 1-D rotary position embedding over each stream's flattened token index on q and k inside bridge attention
    rotary: bool = False
    # whether the audio stream given to the bridges includes Stable Audio's prepended global (duration + time) token
    audio_global_token: bool = False
    # additive fusion: "time_aligned" (each frame's mean, resampled in time) or "global_mean" (the other stream's mean
    # over all its tokens, projected, gated and added to every token: the release's; its block has no pre-mix norm)
    additive: str = "time_aligned"
    # what a stream's norms, MLP and modulation run at: "bridge" = `width`, with linear adapters from and to the tower
    # width; "tower" = the tower's own width, attention projecting it to `width` channels and back (the release)
    stream_width: str = "bridge"
    # fresh bridges: "dit" = xavier linears, zero biases, zero modulation (adaLN-Zero); "release" = xavier q/k/v, zero
    # output projections and biases, zero MLP output, PyTorch's default for the rest. Both start as the identity
    init: str = "dit"
    # attention logits of full attention: "standard" = q.k / sqrt(head_dim); "release" = q.k / head_dim, as the
    # released full-attention weights were trained (q scaled once by hand and once more by flash attention)
    full_attention_scale: str = "standard"

    def __post_init__(self) -> None:
        object.__setattr__(self, "video_blocks", tuple(int(i) for i in self.video_blocks))
        object.__setattr__(self, "audio_blocks", tuple(int(i) for i in self.audio_blocks))
        if self.fusion not in FUSION_KINDS:
            raise ConfigError(f"bridge.fusion={self.fusion!r} is unknown; choose one of {', '.join(FUSION_KINDS)}")
        if self.width <= 0 or self.num_heads <= 0 or self.width % self.num_heads:
            raise ConfigError(
                f"bridge.width={self.width} must be a positive multiple of bridge.num_heads={self.num_heads}"
            )
        if self.timestep_embed_dim <= 0 or self.mlp_ratio <= 0:
            raise ConfigError("bridge.timestep_embed_dim and bridge.mlp_ratio must be positive")
        if self.time_bias < 0:
            raise ConfigError(
                f"bridge.time_bias={self.time_bias} must be >= 0 (a logit penalty per latent frame; 0 = off)"
            )
        for name, choices in BRIDGE_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"bridge.{name}={getattr(self, name)!r} is unknown; choose one of {', '.join(choices)}"
                )
        if self.audio_global_token and (
            self.time_encoding or self.time_bias or (self.fusion == "additive" and self.additive == "time_aligned")
        ):
            raise ConfigError(
                "bridge.audio_global_token gives the bridges a token with no time: it cannot be combined "
                "with time_encoding, time_bias or time-aligned additive fusion"
            )
        if self.fusion == "none":
            return
        if len(self.video_blocks) != len(self.audio_blocks):
            raise ConfigError(
                f"bridge placement needs one video and one audio block per bridge: got "
                f"{len(self.video_blocks)} video blocks {list(self.video_blocks)} and "
                f"{len(self.audio_blocks)} audio blocks {list(self.audio_blocks)}"
            )
        if not self.video_blocks:
            raise ConfigError("bridge placement is empty; use fusion='none' for towers without bridges")
        for name, blocks in (("video_blocks", self.video_blocks), ("audio_blocks", self.audio_blocks)):
            if any(i < 0 for i in blocks):
                raise ConfigError(f"bridge.{name}={list(blocks)} has a negative index; indices are 0-based")
            if any(b <= a for a, b in zip(blocks, blocks[1:])):
                raise ConfigError(f"bridge.{name}={list(blocks)} must be strictly increasing")

    @property
    def num_bridges(self) -> int:
        return 0 if self.fusion == "none" else len(self.video_blocks)

    def check_against_towers(self, num_video_blocks: int, num_audio_blocks: int) -> None:
        """Raise if a placement index points past the end of a tower."""
        if self.fusion == "none":
            return
        for name, blocks, depth in (
            ("video_blocks", self.video_blocks, num_video_blocks),
            ("audio_blocks", self.audio_blocks, num_audio_blocks),
        ):
            if blocks[-1] >= depth:
                raise ConfigError(
                    f"bridge.{name}={list(blocks)} points past the tower, which has {depth} blocks "
                    f"(valid indices 0..{depth - 1})"
                )


# ----------------------------------------------------------------------------------------------------
# Freezing policy
# ----------------------------------------------------------------------------------------------------

#: "bridges+last_blocks": Table 5 (bridges and the last N blocks of each tower); "bridges+first_blocks": the authors'
#: release (bridges and the FIRST N blocks of each tower: `train_layer_config.from_shallow`);
#: "bridges": the bridges alone; "towers": everything (for pretraining small towers).
TRAINABLE_POLICIES = ("bridges+last_blocks", "bridges+first_blocks", "bridges", "towers")


@dataclass(frozen=True)
class TrainableConfig:
    policy: str = "bridges+last_blocks"
    video_last_blocks: int = 5  # with "bridges+last_blocks"
    audio_last_blocks: int = 5
    video_first_blocks: int = 5  # with "bridges+first_blocks"
    audio_first_blocks: int = 5

    def __post_init__(self) -> None:
        if self.policy not in TRAINABLE_POLICIES:
            raise ConfigError(
                f"trainable.policy={self.policy!r} is unknown; choose one of {', '.join(TRAINABLE_POLICIES)}"
            )
        if min(self.video_last_blocks, self.audio_last_blocks, self.video_first_blocks, self.audio_first_blocks) < 0:
            raise ConfigError("trainable block counts (video/audio_last_blocks, video/audio_first_blocks) must be >= 0")

    def tower_blocks(self, tower: str, num_blocks: int) -> range:
        """The indices of the "video" or "audio" tower's blocks this policy trains (all of them for "towers")."""
        if self.policy == "towers":
            return range(num_blocks)
        if self.policy == "bridges+last_blocks":
            last = self.video_last_blocks if tower == "video" else self.audio_last_blocks
            return range(max(0, num_blocks - last), num_blocks)
        if self.policy == "bridges+first_blocks":
            first = self.video_first_blocks if tower == "video" else self.audio_first_blocks
            return range(min(first, num_blocks))
        return range(0)

    def trains_tower(self, tower: str) -> bool:
        """Whether this policy trains any weights of the "video" or "audio" tower (a checkpoint then holds them)."""
        if self.policy == "towers":
            return True
        return len(self.tower_blocks(tower, 10**9)) > 0


# ----------------------------------------------------------------------------------------------------
# Lengths
# ----------------------------------------------------------------------------------------------------


AUDIO_LENGTH_ROUNDINGS = ("ceil", "floor")

#: how a given stream is held while the other is generated next to it (`diffusion.samplers.hold_fixed`)
HOLD_MODES = ("clean", "renoised")


@dataclass(frozen=True)
class ClipSpec:
    """What a user asks for: the size and length of one sounding video (Table 5 sampling defaults)."""

    height: int = 480  # the paper writes 834 wide; Wan needs multiples of 16, hence 832
    width: int = 832
    num_frames: int = 81
    fps: float = 15.0
    audio_sample_rate: int = 44_100
    audio_seconds: float | None = None  # default: num_frames / fps (5.4 s)
    # audio latent frames for `seconds`: "ceil" covers the whole clip (bridgedit's first models: 117 at 5.4 s);
    # "floor" is the release's int() (116 at 5.4 s, 5.39 s of audio)
    audio_length_rounding: str = "ceil"

    @property
    def seconds(self) -> float:
        return self.audio_seconds if self.audio_seconds is not None else self.num_frames / self.fps


@dataclass(frozen=True)
class CodecStrides:
    """Downsampling of each codec and tokenizer, read from the component configs (never typed twice)."""

    video_temporal: int = 4  # Wan VAE: 2 ** sum(temperal_downsample) (other codecs: scale_factor_temporal)
    video_spatial: int = 8  # Wan VAE: 2 ** len(temperal_downsample) (other codecs: scale_factor_spatial)
    video_patch: tuple[int, int, int] = (1, 2, 2)  # Wan transformer patch (t, h, w)
    audio_hop: int = 2048  # Oobleck VAE: prod(downsampling_ratios)

    @classmethod
    def from_components(cls, *, wan_vae_config: Any, wan_transformer_config: Any, oobleck_config: Any) -> CodecStrides:
        if "temperal_downsample" in wan_vae_config:  # the Wan VAE (its scale_factor_* keys may keep defaults)
            temporal_downsample = list(wan_vae_config["temperal_downsample"])
            temporal, spatial = 2 ** sum(bool(x) for x in temporal_downsample), 2 ** len(temporal_downsample)
        else:  # another codec with the Wan VAE's interface (bridgedit.synthetic.patch_codec): the keys WanPipeline reads
            temporal, spatial = wan_vae_config["scale_factor_temporal"], wan_vae_config["scale_factor_spatial"]
        return cls(
            video_temporal=temporal,
            video_spatial=spatial,
            video_patch=tuple(wan_transformer_config["patch_size"]),
            audio_hop=math.prod(oobleck_config["downsampling_ratios"]),
        )


@dataclass(frozen=True)
class SequenceLengths:
    """All derived sizes of one clip. Audio tokens exclude Stable Audio's prepended global/time token."""

    latent_frames: int
    latent_height: int
    latent_width: int
    video_grid: tuple[int, int, int]  # (F, H, W) tokens after patching
    video_tokens: int
    audio_latent_length: int
    audio_tokens: int

    @classmethod
    def compute(cls, clip: ClipSpec, strides: CodecStrides) -> SequenceLengths:
        check_clip(clip, strides)
        latent_frames = (clip.num_frames - 1) // strides.video_temporal + 1
        latent_height = clip.height // strides.video_spatial
        latent_width = clip.width // strides.video_spatial
        p_t, p_h, p_w = strides.video_patch
        grid = (latent_frames // p_t, latent_height // p_h, latent_width // p_w)
        # the audio latent covers the whole clip ("ceil"; the decoded waveform is cropped to `clip.seconds`) or its
        # whole latent frames only ("floor", the release)
        rounding = math.ceil if clip.audio_length_rounding == "ceil" else math.floor
        audio_latent_length = rounding(clip.seconds * clip.audio_sample_rate / strides.audio_hop)
        return cls(
            latent_frames=latent_frames,
            latent_height=latent_height,
            latent_width=latent_width,
            video_grid=grid,
            video_tokens=math.prod(grid),
            audio_latent_length=audio_latent_length,
            audio_tokens=audio_latent_length,
        )


def check_positive_finite(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive, finite number; got {value}")


def check_non_negative_finite(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number, 0 or more; got {value}")


def check_clip(clip: ClipSpec, strides: CodecStrides) -> None:
    """Raise a ConfigError naming the first size the towers cannot take."""
    multiple = strides.video_spatial * max(strides.video_patch[1:])
    for name, value in (("height", clip.height), ("width", clip.width)):
        if value <= 0 or value % multiple:
            raise ConfigError(f"{name} must be a positive multiple of {multiple}; got {value}")
    if clip.num_frames < 1 or (clip.num_frames - 1) % strides.video_temporal:
        k = strides.video_temporal
        raise ConfigError(f"num_frames must be {k}k+1 (e.g. {k * 20 + 1}); got {clip.num_frames}")
    check_positive_finite("fps", clip.fps)
    check_positive_finite("audio_sample_rate", clip.audio_sample_rate)
    check_positive_finite("audio_seconds", clip.seconds)  # from fps when not given: checked after it
    if clip.audio_length_rounding not in AUDIO_LENGTH_ROUNDINGS:
        raise ConfigError(
            f"audio_length_rounding={clip.audio_length_rounding!r} is unknown; choose one of "
            f"{', '.join(AUDIO_LENGTH_ROUNDINGS)}"
        )
    if clip.audio_length_rounding == "floor" and clip.seconds * clip.audio_sample_rate < strides.audio_hop:
        raise ConfigError(
            f"{clip.seconds:g} s of audio is shorter than one audio latent frame "
            f"({strides.audio_hop} samples); use audio_length_rounding='ceil'"
        )


# ----------------------------------------------------------------------------------------------------
# The whole model
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """Bridges + freezing; the towers' own configs live with their diffusers models."""

    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    trainable: TrainableConfig = field(default_factory=TrainableConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(
            bridge=_dataclass_from_dict(BridgeConfig, data.get("bridge", {}), "bridge"),
            trainable=_dataclass_from_dict(TrainableConfig, data.get("trainable", {}), "trainable"),
        )


def _dataclass_from_dict(cls: type, data: dict[str, Any], section: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {section}: {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    return cls(**data)
