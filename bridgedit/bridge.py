"""BridgeDiT blocks: the trainable interaction between the video and audio towers (§3.3, Figure 3).

Dims legend: B batch, Nv video tokens (= F * S, F latent frames, S = H * W tokens per frame),
Na audio tokens, D bridge width, Dv / Da tower widths, C timestep-embedding width.

Every fusion kind shares one block shape, per stream (the DiT recipe, adaLN-Zero):

    n      = LN(x) * (1 + scale_1(t)) + shift_1(t)                  # AdaLN on both timesteps
    x'     = x + gate_1(t) * mix(n_video, n_audio)                  # Eq. 8 (residual)
    x''    = x' + gate_2(t) * MLP(LN(x') * (1 + scale_2(t)) + shift_2(t))

and fusion kinds differ only in `mix`, which reads the normalised *pre-bridge* states of both streams
(symmetric): DCA (Eq. 7-8) cross-attends each way; full attention (Eq. 9-10) attends over the
concatenation; additive fusion adds the other stream's projected, time-aligned features; one-way
cross-attention (V2A, A2V) cross-attends one way while the conditioning stream gets a self-attention
of the same shape. The gates start at zero, so an untrained bridge is exactly the identity.

The authors' released bridge (`config.RELEASED_BRIDGE`, ../shared/official-release.md) is the same block with
options: each stream's adaLN reads its own tower's time embedding (`condition="tower"`); norms, MLP and modulation
run at the tower's width with attention projecting to `width` (`stream_width="tower"`); attention rotates q and k
by a 1-D rotary table over each stream's flattened token index (`rotary`); the audio stream keeps Stable Audio's
global token (`audio_global_token`); additive fusion adds the other stream's global mean straight to the raw tokens,
with a 4-chunk modulation (gate, then the MLP's shift, scale, gate) and no pre-mix norm (`additive="global_mean"`);
released full attention scales its logits by 1 / head_dim (`full_attention_scale="release"`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor2_0, JointAttnProcessor2_0
from diffusers.models.embeddings import (
    TimestepEmbedding,
    Timesteps,
    apply_rotary_emb,
    get_1d_rotary_pos_embed,
    get_timestep_embedding,
)
from einops import reduce, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import BridgeConfig

# ----------------------------------------------------------------------------------------------------
# Per-token inputs of a mixer: time bias and rotary tables
# ----------------------------------------------------------------------------------------------------

#: (config, video stream width, audio stream width) -> mixer; stream widths are the widths the mixer's inputs have
MixerFactory = Callable[[BridgeConfig, int, int], nn.Module]
FUSIONS: dict[str, MixerFactory] = {}


@dataclass(frozen=True)
class TimeAxis:
    """Each token's time in latent video frames (`token_times`) and the per-head slopes of the time bias."""

    video: torch.Tensor  # (Nv,)
    audio: torch.Tensor  # (Na,)
    slopes: torch.Tensor  # (H,)

    def bias(self, query: str, key: str, batch_size: int, dtype: torch.dtype) -> torch.Tensor:
        """The additive attention mask of `query` tokens attending `key` tokens ("video", "audio" or "joint", the
        video tokens then the audio tokens): -slope_h * |t_q - t_k|, as (B * H, Nq, Nk) in the batch-major head
        order diffusers' attention processors view it in."""
        query_times, key_times = self._times(query), self._times(key)
        distance = (query_times[:, None] - key_times[None, :]).abs()  # (Nq, Nk)
        bias = -self.slopes[:, None, None] * distance  # (H, Nq, Nk)
        return bias.to(dtype).repeat(batch_size, 1, 1)  # (B * H, Nq, Nk)

    def _times(self, stream: str) -> torch.Tensor:
        return torch.cat([self.video, self.audio]) if stream == "joint" else getattr(self, stream)


