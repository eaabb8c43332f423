"""Speed and memory options of a pipeline, outside its numerics: regional compilation and memory levels.

- `compile_blocks(pipe)`: `torch.compile` on every repeated block class (Wan's `WanTransformerBlock`, Stable Audio's
  `StableAudioDiTBlock`, our `BridgeBlock`), each compiled once and reused by all its instances: diffusers'
  regional compilation (`ModelMixin.compile_repeated_blocks`) over both towers and the bridges at once. The model
  drives the towers block by block through each block's `__call__`, so the compiled blocks are the ones it runs.
- `MEMORY_LEVELS`: "max" keeps everything on the device; "balanced" also moves the text encoders off it once the
  prompts are encoded and decodes Wan's video in tiles (`AutoencoderKLWan.enable_tiling`, 256-pixel tiles by
  default). Sampling is unchanged; frames smaller than a tile decode exactly as without tiling, larger ones with
  blended seams (tests: equal output at a small size; on a random tiny VAE tiled in 32 pixels, a mean difference of
  1 % of the pixel range). "low" also keeps the weights of both towers and the bridges in CPU memory and brings each
  layer's to the device as it runs (`offload_model_weights`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .config import ConfigError

if TYPE_CHECKING:  # the CLI reads MEMORY_LEVELS for its help without importing torch
    from torch import nn

#: the block classes compiled by `compile_blocks`: each tower's repeated block and the bridges'
REPEATED_BLOCKS = ("WanTransformerBlock", "StableAudioDiTBlock", "BridgeBlock")
MEMORY_LEVELS = ("max", "balanced", "low")


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


def apply_memory_level(pipe, level: str, *, offload_to_disk_path: str | None = None) -> dict:
    """Set `pipe` up for memory level `level` (MEMORY_LEVELS); returns the call settings it needs
    ({"offload_text_encoders": ...}). `offload_to_disk_path` ("low" only): keep the offloaded weights in files there
    instead of CPU memory (diffusers' disk offloading, for hosts short of RAM)."""
    if level not in MEMORY_LEVELS:
        raise ConfigError(f"memory level {level!r} is unknown; choose one of {', '.join(MEMORY_LEVELS)}")
    if pipe.onload_device is not None:
        raise ConfigError("this pipeline's weights are offloaded already: load it again for another memory level")
    video_vae = pipe.video_pipe.vae
    if level != "max" and hasattr(video_vae, "enable_tiling"):
        video_vae.enable_tiling()
    elif hasattr(video_vae, "disable_tiling"):
        video_vae.disable_tiling()
    if level == "low":
        offload_model_weights(pipe, offload_to_disk_path)
    return {"offload_text_encoders": level != "max"}


def offload_model_weights(pipe, offload_to_disk_path: str | None = None) -> None:
    """Keep the weights of `pipe.model` (both towers and the bridges) off the device and bring each layer's there just
    before it runs: diffusers' group offloading at leaf level (`diffusers.hooks.apply_group_offloading`). On a CUDA
    device the next layers' weights are copied on a side stream while a layer runs, in the order recorded during the
    first forward. Leaf level, not block level: block level brings a model's non-block modules (embeddings, output
    projections) on when the model's own forward runs, and BridgeDiT drives the towers block by block without it.
    The pipeline then runs on the device the weights are brought to (`pipe.device`).

    A tower model's own forward never runs, so the weights it holds directly (Wan's output modulation table, read by
    the tower's `finalize`) would never be brought on by their hook: they are brought on once and stay (a few
    thousand numbers)."""
    from diffusers.hooks import HookRegistry, apply_group_offloading
    from diffusers.hooks.group_offloading import _GROUP_OFFLOADING  # the hook's registered name

    device = pipe.device
    apply_group_offloading(
        pipe.model,
        onload_device=device,
        offload_device="cpu",
        offload_type="leaf_level",
        use_stream=device.type == "cuda",
        offload_to_disk_path=offload_to_disk_path,
    )
    for tower in (pipe.model.video_tower, pipe.model.audio_tower):
        registry = HookRegistry.check_if_exists_or_initialize(tower.transformer)
        hook = registry.get_hook(_GROUP_OFFLOADING)
        if hook is not None:
            hook.group.onload_()
            registry.remove_hook(_GROUP_OFFLOADING, recurse=False)
    pipe.onload_device = device
