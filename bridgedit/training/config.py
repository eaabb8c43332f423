"""The training recipe as a YAML-backed schema. Defaults are Table 5's (the paper's recipe); unknown keys are errors.

model:      base: PATH_OR_ID | "tiny"     # a saved BridgeDiTPipeline (or hub id), or tiny random towers
            video: HUB_ID_OR_PATH          # or build from two diffusers tower pipelines
            audio: HUB_ID_OR_PATH
            bridge: {...}                  # BridgeConfig fields (fusion, placement, width, ...)
            trainable: {...}               # TrainableConfig fields (policy, last blocks)
data:       dataset: PATH                  # a prepared dataset (bridgedit prepare)
            cache: PATH                    # default DATASET/cache
            synthetic: {clips, seed, ...}  # optional: make the dataset first if it does not exist
            split, captions (hvgc | shared), allow_missing_captions
optim:      lr, weight_decay, betas, warmup_steps, min_lr, max_grad_norm, schedule (cosine | constant)
train:      steps, batch_size, grad_accum, mixed_precision, gradient_checkpointing, seed, frozen_dtype,
            caption_dropout {video, audio}, timesteps {distribution, coupling, logit_mean, logit_std}
checkpoint: dir, every
log:        every, tensorboard
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..config import BridgeConfig, ConfigError, ModelConfig, TrainableConfig, read_text

#: "sobol": a scrambled Sobol sequence, one point a sample (the authors' release)
TIMESTEP_DISTRIBUTIONS = ("uniform", "logit_normal", "sobol")
#: "integer": t_V = floor(999 t_A), the release's `long(t * 999)` video timestep (noise level t_V / 1000)
COUPLINGS = ("coupled", "independent", "integer")
#: after the linear warm-up: "cosine" decay to min_lr (Table 5) or "constant" (the release's LambdaLR)
LR_SCHEDULES = ("cosine", "constant")
CAPTION_MODES = ("hvgc", "shared")
PRECISIONS = ("no", "bf16", "fp16")


def _typed_number(value: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number; got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number; got {value!r}")
    return float(value)


def _typed(section_class: type, key: str, value: Any, where: str) -> Any:
    """A YAML value as its field's declared scalar type: numbers written as YAML 1.1 reads them as strings ("5e-5")
    become numbers; a value of the wrong type is named with its key and the type expected. Other types pass."""
    declared = {f.name: str(f.type) for f in fields(section_class)}[key]
    optional = declared.endswith("| None")
    kind = declared.removesuffix("| None").strip()
    if value is None and optional:
        return None
    if kind == "float":
        return _typed_number(value, where)
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where} must be an integer; got {value!r}")
    if kind == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false; got {value!r}")
    if kind.startswith("dict") and not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping (key: value lines); got {value!r}")
    if kind == "tuple[float, float]":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{where} must be two numbers, e.g. [0.9, 0.95]; got {value!r}")
        return tuple(_typed_number(item, where) for item in value)
    if kind == "str" and not isinstance(value, str):
        hint = " (quote it: YAML reads yes, no, on and off as true or false)" if isinstance(value, bool) else ""
        raise ConfigError(f"{where} must be a string; got {value!r}{hint}")
    return value


@dataclass(frozen=True)
class ModelSection:
    base: str | None = None
    video: str | None = None
    audio: str | None = None
    bridge: dict[str, Any] = field(default_factory=dict)
    trainable: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.base is None) == (self.video is None or self.audio is None):
            raise ConfigError(
                'model: give either `base` (a saved model, a hub id, or "tiny") or both `video` and `audio`'
            )

    def model_config(self, fallback: ModelConfig | None = None) -> ModelConfig:
        """The bridge/trainable sections over the base model's own config (or the paper's defaults)."""
        fallback = fallback or ModelConfig()
        return ModelConfig(
            bridge=BridgeConfig(**{**fallback.bridge.__dict__, **self.bridge}),
            trainable=TrainableConfig(**{**fallback.trainable.__dict__, **self.trainable}),
        )


@dataclass(frozen=True)
class DataSection:
    dataset: str = ""
    cache: str | None = None
    synthetic: dict[str, Any] | None = None
    split: str = "train"
    captions: str = "hvgc"
    allow_missing_captions: bool = False
    max_sequence_length: int = 512

    def __post_init__(self) -> None:
        if not self.dataset:
            raise ConfigError("data.dataset is required")
        if self.captions not in CAPTION_MODES:
            raise ConfigError(f"data.captions={self.captions!r} is unknown; choose one of {', '.join(CAPTION_MODES)}")

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.dataset) / "cache"


@dataclass(frozen=True)
class OptimSection:  # Table 5
    lr: float = 5e-5
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 1000
    min_lr: float = 1e-6
    max_grad_norm: float | None = 1.0  # None: no clipping (the release's Lightning default)
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr or len(self.betas) != 2:
            raise ConfigError("optim: need lr > 0, 0 <= min_lr <= lr and two betas")
        if self.schedule not in LR_SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError("optim.max_grad_norm must be positive, or null for no clipping")


@dataclass(frozen=True)
class TrainSection:
    steps: int = 15_000  # Table 5
    batch_size: int = 1
    grad_accum: int = 1
    mixed_precision: str = "bf16"  # Table 5; on a CPU bf16 only where it is native (else float32), never fp16
    gradient_checkpointing: bool = True
    seed: int = 0
    caption_dropout: dict[str, float] = field(default_factory=lambda: {"video": 0.1, "audio": 0.1})  # Table 5
    timesteps: dict[str, Any] = field(default_factory=lambda: {"distribution": "uniform", "coupling": "coupled"})
    frozen_dtype: str = "float32"  # "bfloat16": frozen weights stored in bf16 (under bf16 mixed precision only)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("train: steps, batch_size and grad_accum must be positive")
        if self.mixed_precision not in PRECISIONS:
            raise ConfigError(f"train.mixed_precision must be one of {', '.join(PRECISIONS)}")
        if self.frozen_dtype not in ("float32", "bfloat16"):
            raise ConfigError("train.frozen_dtype must be float32 or bfloat16")
        dropout = {"video": 0.1, "audio": 0.1, **self.caption_dropout}
        if set(dropout) != {"video", "audio"} or not all(0 <= p <= 1 for p in dropout.values()):
            raise ConfigError("train.caption_dropout takes video and audio probabilities in [0, 1]")
        object.__setattr__(self, "caption_dropout", dropout)
        timesteps = {
            "distribution": "uniform",
            "coupling": "coupled",
            "logit_mean": 0.0,
            "logit_std": 1.0,
            **self.timesteps,
        }
        if timesteps["distribution"] not in TIMESTEP_DISTRIBUTIONS:
            raise ConfigError(f"train.timesteps.distribution must be one of {', '.join(TIMESTEP_DISTRIBUTIONS)}")
        if timesteps["coupling"] not in COUPLINGS:
            raise ConfigError(f"train.timesteps.coupling must be one of {', '.join(COUPLINGS)}")
        object.__setattr__(self, "timesteps", timesteps)


@dataclass(frozen=True)
class CheckpointSection:
    dir: str = "outputs/train"
    every: int = 1000


@dataclass(frozen=True)
class LogSection:
    every: int = 10
    tensorboard: bool = False


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection
    data: DataSection
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> TrainConfig:
        sections = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ConfigError(
                f"{source}: unknown section(s) {', '.join(map(repr, unknown))}; known: {', '.join(sections)}"
            )
        classes = {
            "model": ModelSection,
            "data": DataSection,
            "optim": OptimSection,
            "train": TrainSection,
            "checkpoint": CheckpointSection,
            "log": LogSection,
        }
        built = {}
        for name, section_class in classes.items():
            values = data.get(name) or {}
            known = {f.name for f in fields(section_class)}
            extra = sorted(set(values) - known)
            if extra:
                raise ConfigError(
                    f"{source}: unknown key(s) in {name}: {', '.join(map(repr, extra))}; known: {', '.join(sorted(known))}"
                )
            if name in ("model", "data") or values:
                typed = {
                    key: _typed(section_class, key, value, f"{source}: {name}.{key}") for key, value in values.items()
                }
                try:
                    built[name] = section_class(**typed)
                except ConfigError:
                    raise
                except (TypeError, ValueError, KeyError, AttributeError) as error:  # a value no check above foresaw
                    raise ConfigError(f"{source}: {name}: {type(error).__name__}: {error}") from None
        return cls(**built)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} does not exist")
        try:
            data = yaml.safe_load(read_text(path)) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})") from None
        return cls.from_dict(data, str(path))