@dataclass(frozen=True)
class RotaryTables:
    """1-D rotary tables (cos, sin), each (N, head_dim), over each stream's flattened token index: diffusers'
    `get_1d_rotary_pos_embed(head_dim, N, use_real=True)` (interleaved pairs), as the release builds them."""

    video: tuple[torch.Tensor, torch.Tensor]
    audio: tuple[torch.Tensor, torch.Tensor]

    @classmethod
    def build(cls, head_dim: int, num_video: int, num_audio: int, device: torch.device) -> RotaryTables:
        def table(length: int) -> tuple[torch.Tensor, torch.Tensor]:
            cos, sin = get_1d_rotary_pos_embed(head_dim, length, use_real=True)
            return cos.to(device), sin.to(device)

        return cls(video=table(num_video), audio=table(num_audio))


def _bias(time_axis: TimeAxis | None, query: str, key: str, like: torch.Tensor) -> torch.Tensor | None:
    return None if time_axis is None else time_axis.bias(query, key, like.shape[0], like.dtype)


def _rotary(rotary: RotaryTables | None, query: str, key: str) -> dict:
    """The rotary keyword arguments of one attention call (none without rotary, so diffusers' own processors,
    which take no such arguments, are called exactly as before)."""
    return {} if rotary is None else {"query_rotary": getattr(rotary, query), "key_rotary": getattr(rotary, key)}


def register_fusion(name: str) -> Callable[[MixerFactory], MixerFactory]:
    def register(factory: MixerFactory) -> MixerFactory:
        FUSIONS[name] = factory
        return factory

    return register


# ----------------------------------------------------------------------------------------------------
# Attention processors for the released options (rotary, 1 / head_dim logits)
# ----------------------------------------------------------------------------------------------------


def _split_heads(tokens: torch.Tensor, heads: int) -> torch.Tensor:
    # (B, N, H * Dh) -> (B, H, N, Dh)
    return tokens.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(tokens: torch.Tensor) -> torch.Tensor:
    # (B, H, N, Dh) -> (B, N, H * Dh)
    return tokens.transpose(1, 2).flatten(2)


def _mask_per_head(attention_mask: torch.Tensor | None, batch_size: int, heads: int) -> torch.Tensor | None:
    # (B * H, Nq, Nk) -> (B, H, Nq, Nk)
    return None if attention_mask is None else attention_mask.view(batch_size, heads, *attention_mask.shape[1:])


class RotaryAttnProcessor:
    """Attention of `hidden_states` over `encoder_hidden_states` (itself when None) with q rotated by
    `query_rotary` and k by `key_rotary` (diffusers' `apply_rotary_emb`, interleaved pairs, computed in float32),
    an optional additive mask (B * H, Nq, Nk), and logits scaled by `scale` (None: 1 / sqrt(head_dim))."""

    def __init__(self, scale: float | None = None) -> None:
        self.scale = scale

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        query_rotary=None,
        key_rotary=None,
    ) -> torch.Tensor:
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = _split_heads(attn.to_q(hidden_states), attn.heads)
        key = _split_heads(attn.to_k(context), attn.heads)
        value = _split_heads(attn.to_v(context), attn.heads)
        if query_rotary is not None:
            query, key = apply_rotary_emb(query, query_rotary), apply_rotary_emb(key, key_rotary)
        mask = _mask_per_head(attention_mask, hidden_states.shape[0], attn.heads)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=self.scale)
        return attn.to_out[0](_merge_heads(out))


