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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention, AttnProcessor2_0, JointAttnProcessor2_0
from diffusers.models.embeddings import TimestepEmbedding, Timesteps, get_timestep_embedding
from einops import reduce, repeat
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import BridgeConfig

# ----------------------------------------------------------------------------------------------------
# Mixers: the part of a block that differs between fusion kinds
# ----------------------------------------------------------------------------------------------------

MixerFactory = Callable[[int, int], nn.Module]
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


def _bias(time_axis: TimeAxis | None, query: str, key: str, like: torch.Tensor) -> torch.Tensor | None:
    return None if time_axis is None else time_axis.bias(query, key, like.shape[0], like.dtype)


def register_fusion(name: str) -> Callable[[MixerFactory], MixerFactory]:
    def register(factory: MixerFactory) -> MixerFactory:
        FUSIONS[name] = factory
        return factory

    return register


def _attention(width: int, num_heads: int) -> Attention:
    """Multi-head attention with its own Q, K, V and output projections; cross-attention when called with context."""
    return Attention(
        query_dim=width, heads=num_heads, dim_head=width // num_heads, bias=True, out_bias=True,
        processor=AttnProcessor2_0(),
    )


@register_fusion("dca")
class DualCrossAttention(nn.Module):
    """Eq. 7-8 both ways in parallel: video queries audio (A-to-V) and audio queries video (V-to-A)."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.audio_to_video = _attention(width, num_heads)  # Q from video, K/V from audio
        self.video_to_audio = _attention(width, num_heads)  # Q from audio, K/V from video

    def forward(self, video: torch.Tensor, audio: torch.Tensor, video_grid: tuple[int, int, int],
                time_axis: TimeAxis | None = None):
        return (self.audio_to_video(video, audio, attention_mask=_bias(time_axis, "video", "audio", video)),
                self.video_to_audio(audio, video, attention_mask=_bias(time_axis, "audio", "video", audio)))


class MaskedJointAttnProcessor(JointAttnProcessor2_0):
    """diffusers' JointAttnProcessor2_0, which ignores `attention_mask`, plus an additive mask over the joint
    sequence (B * H, Nv + Na, Nv + Na); without a mask it is the parent itself. Covers what FullAttention builds:
    no q/k norms, both outputs projected."""

    def __call__(self, attn: Attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 attention_mask: torch.Tensor | None = None, *args, **kwargs):
        if attention_mask is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states)
        batch_size, num_video = hidden_states.shape[:2]

        def heads(tokens: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, H, N, D / H)
            return tokens.view(batch_size, -1, attn.heads, tokens.shape[-1] // attn.heads).transpose(1, 2)

        query = torch.cat([heads(attn.to_q(hidden_states)), heads(attn.add_q_proj(encoder_hidden_states))], dim=2)
        key = torch.cat([heads(attn.to_k(hidden_states)), heads(attn.add_k_proj(encoder_hidden_states))], dim=2)
        value = torch.cat([heads(attn.to_v(hidden_states)), heads(attn.add_v_proj(encoder_hidden_states))], dim=2)
        mask = attention_mask.view(batch_size, attn.heads, *attention_mask.shape[1:])  # (B, H, N, N)
        joint = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        joint = joint.transpose(1, 2).reshape(batch_size, joint.shape[2], -1)  # (B, Nv + Na, D)
        return attn.to_out[0](joint[:, :num_video]), attn.to_add_out(joint[:, num_video:])


@register_fusion("full_attention")
class FullAttention(nn.Module):
    """Eq. 9-10: per-modality Q/K/V projections, one attention over the concatenated tokens, split back."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.joint = Attention(
            query_dim=width, added_kv_proj_dim=width, heads=num_heads, dim_head=width // num_heads, out_dim=width,
            context_pre_only=False, bias=True, out_bias=True, processor=MaskedJointAttnProcessor(),
        )

    def forward(self, video: torch.Tensor, audio: torch.Tensor, video_grid: tuple[int, int, int],
                time_axis: TimeAxis | None = None):
        # (video part, audio part) of the joint attention output
        return self.joint(video, audio, attention_mask=_bias(time_axis, "joint", "joint", video))


