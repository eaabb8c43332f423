"""bridgedit: text-to-sounding-video generation with BridgeDiT (Wan 2.1 + Stable Audio Open, DCA bridges)."""

from .config import BridgeConfig, ClipSpec, ConfigError, ModelConfig, SequenceLengths, TrainableConfig
from .model import BridgeDiT

__all__ = ["BridgeConfig", "BridgeDiT", "ClipSpec", "ConfigError", "ModelConfig", "SequenceLengths", "TrainableConfig"]
__version__ = "0.1.0"