class JointBridgeAttnProcessor(JointAttnProcessor2_0):
    """diffusers' JointAttnProcessor2_0, which ignores `attention_mask`, plus what the bridges may add over the
    joint sequence (the video tokens, then the audio tokens): an additive mask (B * H, Nv + Na, Nv + Na), each
    stream's part of q and k rotated by its own table, and logits scaled by `scale`. With none of these it is the
    parent itself. Covers what FullAttention builds: no q/k norms, both outputs projected."""

    def __init__(self, scale: float | None = None) -> None:
        super().__init__()
        self.scale = scale

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *args,
        query_rotary=None,
        key_rotary=None,
        **kwargs,
    ):
        if attention_mask is None and query_rotary is None and self.scale is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states)
        batch_size, num_video = hidden_states.shape[:2]
        parts = {
            "query": (attn.to_q(hidden_states), attn.add_q_proj(encoder_hidden_states)),
            "key": (attn.to_k(hidden_states), attn.add_k_proj(encoder_hidden_states)),
            "value": (attn.to_v(hidden_states), attn.add_v_proj(encoder_hidden_states)),
        }
        joint = {}
        for name, (video, audio) in parts.items():
            video, audio = _split_heads(video, attn.heads), _split_heads(audio, attn.heads)
            if query_rotary is not None and name != "value":  # in full attention both tables are (video, audio)
                video, audio = apply_rotary_emb(video, query_rotary[0]), apply_rotary_emb(audio, query_rotary[1])
            joint[name] = torch.cat([video, audio], dim=2)  # (B, H, Nv + Na, Dh)
        mask = _mask_per_head(attention_mask, batch_size, attn.heads)
        out = F.scaled_dot_product_attention(
            joint["query"], joint["key"], joint["value"], attn_mask=mask, scale=self.scale
        )
        out = _merge_heads(out)  # (B, Nv + Na, H * Dh)
        return attn.to_out[0](out[:, :num_video]), attn.to_add_out(out[:, num_video:])


def _logit_scale(config: BridgeConfig, joint: bool) -> float | None:
    """None (1 / sqrt(head_dim)), or the release's 1 / head_dim for its full attention."""
    if joint and config.full_attention_scale == "release":
        return 1.0 / (config.width // config.num_heads)
    return None


def _attention(config: BridgeConfig, query_width: int, key_width: int) -> Attention:
    """Multi-head attention with its own Q, K, V and output projections (`config.width` channels inside, back to
    `query_width` outside); cross-attention when called with context. diffusers' own processor unless rotary
    positions are on."""
    processor = RotaryAttnProcessor(_logit_scale(config, joint=False)) if config.rotary else AttnProcessor2_0()
    return Attention(
        query_dim=query_width,
        cross_attention_dim=None if key_width == query_width else key_width,
        heads=config.num_heads,
        dim_head=config.width // config.num_heads,
        bias=True,
        out_bias=True,
        processor=processor,
    )


# ----------------------------------------------------------------------------------------------------
# Mixers: the part of a block that differs between fusion kinds
# ----------------------------------------------------------------------------------------------------


class Mixer(nn.Module):
    """mix(video, audio, video_grid, time_axis, rotary) -> (update of video (B, Nv, Dv), update of audio (B, Na, Da)).

    `prenorm`: whether the mix reads each stream's modulated LayerNorm (6 modulation chunks a stream) or its raw
    tokens (4 chunks: the mix's gate, then the MLP's shift, scale and gate)."""

    prenorm = True

    def output_projections(self) -> list[nn.Linear]:
        """The linears that write the mix's result: zero, the mix adds nothing (the release's initialisation)."""
        raise NotImplementedError


@register_fusion("dca")
class DualCrossAttention(Mixer):
    """Eq. 7-8 both ways in parallel: video queries audio (A-to-V) and audio queries video (V-to-A)."""

    def __init__(self, config: BridgeConfig, video_width: int, audio_width: int) -> None:
        super().__init__()
        self.audio_to_video = _attention(config, video_width, audio_width)  # Q from video, K/V from audio
        self.video_to_audio = _attention(config, audio_width, video_width)  # Q from audio, K/V from video

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        video_grid: tuple[int, int, int],
        time_axis: TimeAxis | None = None,
        rotary: RotaryTables | None = None,
    ):
        return (
            self.audio_to_video(
                video,
                audio,
                attention_mask=_bias(time_axis, "video", "audio", video),
                **_rotary(rotary, "video", "audio"),
            ),
            self.video_to_audio(
                audio,
                video,
                attention_mask=_bias(time_axis, "audio", "video", audio),
                **_rotary(rotary, "audio", "video"),
            ),
        )

    def output_projections(self) -> list[nn.Linear]:
        return [self.audio_to_video.to_out[0], self.video_to_audio.to_out[0]]


