"""Training batches from the cache: latents plus caption states, padded into the towers' conditions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..config import ConfigError
from .cache import CLIPS_DIR, NULL_NAME, load_cache_info, load_cached_clip
from .manifest import load_manifest

logger = logging.getLogger(__name__)


@dataclass
class CachedBatch:
    video_latents: torch.Tensor  # (B, C, F', H', W')
    audio_latents: torch.Tensor  # (B, C_a, T)
    video_text: list[torch.Tensor | None]  # per clip (L_v, D), None where the caption is missing
    audio_text: list[torch.Tensor | None]  # per clip (L_a, C), None where the caption is missing
    seconds: list[float]


class CachedClips:
    """The cached clips of one split, with the caption states chosen by `captions` ("hvgc" or "shared")."""

    def __init__(
        self,
        dataset: str | Path,
        cache: str | Path,
        *,
        split: str = "train",
        captions: str = "hvgc",
        allow_missing_captions: bool = False,
    ) -> None:
        self.cache = Path(cache)
        self.info = load_cache_info(self.cache)
        self.records = load_manifest(dataset, split=split)
        missing = [r["id"] for r in self.records if not (self.cache / CLIPS_DIR / f"{r['id']}.safetensors").is_file()]
        if missing:
            raise ConfigError(
                f"{len(missing)} clip(s) of split {split!r} are not cached yet (e.g. {missing[0]}); run bridgedit cache"
            )
        self.keys = ("video_text", "audio_text") if captions == "hvgc" else ("shared_video_text", "shared_audio_text")
        self.null_video_text = load_file(str(self.cache / NULL_NAME))["video_text"]
        lacking = [r["id"] for r in self.records if not self._has_captions(r)]
        if lacking and not allow_missing_captions:
            raise ConfigError(
                f"{len(lacking)} of {len(self.records)} clips have no {captions} captions (e.g. {lacking[0]}); caption them "
                "(bridgedit caption) or set data.allow_missing_captions: true to train those unconditionally"
            )
        if lacking:
            logger.warning("%d clips have no %s captions: they train with the null condition", len(lacking), captions)

    def _has_captions(self, record) -> bool:
        captions = record.get("captions") or {}
        wanted = ("video", "audio") if self.keys[0] == "video_text" else ("shared",)
        return all(captions.get(k) for k in wanted)

    def __len__(self) -> int:
        return len(self.records)

    def batch(self, indices: list[int]) -> CachedBatch:
        clips = [load_cached_clip(self.cache, self.records[i]["id"]) for i in indices]
        video_key, audio_key = self.keys
        return CachedBatch(
            video_latents=torch.stack([c["video_latents"] for c in clips]),
            audio_latents=torch.stack([c["audio_latents"] for c in clips]),
            video_text=[c.get(video_key) for c in clips],
            audio_text=[c.get(audio_key) for c in clips],
            seconds=[float(self.records[i]["duration"]) for i in indices],
        )
