"""Bridge checkpoints: the trainable weights of a BridgeDiT (bridges + trained tower blocks) and its config.

A checkpoint folder holds `config.json` (the ModelConfig and the towers' shapes) and `model.safetensors`.
Weights are keyed `<trainable module name>.<key in that module>`, with module names from
`BridgeDiT.trainable_modules()` (e.g. `bridges.blocks.0.video.mlp.net.2.weight`,
`video_tower.blocks.29.attn1.to_q.weight`). Loading checks keys and shapes strictly. Only safetensors
are ever read: no pickle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .atomic import atomic_path, write_text_atomic
from .config import ModelConfig
from .errors import CheckpointError
from .model import BridgeDiT

FORMAT = "bridgedit.bridge/1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _tower_summary(model: BridgeDiT) -> dict[str, Any]:
    return {
        "video": {"num_blocks": model.video_tower.num_blocks, "width": model.video_tower.width},
        "audio": {"num_blocks": model.audio_tower.num_blocks, "width": model.audio_tower.width},
    }


def trainable_state_dict(
    model: BridgeDiT, full_state: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The trainable modules' weights, keyed `<trainable module name>.<key>`.

    `full_state` (optional): the whole model's state dict gathered elsewhere (e.g. accelerate's
    `get_state_dict` under FSDP); the modules are found in it by their path in the model.
    """
    paths = {id(module): path for path, module in model.named_modules()}
    state = {}
    for module_name, module in model.trainable_modules().items():
        if full_state is None:
            items = module.state_dict().items()
        else:
            prefix = paths[id(module)] + "."
            items = ((key[len(prefix) :], value) for key, value in full_state.items() if key.startswith(prefix))
        for key, tensor in items:
            state[f"{module_name}.{key}"] = tensor
    return state


def save_bridge(model: BridgeDiT, directory: str | Path, full_state: dict[str, torch.Tensor] | None = None) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {key: tensor.detach().contiguous().cpu() for key, tensor in trainable_state_dict(model, full_state).items()}
    with atomic_path(directory / WEIGHTS_NAME) as temporary:
        save_file(state, str(temporary), metadata={"format": FORMAT})
    config = {"format": FORMAT, "model": model.config.to_dict(), "towers": _tower_summary(model)}
    write_text_atomic(directory / CONFIG_NAME, json.dumps(config, indent=2))


def read_bridge_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no bridge checkpoint at {directory}: {CONFIG_NAME} is missing")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (format: {data.get('format')!r})")
    return ModelConfig.from_dict(data["model"])


def load_bridge_weights(model: BridgeDiT, directory: str | Path) -> None:
    """Load a checkpoint's weights into `model`, whose config must match the checkpoint's."""
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no bridge weights at {path}")
    try:
        state = load_file(str(path))
    except SafetensorError as error:
        raise CheckpointError(f"{path} is damaged ({error}): copy or download it again") from None
    expected = trainable_state_dict(model)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit this model: {len(missing)} missing key(s) {missing[:5]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:5]}"
        )
    mismatched = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if state[k].shape != v.shape
    ]
    if mismatched:
        raise CheckpointError(
            f"{path} has {len(mismatched)} shape mismatch(es) (checkpoint vs model): {mismatched[:5]}"
        )
    for module_name, module in model.trainable_modules().items():
        prefix = module_name + "."
        module.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)


def weights_sha256(directory: str | Path) -> str:
    """sha256 of a checkpoint folder's weights file (read in chunks): what a clip's record names its model's weights by."""
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS_NAME, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()