@register_fusion("full_attention")
class FullAttention(Mixer):
    """Eq. 9-10: per-modality Q/K/V projections, one attention over the concatenated tokens, split back."""

    def __init__(self, config: BridgeConfig, video_width: int, audio_width: int) -> None:
        super().__init__()
        self.joint = Attention(
            query_dim=video_width,
            added_kv_proj_dim=audio_width,
            heads=config.num_heads,
            dim_head=config.width // config.num_heads,
            out_context_dim=audio_width,
            context_pre_only=False,
            bias=True,
            out_bias=True,
            processor=JointBridgeAttnProcessor(_logit_scale(config, joint=True)),
        )

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        video_grid: tuple[int, int, int],
        time_axis: TimeAxis | None = None,
        rotary: RotaryTables | None = None,
    ):
        # (video part, audio part) of the joint attention output; each stream's q and k rotated by its own table
        tables = {} if rotary is None else {"query_rotary": (rotary.video, rotary.audio)}
        return self.joint(video, audio, attention_mask=_bias(time_axis, "joint", "joint", video), **tables)

    def output_projections(self) -> list[nn.Linear]:
        return [self.joint.to_out[0], self.joint.to_add_out]


class TimeAlignedAdditive(Mixer):
    """Project the other stream and add it element-wise, aligned in time (SSVG-style, Figure 3 d).

    Video -> audio: project, average each latent frame's S tokens, resample F frames to Na steps.
    Audio -> video: project, resample Na steps to F frames, broadcast over each frame's S tokens.
    """

    def __init__(self, config: BridgeConfig, video_width: int, audio_width: int) -> None:
        super().__init__()
        self.video_proj = nn.Linear(video_width, audio_width)
        self.audio_proj = nn.Linear(audio_width, video_width)

    @staticmethod
    def _resample(sequence: torch.Tensor, length: int) -> torch.Tensor:
        # (B, T, D) -> (B, length, D) along time: averaged over each output step's span when shortening (point
        # sampling would skip most audio tokens, and with them short events), linearly interpolated when lengthening
        if sequence.shape[1] == length:
            return sequence
        mode = "area" if length < sequence.shape[1] else "linear"
        resampled = F.interpolate(
            sequence.transpose(1, 2), size=length, mode=mode, align_corners=False if mode == "linear" else None
        )
        return resampled.transpose(1, 2)

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        video_grid: tuple[int, int, int],
        time_axis: TimeAxis | None = None,
        rotary: RotaryTables | None = None,
    ):  # aligned by construction
        frames, height, width = video_grid
        video_per_frame = reduce(self.video_proj(video), "b (f s) d -> b f d", "mean", f=frames)
        to_audio = self._resample(video_per_frame, audio.shape[1])  # (B, Na, D)
        audio_per_frame = self._resample(self.audio_proj(audio), frames)  # (B, F, D)
        to_video = repeat(audio_per_frame, "b f d -> b (f s) d", s=height * width)  # (B, Nv, D)
        return to_video, to_audio

    def output_projections(self) -> list[nn.Linear]:
        return [self.video_proj, self.audio_proj]


