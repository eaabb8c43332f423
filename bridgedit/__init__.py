"""bridgedit: text-to-sounding-video generation with BridgeDiT (Wan 2.1 + Stable Audio Open, DCA bridges)."""

# semantic versioning: a minor release adds capabilities and may change defaults (CHANGELOG.md says which); models
# saved by any 0.x release keep loading
__version__ = "0.3.0"

from .config import BridgeConfig, ClipSpec, ConfigError, ModelConfig, SequenceLengths, TrainableConfig  # noqa: E402
from .model import BridgeDiT  # noqa: E402

# both module names imported: diffusers loads a saved codec only from a module already imported, and saved models name
# `bridgedit.patch_codec` (before the codec moved) or `bridgedit.synthetic.patch_codec` (since)
from .patch_codec import PatchVideoCodec  # noqa: E402
from .pipeline import BridgeDiTOutput, BridgeDiTPipeline  # noqa: E402

__all__ = [
    "BridgeConfig",
    "BridgeDiT",
    "BridgeDiTOutput",
    "BridgeDiTPipeline",
    "ClipSpec",
    "ConfigError",
    "ModelConfig",
    "PatchVideoCodec",
    "SequenceLengths",
    "TrainableConfig",
]
