"""Video tower over diffusers' WanTransformer3DModel (Wan 2.1, flow matching).

Dims: B batch, C latent channels, F latent frames, H/W latent height/width, D width, L text tokens.
The glue below mirrors `WanTransformer3DModel.forward` (diffusers 0.42) line for line around the
block loop; `tests/test_towers.py` checks it against that forward() with `torch.equal`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import WanTransformer3DModel

from .base import Tower, TowerState


@dataclass
class VideoConditions:
    """text_states: (B, L, text_dim), UMT5 states, zero after each prompt's true length (as WanPipeline)."""

    text_states: torch.Tensor


class WanVideoTower(Tower):
    blocks_attribute = "blocks"

    def __init__(self, transformer: WanTransformer3DModel) -> None:
        if transformer.config.image_dim is not None:
            raise ValueError("WanVideoTower wraps text-to-video Wan models; this one expects image embeddings (I2V)")
        super().__init__(transformer)

    @property
    def width(self) -> int:
        return self.transformer.config.num_attention_heads * self.transformer.config.attention_head_dim

    def prepare(self, latents: torch.Tensor, timestep: torch.Tensor, conditions: VideoConditions) -> TowerState:
        model = self.transformer
        if timestep.ndim != 1:
            raise ValueError(f"video timestep must have shape (B,); got {tuple(timestep.shape)}")
        batch_size, _, num_frames, height, width = latents.shape
        p_t, p_h, p_w = model.config.patch_size
        grid = (num_frames // p_t, height // p_h, width // p_w)

        rotary_emb = model.rope(latents)
        # (B, D, F', H', W') -> (B, N, D), N = F' * H' * W'
        hidden_states = model.patch_embedding(latents).flatten(2).transpose(1, 2).contiguous()

        temb, timestep_proj, text_states, _ = model.condition_embedder(timestep, conditions.text_states, None)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))  # (B, 6, D): shift/scale/gate x 2

        return TowerState(
            hidden_states=hidden_states,
            block_inputs=(text_states, timestep_proj, rotary_emb),
            grid=grid,
            time_embedding=temb,  # (B, D): what the release's video-stream adaLN reads
            extras={"temb": temb, "batch_size": batch_size},
        )

    def finalize(self, state: TowerState) -> torch.Tensor:
        model = self.transformer
        hidden_states, temb = state.hidden_states, state.extras["temb"]
        p_t, p_h, p_w = model.config.patch_size
        frames, height, width = state.grid

        shift, scale = (model.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        shift, scale = shift.to(hidden_states.device), scale.to(hidden_states.device)
        hidden_states = (model.norm_out(hidden_states.float()) * (1 + scale) + shift).type_as(hidden_states)
        hidden_states = model.proj_out(hidden_states)  # (B, N, p_t * p_h * p_w * C)

        # unpatchify: (B, F', H', W', p_t, p_h, p_w, C) -> (B, C, F' p_t, H' p_h, W' p_w)
        hidden_states = hidden_states.reshape(state.extras["batch_size"], frames, height, width, p_t, p_h, p_w, -1)
        hidden_states = hidden_states.permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hidden_states.flatten(6, 7).flatten(4, 5).flatten(2, 3)