class GlobalMeanAdditive(Mixer):
    """The release's additive fusion: each stream gets the other stream's mean over all its (raw, un-normalised)
    tokens, projected to its width, as one vector added to every token (a global, not time-aligned, signal)."""

    prenorm = False

    def __init__(self, config: BridgeConfig, video_width: int, audio_width: int) -> None:
        super().__init__()
        self.video_to_audio = nn.Linear(video_width, audio_width)
        self.audio_to_video = nn.Linear(audio_width, video_width)

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        video_grid: tuple[int, int, int],
        time_axis: TimeAxis | None = None,
        rotary: RotaryTables | None = None,
    ):
        # (B, N, D) -> (B, 1, D'), broadcast over the receiving stream's tokens by the gated residual
        return (
            self.audio_to_video(audio.mean(dim=1, keepdim=True)),
            self.video_to_audio(video.mean(dim=1, keepdim=True)),
        )

    def output_projections(self) -> list[nn.Linear]:
        return [self.video_to_audio, self.audio_to_video]


@register_fusion("additive")
def additive_fusion(config: BridgeConfig, video_width: int, audio_width: int) -> Mixer:
    kind = GlobalMeanAdditive if config.additive == "global_mean" else TimeAlignedAdditive
    return kind(config, video_width, audio_width)


class OneWayCrossAttention(Mixer):
    """ControlNet-style one-way fusion: the conditioned stream cross-attends the conditioning stream, which
    refines itself with a self-attention block of the same shape (§3.3, "Unidirectional Cross-Attention")."""

    def __init__(self, config: BridgeConfig, video_width: int, audio_width: int, *, conditioned: str) -> None:
        super().__init__()
        self.conditioned = conditioned
        if conditioned == "audio":
            self.cross = _attention(config, audio_width, video_width)
            self.self_attention = _attention(config, video_width, video_width)
        else:
            self.cross = _attention(config, video_width, audio_width)
            self.self_attention = _attention(config, audio_width, audio_width)

    def forward(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        video_grid: tuple[int, int, int],
        time_axis: TimeAxis | None = None,
        rotary: RotaryTables | None = None,
    ):
        if self.conditioned == "audio":  # V2A: audio generated conditioned on video
            return (
                self.self_attention(
                    video, attention_mask=_bias(time_axis, "video", "video", video), **_rotary(rotary, "video", "video")
                ),
                self.cross(
                    audio,
                    video,
                    attention_mask=_bias(time_axis, "audio", "video", audio),
                    **_rotary(rotary, "audio", "video"),
                ),
            )
        return (
            self.cross(
                video,
                audio,
                attention_mask=_bias(time_axis, "video", "audio", video),  # A2V
                **_rotary(rotary, "video", "audio"),
            ),
            self.self_attention(
                audio, attention_mask=_bias(time_axis, "audio", "audio", audio), **_rotary(rotary, "audio", "audio")
            ),
        )

    def output_projections(self) -> list[nn.Linear]:
        return [self.cross.to_out[0], self.self_attention.to_out[0]]


@register_fusion("v2a")
def video_to_audio(config: BridgeConfig, video_width: int, audio_width: int) -> OneWayCrossAttention:
    return OneWayCrossAttention(config, video_width, audio_width, conditioned="audio")


@register_fusion("a2v")
def audio_to_video(config: BridgeConfig, video_width: int, audio_width: int) -> OneWayCrossAttention:
    return OneWayCrossAttention(config, video_width, audio_width, conditioned="video")


# ----------------------------------------------------------------------------------------------------
# The block
# ----------------------------------------------------------------------------------------------------


