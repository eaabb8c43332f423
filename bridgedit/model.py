"""BridgeDiT (§3.3, Eq. 3): a video tower and an audio tower in lockstep, joined by bridge blocks.

    (video_pred, audio_pred) = BridgeDiT(x_V(t_V), x_A(t_A), t_V, t_A, T_V, T_A)

The network predicts and knows nothing of schedules or guidance: Wan's flow-matching velocity
(target eps_V - x_V, Eq. 6) and Stable Audio's v (target alpha eps_A - sigma x_A, Eq. 5), each on its
own timestep scale (t_V in 0..1000, t_A in 0..1). The two timesteps are independent inputs.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from diffusers import StableAudioDiTModel, WanTransformer3DModel
from torch import nn

from .bridge import BridgeStack
from .config import ModelConfig
from .parallel import own_tokens, whole_tokens
from .towers import AudioConditions, StableAudioTower, Tower, TowerState, VideoConditions, WanVideoTower

if TYPE_CHECKING:
    from .diffusion.step_cache import StepCache


def _requires_grad(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def _any_tensor_requires_grad(*values) -> bool:
    tensors = []
    for value in values:
        if isinstance(value, torch.Tensor):
            tensors.append(value)
        elif hasattr(value, "__dataclass_fields__"):
            tensors.extend(v for v in vars(value).values() if isinstance(v, torch.Tensor))
    return any(t.requires_grad for t in tensors)


@dataclass
class _GradFrontier:
    """Whether a stream's activations already depend on something trainable (so its graph must be kept)."""

    enabled: bool  # grad mode when forward() was called
    started: bool

    def context(self, module_trainable: bool):
        """Grad mode for the next module; tower blocks before the first trainable module build no graph."""
        active = self.enabled and (self.started or module_trainable)
        self.started = active
        return nullcontext() if active else torch.no_grad()


