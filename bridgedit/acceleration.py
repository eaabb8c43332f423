"""Speed and memory options of a pipeline, outside its numerics: regional compilation and memory levels.

- `compile_blocks(pipe)`: `torch.compile` on every repeated block class (Wan's `WanTransformerBlock`, Stable Audio's
  `StableAudioDiTBlock`, our `BridgeBlock`), each compiled once and reused by all its instances: diffusers'
  regional compilation (`ModelMixin.compile_repeated_blocks`) over both towers and the bridges at once. The model
  drives the towers block by block through each block's `__call__`, so the compiled blocks are the ones it runs.
- `MEMORY_LEVELS`: "max" keeps everything on the device; "balanced" also moves the text encoders off it once the
  prompts are encoded and decodes Wan's video in tiles (`AutoencoderKLWan.enable_tiling`, 256-pixel tiles by
  default). Sampling is unchanged; frames smaller than a tile decode exactly as without tiling, larger ones with
  blended seams (tests: equal output at a small size; on a random tiny VAE tiled in 32 pixels, a mean difference of
  1 % of the pixel range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:  # the CLI reads MEMORY_LEVELS for its help without importing torch
    from torch import nn

#: the block classes compiled by `compile_blocks`: each tower's repeated block and the bridges'
REPEATED_BLOCKS = ("WanTransformerBlock", "StableAudioDiTBlock", "BridgeBlock")
MEMORY_LEVELS = ("max", "balanced")


def compile_blocks(pipe, **compile_kwargs) -> int:
    """Compile every module of `pipe.model` whose class is in REPEATED_BLOCKS, in place (`nn.Module.compile`, which
    keeps the module and its state dict as they are); `compile_kwargs` go to `torch.compile`. Returns how many modules
    were compiled. Compilation happens at each block class's first call."""
    compiled = 0
    for module in pipe.model.modules():
        if type(module).__name__ in REPEATED_BLOCKS:
            module.compile(**compile_kwargs)
            compiled += 1
    if not compiled:
        raise ConfigError(f"no block of {', '.join(REPEATED_BLOCKS)} in this model to compile")
    return compiled


def is_compiled(module: nn.Module) -> bool:
    """Whether `nn.Module.compile` was applied to the module."""
    return getattr(module, "_compiled_call_impl", None) is not None


def apply_memory_level(pipe, level: str) -> dict:
    """Set `pipe` up for memory level `level` (MEMORY_LEVELS); returns the call settings it needs
    ({"offload_text_encoders": ...})."""
    if level not in MEMORY_LEVELS:
        raise ConfigError(f"memory level {level!r} is unknown; choose one of {', '.join(MEMORY_LEVELS)}")
    video_vae = pipe.video_pipe.vae
    if level == "balanced" and hasattr(video_vae, "enable_tiling"):
        video_vae.enable_tiling()
    elif hasattr(video_vae, "disable_tiling"):
        video_vae.disable_tiling()
    return {"offload_text_encoders": level != "max"}
