"""One clip across processes: sequence (context) parallel sampling (`generate --parallel sequence`).

The video tower's tokens (32,760 for 480p x 81 frames) are split over the processes along the sequence by diffusers'
context parallelism for Wan (`ModelMixin.enable_parallelism` with its `_cp_plan`: the rotary tables and the first
block's input are split, each block's self-attention exchanges heads for tokens by Ulysses all-to-all, the output
projection's result is gathered). BridgeDiT drives Wan's own modules block by block, the very modules the plan hooks,
so the plan applies as it does in Wan's forward. The bridges need every video token (the audio stream queries all
of them; the bridges' positions are the whole grid's): before each bridge the video tokens are gathered, the bridge
runs whole on every process (a few per cent of a step's FLOPs), and each process keeps its shard after it. The audio
tower (117 tokens at 5.4 s) runs whole on every process. Every process samples the same clip from the same seed; the
main one writes it.

Ulysses splits the attention heads: the process count must divide them (Wan 2.1 1.3B has 12: 2, 3, 4, 6 or 12
processes), and the video tokens. diffusers places each process on an accelerator; the test runs the same code on two
CPU processes (gloo) with the accelerator count shimmed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:
    import torch
    from torch.distributed.device_mesh import DeviceMesh

#: `generate --parallel`: "data" gives each process its own prompts; "sequence" splits one clip's video tokens
PARALLEL_MODES = ("data", "sequence")


def enable_sequence_parallel(pipe) -> int:
    """Split `pipe`'s video tokens over every process of the running process group (Ulysses); returns their count."""
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    if not dist.is_available() or not dist.is_initialized():
        raise ConfigError("sequence parallel sampling needs several processes: run under `accelerate launch`")
    processes = dist.get_world_size()
    if processes < 2:
        raise ConfigError("sequence parallel sampling needs 2 processes or more; this group has 1")
    transformer = pipe.video_pipe.transformer
    heads = transformer.config.num_attention_heads
    if heads % processes:
        raise ConfigError(
            f"sequence parallel sampling splits the video tower's {heads} attention heads over the processes: "
            f"{processes} processes do not divide them"
        )
    transformer.enable_parallelism(config=ContextParallelConfig(ulysses_degree=processes))
    # the mesh diffusers' own split and gather hooks use (its context-parallel config's flattened mesh)
    pipe.model.video_token_mesh = transformer._parallel_config.context_parallel_config._flattened_mesh
    return processes


def whole_tokens(tokens: torch.Tensor, mesh: DeviceMesh | None) -> torch.Tensor:
    """(B, N / P, D) this process's video tokens -> (B, N, D) every process's, in order (None: unsplit)."""
    if mesh is None:
        return tokens
    from diffusers.hooks.context_parallel import EquipartitionSharder

    return EquipartitionSharder.unshard(tokens, 1, mesh)


def own_tokens(tokens: torch.Tensor, mesh: DeviceMesh | None) -> torch.Tensor:
    """(B, N, D) -> (B, N / P, D): this process's share, as diffusers' split hooks cut it (None: unsplit)."""
    if mesh is None:
        return tokens
    from diffusers.hooks.context_parallel import EquipartitionSharder

    return EquipartitionSharder.shard(tokens, 1, mesh)