class BridgeDiT(nn.Module):
    def __init__(
        self,
        video_transformer: WanTransformer3DModel,
        audio_transformer: StableAudioDiTModel,
        config: ModelConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.video_tower = WanVideoTower(video_transformer)
        self.audio_tower = StableAudioTower(audio_transformer)
        self.config.bridge.check_against_towers(self.video_tower.num_blocks, self.audio_tower.num_blocks)
        self.bridges = BridgeStack(
            self.config.bridge,
            video_width=self.video_tower.width,
            audio_width=self.audio_tower.width,
            video_condition_dim=self.video_tower.time_embedding_dim,
            audio_condition_dim=self.audio_tower.time_embedding_dim,
        )
        # the mesh the video tokens are split over under sequence parallel sampling (`parallel.enable_sequence_parallel`;
        # None: unsplit): the bridges see them whole
        self.video_token_mesh = None
        self.apply_trainable_policy()

    # ------------------------------------------------------------------------------------------------
    # Freezing: selected by module, never by parameter name
    # ------------------------------------------------------------------------------------------------

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules the freezing policy trains, by stable name (also the checkpoint's sections)."""
        policy = self.config.trainable
        modules: dict[str, nn.Module] = {"bridges": self.bridges}
        if policy.policy == "towers":
            modules.update(video_tower=self.video_tower, audio_tower=self.audio_tower)
        else:
            for name, tower in (("video", self.video_tower), ("audio", self.audio_tower)):
                for index in policy.tower_blocks(name, tower.num_blocks):
                    modules[f"{name}_tower.blocks.{index}"] = tower.blocks[index]
        return modules

    def apply_trainable_policy(self) -> None:
        self.requires_grad_(False)
        for module in self.trainable_modules().values():
            module.requires_grad_(True)
        self.video_tower.refreeze_fixed_parameters()
        self.audio_tower.refreeze_fixed_parameters()
        self.train(self.training)

    def train(self, mode: bool = True) -> BridgeDiT:
        """Frozen modules stay in eval mode whatever `mode` is; trainable modules follow `mode`."""
        nn.Module.train(self, False)
        if mode:
            self.training = True
            for module in self.trainable_modules().values():
                module.train(True)
        return self

    def cast_frozen_parameters(self, dtype: torch.dtype) -> None:
        """Store frozen weights in `dtype` (e.g. bf16 to save memory when training under autocast), except those
        the towers' diffusers models keep in float32 (`_keep_in_fp32_modules`: norms, rope, time embedders)."""
        kept = set()
        for tower in (self.video_tower, self.audio_tower):
            names = set(getattr(tower.transformer, "_keep_in_fp32_modules", None) or ())
            kept |= {id(p) for name, p in tower.transformer.named_parameters() if names & set(name.split("."))}
        for param in self.parameters():
            if not param.requires_grad and id(param) not in kept:
                param.data = param.data.to(dtype)

    def enable_gradient_checkpointing(self) -> None:
        self.video_tower.transformer.enable_gradient_checkpointing()
        self.audio_tower.transformer.enable_gradient_checkpointing()
        self.bridges.gradient_checkpointing = True

    def disable_gradient_checkpointing(self) -> None:
        self.video_tower.transformer.disable_gradient_checkpointing()
        self.audio_tower.transformer.disable_gradient_checkpointing()
        self.bridges.gradient_checkpointing = False

    # ------------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------------

    def forward(
        self,
        video_latents: torch.Tensor,  # (B, C_v, F, H, W)
        audio_latents: torch.Tensor,  # (B, C_a, T)
        t_video: torch.Tensor,  # (B,), 0..1000
        t_audio: torch.Tensor,  # (B,), 0..1
        video_conditions: VideoConditions,
        audio_conditions: AudioConditions,
        step_cache: StepCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(video prediction, audio prediction). `step_cache` (sampling only): skip the blocks after each tower's
        first when their first blocks changed little since the last computed step (`diffusion.step_cache`)."""
        grad_enabled = torch.is_grad_enabled()
        video = self._prepare(self.video_tower, video_latents, t_video, video_conditions, grad_enabled)
        audio = self._prepare(self.audio_tower, audio_latents, t_audio, audio_conditions, grad_enabled)
        video_frontier, audio_frontier = video.extras["frontier"], audio.extras["frontier"]

        bridges_trainable = _requires_grad(self.bridges)
        with _GradFrontier(grad_enabled, video_frontier.started or audio_frontier.started).context(bridges_trainable):
            # (video streams' condition, audio streams') or None
            condition = self.bridges.condition(t_video, t_audio, video.time_embedding, audio.time_embedding)

        # each tower's first block (before any bridge: running both first changes nothing), the step cache's probe
        video_before, audio_before = video.hidden_states, audio.hidden_states
        next_video = self._run_blocks(self.video_tower, video, 0, 1)
        next_audio = self._run_blocks(self.audio_tower, audio, 0, 1)
        video_first, audio_first = video.hidden_states, audio.hidden_states
        if step_cache is not None:
            cached = step_cache.reuse(video_before, video_first, audio_before, audio_first)
            if cached is not None:
                video.hidden_states, audio.hidden_states = cached
                return self._finalize(self.video_tower, video), self._finalize(self.audio_tower, audio)

        bridge = self.config.bridge
        with_global = bridge.audio_global_token  # the bridges read Stable Audio's global token too
        for index in range(bridge.num_bridges):
            next_video = self._run_blocks(self.video_tower, video, next_video, bridge.video_blocks[index] + 1)
            next_audio = self._run_blocks(self.audio_tower, audio, next_audio, bridge.audio_blocks[index] + 1)
            frontier = _GradFrontier(grad_enabled, video_frontier.started or audio_frontier.started)
            with frontier.context(_requires_grad(self.bridges.blocks[index])):
                video_tokens, audio_tokens = self.bridges.run(
                    index,
                    whole_tokens(video.bridge_tokens, self.video_token_mesh),
                    audio.bridged(with_global),
                    condition,
                    video.grid,
                )
            video.replace_bridge_tokens(own_tokens(video_tokens, self.video_token_mesh))
            audio.replace_bridged(audio_tokens, with_global)
            video_frontier.started = audio_frontier.started = frontier.started
        self._run_blocks(self.video_tower, video, next_video, self.video_tower.num_blocks)
        self._run_blocks(self.audio_tower, audio, next_audio, self.audio_tower.num_blocks)
        if step_cache is not None:
            step_cache.store(video_first, audio_first, video.hidden_states, audio.hidden_states)
        return self._finalize(self.video_tower, video), self._finalize(self.audio_tower, audio)

    @staticmethod
    def _prepare(tower: Tower, latents, timestep, conditions, grad_enabled: bool) -> TowerState:
        inputs_need_grad = _any_tensor_requires_grad(latents, timestep, conditions)
        frontier = _GradFrontier(grad_enabled, inputs_need_grad)
        with frontier.context(any(_requires_grad(m) for m in tower.stem_modules())):
            state = tower.prepare(latents, timestep, conditions)
        state.extras["frontier"] = frontier
        return state

    @staticmethod
    def _run_blocks(tower: Tower, state: TowerState, start: int, stop: int) -> int:
        frontier: _GradFrontier = state.extras["frontier"]
        for index in range(start, stop):
            with frontier.context(_requires_grad(tower.blocks[index])):
                tower.run_block(index, state)
        return stop

    @staticmethod
    def _finalize(tower: Tower, state: TowerState) -> torch.Tensor:
        frontier: _GradFrontier = state.extras["frontier"]
        with frontier.context(any(_requires_grad(m) for m in tower.stem_modules())):
            return tower.finalize(state)

    # ------------------------------------------------------------------------------------------------
    # Accounting
    # ------------------------------------------------------------------------------------------------

    def parameter_counts(self) -> dict[str, int]:
        return {
            "video_tower": sum(p.numel() for p in self.video_tower.parameters()),
            "audio_tower": sum(p.numel() for p in self.audio_tower.parameters()),
            "bridges": sum(p.numel() for p in self.bridges.parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
        }
