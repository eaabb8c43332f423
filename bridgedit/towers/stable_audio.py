"""Audio tower over diffusers' StableAudioDiTModel (Stable Audio Open 1.0, v-prediction, cosine schedule).

Dims: B batch, C latent channels, T audio latent frames, D width, L text(+duration) tokens.
The DiT prepends one global token (duration embedding + timestep embedding) to the T audio tokens
(`prefix_tokens=1`); bridges see it only with `BridgeConfig.audio_global_token` (the authors' release). The glue below mirrors `StableAudioDiTModel.forward`
(diffusers 0.42); `tests/test_towers.py` checks it against that forward() with `torch.equal`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import StableAudioDiTModel
from diffusers.models.embeddings import get_1d_rotary_pos_embed

from .base import Tower, TowerState


@dataclass
class AudioConditions:
    """Stable Audio's conditioning, as StableAudioPipeline builds it.

    text_states: (B, L, C) the cross-attention states: T5 text states (projected) followed by the
        seconds_start and seconds_total embeddings.
    global_states: (B, 1, 2C) the seconds_start and seconds_total embeddings side by side.
    text_mask: optional (B, L) mask of `text_states` (1 = keep); StableAudioPipeline passes none.
    """

    text_states: torch.Tensor
    global_states: torch.Tensor
    text_mask: torch.Tensor | None = None


def stable_audio_rotary_embedding(
    transformer: StableAudioDiTModel, num_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding over the global token plus `num_tokens` audio tokens, as StableAudioPipeline makes it."""
    return get_1d_rotary_pos_embed(
        transformer.config.attention_head_dim // 2, num_tokens + 1, use_real=True, repeat_interleave_real=False
    )


class StableAudioTower(Tower):
    blocks_attribute = "transformer_blocks"

    def __init__(self, transformer: StableAudioDiTModel) -> None:
        super().__init__(transformer)

    @property
    def width(self) -> int:
        return self.transformer.inner_dim

    def prepare(self, latents: torch.Tensor, timestep: torch.Tensor, conditions: AudioConditions) -> TowerState:
        model = self.transformer
        if timestep.ndim != 1:
            raise ValueError(f"audio timestep must have shape (B,); got {tuple(timestep.shape)}")
        num_tokens = latents.shape[2]

        cross_attention_states = model.cross_attention_proj(conditions.text_states)
        global_states = model.global_proj(conditions.global_states)
        time_states = model.timestep_proj(model.time_proj(timestep.to(model.dtype)))
        global_states = global_states + time_states.unsqueeze(1)  # (B, 1, D)

        hidden_states = model.preprocess_conv(latents) + latents
        hidden_states = model.proj_in(hidden_states.transpose(1, 2))  # (B, C, T) -> (B, T, D)
        hidden_states = torch.cat([global_states, hidden_states], dim=-2)  # (B, 1 + T, D)

        rotary_embedding = stable_audio_rotary_embedding(model, num_tokens)
        rotary_embedding = tuple(r.to(latents.device) for r in rotary_embedding)
        return TowerState(
            hidden_states=hidden_states,
            # order of StableAudioDiTBlock.forward after hidden_states; no self-attention mask (as the pipeline)
            block_inputs=(None, cross_attention_states, conditions.text_mask, rotary_embedding),
            grid=(num_tokens,),
            prefix_tokens=1,
            time_embedding=time_states,  # (B, D): what the release's audio-stream adaLN reads
        )

    def finalize(self, state: TowerState) -> torch.Tensor:
        model = self.transformer
        hidden_states = model.proj_out(state.hidden_states)
        # (B, 1 + T, C) -> (B, C, T), dropping the global token
        hidden_states = hidden_states.transpose(1, 2)[:, :, 1:]
        return model.postprocess_conv(hidden_states) + hidden_states