@register_fusion("additive")
class AdditiveFusion(nn.Module):
    """Project the other stream and add it element-wise, aligned in time (SSVG-style, Figure 3 d).

    Video -> audio: project, average each latent frame's S tokens, resample F frames to Na steps.
    Audio -> video: project, resample Na steps to F frames, broadcast over each frame's S tokens.
    """

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.video_proj = nn.Linear(width, width)
        self.audio_proj = nn.Linear(width, width)

    @staticmethod
    def _resample(sequence: torch.Tensor, length: int) -> torch.Tensor:
        # (B, T, D) -> (B, length, D) along time: averaged over each output step's span when shortening (point
        # sampling would skip most audio tokens, and with them short events), linearly interpolated when lengthening
        if sequence.shape[1] == length:
            return sequence
        mode = "area" if length < sequence.shape[1] else "linear"
        resampled = F.interpolate(sequence.transpose(1, 2), size=length, mode=mode,
                                  align_corners=False if mode == "linear" else None)
        return resampled.transpose(1, 2)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, video_grid: tuple[int, int, int],
                time_axis: TimeAxis | None = None):  # aligned in time by construction: no bias needed
        frames, height, width = video_grid
        video_per_frame = reduce(self.video_proj(video), "b (f s) d -> b f d", "mean", f=frames)
        to_audio = self._resample(video_per_frame, audio.shape[1])  # (B, Na, D)
        audio_per_frame = self._resample(self.audio_proj(audio), frames)  # (B, F, D)
        to_video = repeat(audio_per_frame, "b f d -> b (f s) d", s=height * width)  # (B, Nv, D)
        return to_video, to_audio


class OneWayCrossAttention(nn.Module):
    """ControlNet-style one-way fusion: the conditioned stream cross-attends the conditioning stream, which
    refines itself with a self-attention block of the same shape (§3.3, "Unidirectional Cross-Attention")."""

    def __init__(self, width: int, num_heads: int, *, conditioned: str) -> None:
        super().__init__()
        self.conditioned = conditioned
        self.cross = _attention(width, num_heads)
        self.self_attention = _attention(width, num_heads)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, video_grid: tuple[int, int, int],
                time_axis: TimeAxis | None = None):
        if self.conditioned == "audio":  # V2A: audio generated conditioned on video
            return (self.self_attention(video, attention_mask=_bias(time_axis, "video", "video", video)),
                    self.cross(audio, video, attention_mask=_bias(time_axis, "audio", "video", audio)))
        return (self.cross(video, audio, attention_mask=_bias(time_axis, "video", "audio", video)),  # A2V
                self.self_attention(audio, attention_mask=_bias(time_axis, "audio", "audio", audio)))


@register_fusion("v2a")
def video_to_audio(width: int, num_heads: int) -> OneWayCrossAttention:
    return OneWayCrossAttention(width, num_heads, conditioned="audio")


