"""The lockstep protocol every tower follows: prepare() -> run_block(i) for each block -> finalize().

A tower wraps a pretrained diffusers denoiser and reuses its own submodules (patch embedding, rope,
condition embedder, blocks, output norm and projection). Only the glue around the block loop is ours;
`tests/test_towers.py` proves, bit for bit, that prepare -> all blocks -> finalize equals the model's
own forward().
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class TowerState:
    """What flows between the blocks of one tower during one forward.

    hidden_states: (B, P + N, D), P non-bridged prefix tokens followed by N bridged tokens.
    block_inputs: the per-forward tensors every block takes besides hidden_states (text states,
        timestep projections, rotary embeddings), in the order the block's forward() wants them.
    grid: the token layout of the N bridged tokens, e.g. (F, H, W) for video or (N,) for audio.
    """

    hidden_states: torch.Tensor
    block_inputs: tuple[Any, ...]
    grid: tuple[int, ...]
    prefix_tokens: int = 0
    time_embedding: torch.Tensor | None = None  # (B, D_t): the tower's own embedding of its timestep
    extras: dict[str, Any] = field(default_factory=dict)  # what finalize() needs (shapes, embeddings)

    @property
    def bridge_tokens(self) -> torch.Tensor:
        """(B, N, D): the tokens a bridge may read and update (never the prefix)."""
        return self.hidden_states[:, self.prefix_tokens :]

    def replace_bridge_tokens(self, tokens: torch.Tensor) -> None:
        if self.prefix_tokens == 0:
            self.hidden_states = tokens
        else:
            self.hidden_states = torch.cat([self.hidden_states[:, : self.prefix_tokens], tokens], dim=1)

    def bridged(self, with_prefix: bool) -> torch.Tensor:
        """What a bridge reads: the bridged tokens, or (`with_prefix`) every token, prefix included."""
        return self.hidden_states if with_prefix else self.bridge_tokens

    def replace_bridged(self, tokens: torch.Tensor, with_prefix: bool) -> None:
        if with_prefix:
            self.hidden_states = tokens
        else:
            self.replace_bridge_tokens(tokens)


class Tower(nn.Module, ABC):
    """One pretrained denoiser, driven block by block so bridges can run between its blocks."""

    #: attribute name of the wrapped diffusers model's block list
    blocks_attribute: str

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        # parameters the model itself creates frozen (e.g. Stable Audio's random Fourier timestep
        # features): no freezing policy may train them. Kept as (module, attribute) pairs.
        self._fixed_parameters = [
            (module, name)
            for module in transformer.modules()
            for name, param in module.named_parameters(recurse=False)
            if not param.requires_grad
        ]

    def refreeze_fixed_parameters(self) -> None:
        for module, name in self._fixed_parameters:
            getattr(module, name).requires_grad_(False)

    @property
    def blocks(self) -> nn.ModuleList:
        return getattr(self.transformer, self.blocks_attribute)

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    @abstractmethod
    def width(self) -> int:
        """Channels of the hidden states (and of the bridged tokens)."""

    @property
    def time_embedding_dim(self) -> int:
        """Channels of the tower's own time embedding (`TowerState.time_embedding`): the width, for Wan's temb and
        Stable Audio's timestep projection alike."""
        return self.width

    @abstractmethod
    def prepare(self, latents: torch.Tensor, timestep: torch.Tensor, conditions: Any) -> TowerState:
        """Embed latents, timestep (shape (B,)) and conditions; everything before block 0."""

    @abstractmethod
    def finalize(self, state: TowerState) -> torch.Tensor:
        """Everything after the last block: output norm, projection, unpatchify."""

    def run_block(self, index: int, state: TowerState) -> None:
        """Run block `index` in place on `state`, checkpointed exactly when the model's own forward would be."""
        block = self.blocks[index]
        if torch.is_grad_enabled() and self.transformer.gradient_checkpointing:
            state.hidden_states = self.transformer._gradient_checkpointing_func(
                block, state.hidden_states, *state.block_inputs
            )
        else:
            state.hidden_states = block(state.hidden_states, *state.block_inputs)

    def stem_modules(self) -> list[nn.Module]:
        """The wrapped model's modules that are not blocks (embedders, output norm/projection)."""
        return [module for name, module in self.transformer.named_children() if name != self.blocks_attribute]

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, conditions: Any) -> torch.Tensor:
        """The tower alone, through the lockstep protocol."""
        state = self.prepare(latents, timestep, conditions)
        for index in range(self.num_blocks):
            self.run_block(index, state)
        return self.finalize(state)
