"""bridgedit: text-to-sounding-video generation with BridgeDiT (Wan 2.1 + Stable Audio Open, DCA bridges)."""

__version__ = "0.1.0"

from .config import BridgeConfig, ClipSpec, ConfigError, ModelConfig, SequenceLengths, TrainableConfig  # noqa: E402
from .model import BridgeDiT  # noqa: E402
from .patch_codec import PatchVideoCodec  # noqa: E402  (importable from the top level: diffusers loads it by name)
from .pipeline import BridgeDiTOutput, BridgeDiTPipeline  # noqa: E402

__all__ = [
    "BridgeConfig", "BridgeDiT", "BridgeDiTOutput", "BridgeDiTPipeline", "ClipSpec", "ConfigError", "ModelConfig",
    "PatchVideoCodec", "SequenceLengths", "TrainableConfig",
]