@register_fusion("a2v")
def audio_to_video(width: int, num_heads: int) -> OneWayCrossAttention:
    return OneWayCrossAttention(width, num_heads, conditioned="video")


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
    """adaLN-Zero: shift, scale and gate for the mix step and the MLP step of one stream."""

    def __init__(self, width: int, condition_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(condition_dim, 6 * width)

    def forward(self, condition: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # (B, C) -> 6 x (B, 1, D)
        return self.linear(F.silu(condition)).unsqueeze(1).chunk(6, dim=-1)


class BridgeStream(nn.Module):
    """One stream's side of a bridge block: width adapters, modulation, MLP."""

    def __init__(self, tower_width: int, config: BridgeConfig) -> None:
        super().__init__()
        width = config.width
        self.adapted = tower_width != width
        # no bias on the way out: a zero update must stay exactly zero
        self.proj_in = nn.Linear(tower_width, width) if self.adapted else nn.Identity()
        self.proj_out = nn.Linear(width, tower_width, bias=False) if self.adapted else nn.Identity()
        self.modulation = StreamModulation(width, config.timestep_embed_dim)
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(width, mult=config.mlp_ratio, activation_fn="gelu-approximate")

    def finish(self, tokens: torch.Tensor, inner: torch.Tensor, mixed: torch.Tensor, mods) -> torch.Tensor:
        """Gated mix residual, then the modulated MLP with its gated residual; back to the tower width."""
        _, _, gate_mix, shift_mlp, scale_mlp, gate_mlp = mods
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
    return get_timestep_embedding(times, width, downscale_freq_shift=0, scale=torch.pi,
                                  max_period=TIME_ENCODING_MAX_PERIOD)


class BridgeBlock(nn.Module):
    def __init__(self, mixer: nn.Module, config: BridgeConfig, video_width: int, audio_width: int) -> None:
        super().__init__()
        self.video = BridgeStream(video_width, config)
        self.audio = BridgeStream(audio_width, config)
        self.mixer = mixer
        self.time_encoding = config.time_encoding
        self.time_bias = config.time_bias
        self.num_heads = config.num_heads

    def forward(
        self,
        video_tokens: torch.Tensor,  # (B, Nv, Dv)
        audio_tokens: torch.Tensor,  # (B, Na, Da), without Stable Audio's global token
        condition: torch.Tensor,  # (B, C)
        video_grid: tuple[int, int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        video_inner, audio_inner = self.video.proj_in(video_tokens), self.audio.proj_in(audio_tokens)
        video_mods, audio_mods = self.video.modulation(condition), self.audio.modulation(condition)
        # both directions read the normalised pre-bridge states of both streams (symmetric)
        video_normed = self.video.norm(video_inner) * (1 + video_mods[1]) + video_mods[0]
        audio_normed = self.audio.norm(audio_inner) * (1 + audio_mods[1]) + audio_mods[0]
        time_axis = None
        if self.time_encoding or self.time_bias:
            video_times, audio_times = token_times(video_grid, audio_normed.shape[1], audio_normed.device)
        if self.time_encoding:  # both streams learn when each token is, in one time axis
            width = video_normed.shape[-1]
            video_normed = video_normed + time_encoding(video_times, width).to(video_normed.dtype)
            audio_normed = audio_normed + time_encoding(audio_times, width).to(audio_normed.dtype)
        if self.time_bias:  # attention prefers tokens close in time
            slopes = self.time_bias / 2.0 ** torch.arange(self.num_heads, device=video_times.device)
            time_axis = TimeAxis(video_times, audio_times, slopes)
        video_mixed, audio_mixed = self.mixer(video_normed, audio_normed, video_grid, time_axis)
        return (
            self.video.finish(video_tokens, video_inner, video_mixed, video_mods),
            self.audio.finish(audio_tokens, audio_inner, audio_mixed, audio_mods),
        )


class BridgeStack(nn.Module):
    """All bridges of a model plus their shared timestep embedding; empty for fusion "none"."""

    def __init__(self, config: BridgeConfig, *, video_width: int, audio_width: int) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        if config.fusion == "none":
            self.timestep_embedding = None
            self.blocks = nn.ModuleList()
            return
        make_mixer = FUSIONS[config.fusion]
        self.timestep_embedding = BridgeTimestepEmbedding(config.timestep_embed_dim)
        self.blocks = nn.ModuleList(
            BridgeBlock(make_mixer(config.width, config.num_heads), config, video_width, audio_width)
            for _ in range(config.num_bridges)
        )
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier-uniform linears with zero biases (as DiT), then zero every gate: the bridge starts as identity."""
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            for stream in (block.video, block.audio):
                nn.init.zeros_(stream.modulation.linear.weight)
                nn.init.zeros_(stream.modulation.linear.bias)

    def condition(self, t_video: torch.Tensor, t_audio: torch.Tensor) -> torch.Tensor | None:
        if self.timestep_embedding is None:
            return None
        return self.timestep_embedding(t_video, t_audio)

    def run(
        self,
        index: int,
        video_tokens: torch.Tensor,
        audio_tokens: torch.Tensor,
        condition: torch.Tensor,
        video_grid: tuple[int, int, int],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        block = self.blocks[index]
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, video_tokens, audio_tokens, condition, video_grid, use_reentrant=False)
        return block(video_tokens, audio_tokens, condition, video_grid)
