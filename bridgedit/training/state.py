"""Training state on disk without pickle: optimizer tensors in safetensors, everything else in JSON.

CHECKPOINT/training_state/
    optimizer.safetensors   every tensor of optimizer.state_dict()["state"], keyed "<param index>.<name>"
    optimizer.json          the rest of the optimizer state (param groups, non-tensor entries)
    scheduler.json          the lr scheduler's state_dict()
    progress.json           step, data position and seed (per-step randomness is derived from them)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..atomic import atomic_path, write_text_atomic

STATE_DIR = "training_state"


def save_training_state(directory: str | Path, optimizer, scheduler, progress: dict[str, Any]) -> None:
    directory = Path(directory) / STATE_DIR
    directory.mkdir(parents=True, exist_ok=True)
    state = optimizer.state_dict()
    tensors, entries = {}, {}
    for index, values in state["state"].items():
        entries[str(index)] = {}
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
                entries[str(index)][name] = {"tensor": f"{index}.{name}"}
            else:
                entries[str(index)][name] = {"value": value}
    with atomic_path(directory / "optimizer.safetensors") as temporary:
        save_file(tensors, str(temporary))
    write_text_atomic(
        directory / "optimizer.json", json.dumps({"state": entries, "param_groups": state["param_groups"]})
    )
    write_text_atomic(directory / "scheduler.json", json.dumps(scheduler.state_dict()))
    write_text_atomic(directory / "progress.json", json.dumps(progress, indent=2))


def load_training_state(directory: str | Path, optimizer, scheduler) -> dict[str, Any]:
    directory = Path(directory) / STATE_DIR
    if not (directory / "progress.json").is_file():
        raise FileNotFoundError(f"no training state in {directory.parent} (expected {STATE_DIR}/progress.json)")
    tensors = load_file(str(directory / "optimizer.safetensors"))
    saved = json.loads((directory / "optimizer.json").read_text())
    state = {
        int(index): {
            name: tensors[spec["tensor"]] if "tensor" in spec else spec["value"] for name, spec in values.items()
        }
        for index, values in saved["state"].items()
    }
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    scheduler.load_state_dict(json.loads((directory / "scheduler.json").read_text()))
    return json.loads((directory / "progress.json").read_text())
