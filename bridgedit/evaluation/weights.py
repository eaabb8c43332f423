"""Converting a published PyTorch state dict (.pt / .pth) into safetensors, once, so that evaluation never unpickles.

The source is read with `torch.load(weights_only=True)`, PyTorch's restricted loader that accepts tensors and plain
containers only and refuses any other object; what is written is a flat name -> tensor safetensors file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..atomic import atomic_path
from ..config import ConfigError


def convert_to_safetensors(source: str | Path, destination: str | Path) -> int:
    """Write `source`'s tensors to `destination`; returns how many. A {"state_dict": {...}} wrapper is unwrapped."""
    from safetensors.torch import save_file

    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist")
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # the restricted unpickler raises several kinds for a foreign or damaged file
        raise ConfigError(
            f"{source} is not a plain PyTorch state dict ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{source} does not hold a name -> tensor state dict")
    with atomic_path(destination) as temporary:
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(temporary))
    return len(state)
