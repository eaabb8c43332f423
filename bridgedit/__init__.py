"""bridgedit: text-to-sounding-video generation with BridgeDiT (Wan 2.1 + Stable Audio Open, DCA bridges).

The names below are imported on first use (PEP 562), so `import bridgedit` (and the CLI's `--help`) loads no torch."""

from __future__ import annotations

import importlib

# semantic versioning: a minor release adds capabilities and may change defaults (CHANGELOG.md says which); models
# saved by any 0.x release keep loading
__version__ = "0.5.0"

#: each public name -> the module that defines it
_PUBLIC = {
    "BridgeConfig": ".config",
    "ClipSpec": ".config",
    "ConfigError": ".config",
    "ModelConfig": ".config",
    "SequenceLengths": ".config",
    "TrainableConfig": ".config",
    "BridgeDiT": ".model",
    "PatchVideoCodec": ".patch_codec",
    "BridgeDiTOutput": ".pipeline",
    "BridgeDiTPipeline": ".pipeline",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'bridgedit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    globals()[name] = value
    return value