class BridgeTimestepEmbedding(nn.Module):
    """Embeds both towers' timesteps into one condition (B, C) that every stream of every bridge reads.

    t_video is on Wan's 0..1000 scale, t_audio on Stable Audio's 0..1 scale; both get the same sinusoidal
    frequencies after t_audio is put on the 0..1000 scale, then separate MLPs, summed. Because both
    timesteps reach both streams, training with independent timesteps needs no change here.
    """

    def __init__(self, dim: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequencies = Timesteps(frequency_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.video_embedder = TimestepEmbedding(frequency_dim, dim)
        self.audio_embedder = TimestepEmbedding(frequency_dim, dim)

    def forward(self, t_video: torch.Tensor, t_audio: torch.Tensor) -> torch.Tensor:
        dtype = self.video_embedder.linear_1.weight.dtype
        video = self.video_embedder(self.frequencies(t_video).to(dtype))
        audio = self.audio_embedder(self.frequencies(t_audio * 1000.0).to(dtype))
        return video + audio


class StreamModulation(nn.Module):
    """adaLN-Zero: shift, scale and gate for the mix step (or the mix's gate alone) and for the MLP step."""

    def __init__(self, width: int, condition_dim: int, chunks: int = 6) -> None:
        super().__init__()
        self.chunks = chunks
        self.linear = nn.Linear(condition_dim, chunks * width)

    def forward(self, condition: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # (B, C) -> chunks x (B, 1, D)
        return self.linear(F.silu(condition)).unsqueeze(1).chunk(self.chunks, dim=-1)


class BridgeStream(nn.Module):
    """One stream's side of a bridge block: width adapters (stream_width "bridge" only), modulation, MLP."""

    def __init__(self, tower_width: int, config: BridgeConfig, condition_dim: int, modulation_chunks: int) -> None:
        super().__init__()
        width = config.width if config.stream_width == "bridge" else tower_width
        self.width = width
        self.adapted = tower_width != width
        # no bias on the way out: a zero update must stay exactly zero
        self.proj_in = nn.Linear(tower_width, width) if self.adapted else nn.Identity()
        self.proj_out = nn.Linear(width, tower_width, bias=False) if self.adapted else nn.Identity()
        self.modulation = StreamModulation(width, condition_dim, modulation_chunks)
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(width, mult=config.mlp_ratio, activation_fn="gelu-approximate")

    def finish(self, tokens: torch.Tensor, inner: torch.Tensor, mixed: torch.Tensor, mods) -> torch.Tensor:
        """Gated mix residual, then the modulated MLP with its gated residual; back to the tower width.
        `mods` ends with (gate of the mix, shift, scale and gate of the MLP)."""
        gate_mix, shift_mlp, scale_mlp, gate_mlp = mods[-4:]
        updated = inner + gate_mix * mixed  # Eq. 8
        updated = updated + gate_mlp * self.mlp(self.norm(updated) * (1 + scale_mlp) + shift_mlp)
        if not self.adapted:
            return updated
        return tokens + self.proj_out(updated - inner)


#: time encoding frequencies: from pi rad per latent frame (period 2 frames) down to pi / 64 (period 128 frames)
TIME_ENCODING_MAX_PERIOD = 64


def token_times(video_grid: tuple[int, int, int], audio_length: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Each token's time in latent video frames: (Nv,) the frame index of each (frame-major) video token, and
    (Na,) the audio tokens spread evenly over the same clip (token centres, so both span [-0.5, F - 0.5])."""
    frames, height, width = video_grid
    video = torch.arange(frames, device=device, dtype=torch.float32).repeat_interleave(height * width)
    audio = (torch.arange(audio_length, device=device, dtype=torch.float32) + 0.5) * frames / audio_length - 0.5
    return video, audio


def time_encoding(times: torch.Tensor, width: int) -> torch.Tensor:
    """(N,) times -> (N, width) fixed sinusoids, frequencies geometric from pi to pi / TIME_ENCODING_MAX_PERIOD."""
    return get_timestep_embedding(
        times, width, downscale_freq_shift=0, scale=torch.pi, max_period=TIME_ENCODING_MAX_PERIOD
    )


def space_encoding(video_grid: tuple[int, int, int], width: int, device: torch.device) -> torch.Tensor:
    """(Nv, width) each (frame-major) video token's row (first half of the channels) and column (second half), as
    `time_encoding` encodes a time; the same for every frame."""
    frames, height, width_tokens = video_grid
    half = width // 2
    rows = time_encoding(torch.arange(height, device=device, dtype=torch.float32), half)  # (H, half)
    columns = time_encoding(torch.arange(width_tokens, device=device, dtype=torch.float32), width - half)  # (W, rest)
    grid = torch.cat(
        [repeat(rows, "h c -> h w c", w=width_tokens), repeat(columns, "w c -> h w c", h=height)], dim=-1
    )  # (H, W, width)
    return repeat(grid, "h w c -> (f h w) c", f=frames)


class BridgeBlock(nn.Module):
    def __init__(
        self,
        mixer: Mixer,
        config: BridgeConfig,
        video_width: int,
        audio_width: int,
        video_condition_dim: int,
        audio_condition_dim: int,
    ) -> None:
        super().__init__()
        chunks = 6 if mixer.prenorm else 4
        self.video = BridgeStream(video_width, config, video_condition_dim, chunks)
        self.audio = BridgeStream(audio_width, config, audio_condition_dim, chunks)
        self.mixer = mixer
        self.time_encoding = config.time_encoding
        self.time_bias = config.time_bias
        self.space_encoding = config.space_encoding
        self.num_heads = config.num_heads

    def _mix_input(self, stream: BridgeStream, inner: torch.Tensor, mods) -> torch.Tensor:
        if not self.mixer.prenorm:  # the release's additive fusion reads the raw tokens
            return inner
        shift, scale = mods[0], mods[1]
        return stream.norm(inner) * (1 + scale) + shift

    def forward(
        self,
        video_tokens: torch.Tensor,  # (B, Nv, Dv)
        audio_tokens: torch.Tensor,  # (B, Na, Da), with or without Stable Audio's global token (audio_global_token)
        video_condition: torch.Tensor,  # (B, C_v): what the video stream's adaLN reads
        audio_condition: torch.Tensor,  # (B, C_a) (or (1, C_a), broadcast)
        video_grid: tuple[int, int, int],
        rotary: RotaryTables | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        video_inner, audio_inner = self.video.proj_in(video_tokens), self.audio.proj_in(audio_tokens)
        video_mods, audio_mods = self.video.modulation(video_condition), self.audio.modulation(audio_condition)
        # both directions read the (normalised) pre-bridge states of both streams (symmetric)
        video_normed = self._mix_input(self.video, video_inner, video_mods)
        audio_normed = self._mix_input(self.audio, audio_inner, audio_mods)
        time_axis = None
        if self.time_encoding or self.time_bias:
            video_times, audio_times = token_times(video_grid, audio_normed.shape[1], audio_normed.device)
        if self.time_encoding:  # both streams learn when each token is, in one time axis
            width = video_normed.shape[-1]
            video_normed = video_normed + time_encoding(video_times, width).to(video_normed.dtype)
            audio_normed = audio_normed + time_encoding(audio_times, width).to(audio_normed.dtype)
        if self.space_encoding:  # the video stream learns where each token is in its frame
            encoding = space_encoding(video_grid, video_normed.shape[-1], video_normed.device)
            video_normed = video_normed + encoding.to(video_normed.dtype)
        if self.time_bias:  # attention prefers tokens close in time
            slopes = self.time_bias / 2.0 ** torch.arange(self.num_heads, device=video_times.device)
            time_axis = TimeAxis(video_times, audio_times, slopes)
        video_mixed, audio_mixed = self.mixer(video_normed, audio_normed, video_grid, time_axis, rotary)
        return (
            self.video.finish(video_tokens, video_inner, video_mixed, video_mods),
            self.audio.finish(audio_tokens, audio_inner, audio_mixed, audio_mods),
        )


class BridgeStack(nn.Module):
    """All bridges of a model plus, with `condition="joint"`, their shared timestep embedding; empty for "none".

    `video_condition_dim` / `audio_condition_dim`: the widths of the towers' own time embeddings, which each
    stream's adaLN reads with `condition="tower"` (default: the tower widths, as Wan's temb and Stable Audio's
    time embedding are)."""

    def __init__(
        self,
        config: BridgeConfig,
        *,
        video_width: int,
        audio_width: int,
        video_condition_dim: int | None = None,
        audio_condition_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        self._rotary_cache: dict[tuple, RotaryTables] = {}
        self.timestep_embedding = None
        if config.fusion == "none":
            self.blocks = nn.ModuleList()
            return
        if config.condition == "joint":
            self.timestep_embedding = BridgeTimestepEmbedding(config.timestep_embed_dim)
            video_condition_dim = audio_condition_dim = config.timestep_embed_dim
        make_mixer = FUSIONS[config.fusion]
        # the widths the mixers see: the bridge width, or each tower's own
        mix_video, mix_audio = (
            (config.width, config.width) if config.stream_width == "bridge" else (video_width, audio_width)
        )
        self.blocks = nn.ModuleList(
            BridgeBlock(
                make_mixer(config, mix_video, mix_audio),
                config,
                video_width,
                audio_width,
                video_condition_dim or video_width,
                audio_condition_dim or audio_width,
            )
            for _ in range(config.num_bridges)
        )
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Start as the identity. "dit": xavier-uniform linears with zero biases (as DiT), then every gate zero.
        "release": xavier q/k/v with zero biases, zero output projections and MLP outputs, PyTorch's default
        initialisation for the rest (modulation, MLP input)."""
        if self.config.init == "release":
            for block in self.blocks:
                for module in block.mixer.modules():
                    if isinstance(module, nn.Linear):
                        nn.init.xavier_uniform_(module.weight)
                        nn.init.zeros_(module.bias)
                outputs = block.mixer.output_projections()
                for stream in (block.video, block.audio):
                    outputs.append(stream.mlp.net[2])
                    for adapter in (stream.proj_in, stream.proj_out):
                        if isinstance(adapter, nn.Linear):
                            nn.init.xavier_uniform_(adapter.weight)
                for linear in outputs:
                    nn.init.zeros_(linear.weight)
                    nn.init.zeros_(linear.bias)
            return
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            for stream in (block.video, block.audio):
                nn.init.zeros_(stream.modulation.linear.weight)
                nn.init.zeros_(stream.modulation.linear.bias)

    def condition(
        self,
        t_video: torch.Tensor,
        t_audio: torch.Tensor,
        video_time_embedding: torch.Tensor | None = None,
        audio_time_embedding: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(what the video streams' adaLN reads, what the audio streams' reads); None without bridges."""
        if not self.blocks:
            return None
        if self.config.condition == "tower":
            return video_time_embedding, audio_time_embedding
        joint = self.timestep_embedding(t_video, t_audio)
        return joint, joint

    def rotary_tables(self, num_video: int, num_audio: int, device: torch.device) -> RotaryTables | None:
        """The rotary tables for these stream lengths (made once per length and device), or None without rotary."""
        if not self.config.rotary:
            return None
        key = (num_video, num_audio, str(device))
        if key not in self._rotary_cache:
            head_dim = self.config.width // self.config.num_heads
            self._rotary_cache[key] = RotaryTables.build(head_dim, num_video, num_audio, device)
        return self._rotary_cache[key]

    def run(
        self,
        index: int,
        video_tokens: torch.Tensor,
        audio_tokens: torch.Tensor,
        condition: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
        video_grid: tuple[int, int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bridge `index`; `condition` is one (B, C) tensor both streams read, or (video's, audio's)."""
        block = self.blocks[index]
        video_condition, audio_condition = condition if isinstance(condition, tuple) else (condition, condition)
        rotary = self.rotary_tables(video_tokens.shape[1], audio_tokens.shape[1], video_tokens.device)
        inputs = (video_tokens, audio_tokens, video_condition, audio_condition, video_grid, rotary)
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *inputs, use_reentrant=False)
        return block(*inputs)
