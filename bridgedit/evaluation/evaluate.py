"""Scoring a folder of generated sounding videos (and a reference folder): the table of §4.1 / Tables 1-2.

Files pair by stem: `<stem>.mp4` with an audio stream, or `<stem>.mp4` plus `<stem>.wav` (the .wav wins).
Unpaired files are listed, never dropped silently. Captions (for CLIPSIM and CLAP) come from a JSONL file
keyed by "id" = stem: generate's prompt file ({"video_prompt", "audio_prompt"} or {"prompt"}) or a dataset
manifest ({"captions": {"video", "audio", "shared"}}).

Set metrics compare the generated set with the reference set: FVD (Fréchet distance) and KVD (polynomial MMD²) of
one I3D feature row per clip, FAD (Fréchet distance) of VGGish embeddings of every 0.96 s of every clip, KL between
the AudioSet classifier's outputs of each generated clip and its reference partner, averaged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm.auto import tqdm

from ..config import ConfigError, read_text
from ..media import MediaError, read_audio_track, read_video, read_wav
from .audioset import AudioSetClassifier
from .av_align import av_align
from .defaults import AUDIOSET_CLASSIFIER_DEFAULT, CLAP_DEFAULT, CLIP_DEFAULT, METRICS, WEIGHTS_DIR
from .extractors import ClapScorer, ClipScorer
from .i3d import I3DExtractor
from .imagebind import ImageBindScorer
from .statistics import frechet_distance, kl_divergence, mmd2_polynomial
from .vggish import VGGishExtractor

logger = logging.getLogger(__name__)

HEADERS = {
    "fvd": "FVD↓",
    "kvd": "KVD↓",
    "fad": "FAD↓",
    "kl": "KL↓",
    "clipsim": "CLIPSIM↑",
    "clap": "CLAP↑",
    "ib_va": "IB-VA↑",
    "av_align": "AV-Align↑",
}
REFERENCE_METRICS = ("fvd", "kvd", "fad", "kl")  # those that compare with the reference set
DISTRIBUTIONS = {"fvd": frechet_distance, "kvd": mmd2_polynomial, "fad": frechet_distance}  # set-level statistics
FEATURES_OF = {"fvd": "i3d", "kvd": "i3d", "fad": "vggish", "kl": "audioset"}  # metric -> the extractor it reads


@dataclass
class EvalClip:
    stem: str
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float
    audio: np.ndarray  # (channels, samples) float32
    sample_rate: int


@dataclass
class Evaluation:
    n: int
    values: dict[str, float]
    backbones: dict[str, str]
    per_clip: dict[str, dict[str, float]]
    unpaired: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.values,
            "n": self.n,
            "backbones": self.backbones,
            "unpaired": self.unpaired,
            "per_clip": self.per_clip,
        }

    def markdown(self, label: str = "generated") -> str:
        header = "| Method | " + " | ".join(HEADERS[m] for m in METRICS) + " |"
        rule = "|---|" + "---:|" * len(METRICS)
        cells = [f"{self.values[m]:.4f}" if m in self.values else "–" for m in METRICS]
        lines = [header, rule, f"| {label} (N={self.n}) | " + " | ".join(cells) + " |"]
        lines += [f"\n{metric}: {backbone}" for metric, backbone in self.backbones.items()]
        return "\n".join(lines)


def find_clips(folder: str | Path) -> dict[str, tuple[Path, Path | None]]:
    """{stem: (.mp4, its .wav or None)}; hidden files are left out (among them the temporary files of writes that
    were killed: `.NAME.mp4.XXXX.mp4`, bridgedit.atomic)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return {
        video.stem: (video, video.with_suffix(".wav") if video.with_suffix(".wav").is_file() else None)
        for video in sorted(folder.glob("*.mp4"))
        if not video.name.startswith(".")
    }


def load_clip(stem: str, video: Path, wav: Path | None) -> EvalClip:
    """A clip's frames and sound; MediaError naming the file when it cannot be decoded."""
    try:
        frames, fps = read_video(video)
        audio, rate = read_wav(wav) if wav is not None else read_audio_track(video)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise MediaError(f"{video} cannot be decoded ({type(error).__name__}: {error})") from None
    return EvalClip(stem=stem, frames=frames, fps=fps, audio=audio, sample_rate=rate)


def read_captions(path: str | Path) -> dict[str, dict[str, str]]:
    captions = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not valid JSON ({error.msg})") from None
        if "id" not in record:
            raise ConfigError(f'{path}:{number}: no "id"')
        given = record.get("captions") or {}
        shared = record.get("prompt") or given.get("shared")
        captions[record["id"]] = {
            "video": record.get("video_prompt") or given.get("video") or shared,
            "audio": record.get("audio_prompt") or given.get("audio") or shared,
        }
    return captions


def _choose_metrics(metrics: list[str] | None, has_reference: bool, has_captions: bool) -> list[str]:
    if metrics is None:
        return ["av_align"] + (["clipsim", "clap"] if has_captions else [])
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    for metric in metrics:
        if metric in ("clipsim", "clap") and not has_captions:
            raise ConfigError(f"{metric} compares clips with their captions: give --captions FILE")
        if metric in REFERENCE_METRICS and not has_reference:
            raise ConfigError(f"{metric} compares the generated set with a reference set: give --reference DIR")
    return list(metrics)


def _load_extractors(chosen: list[str], given: dict[str, Any], *, i3d_weights, vggish_weights, audioset_model) -> dict:
    loaders = {
        "i3d": lambda: I3DExtractor.from_pretrained(str(i3d_weights)),
        "vggish": lambda: VGGishExtractor.from_pretrained(str(vggish_weights)),
        "audioset": lambda: AudioSetClassifier.from_pretrained(audioset_model),
    }
    needed = {FEATURES_OF[m] for m in chosen if m in FEATURES_OF}
    return {kind: given[kind] if kind in given else loaders[kind]() for kind in sorted(needed)}


def _distribution_values(chosen: list[str], generated: dict[str, list], reference: dict[str, list]) -> dict[str, float]:
    """FVD, KVD, FAD from the per-clip feature arrays of both sets (all rows of all clips pooled per set)."""
    return {
        metric: statistic(
            np.concatenate(generated[FEATURES_OF[metric]]), np.concatenate(reference[FEATURES_OF[metric]])
        )
        for metric, statistic in DISTRIBUTIONS.items()
        if metric in chosen
    }


def evaluate(
    generated: str | Path,
    *,
    reference: str | Path | None = None,
    captions: str | Path | None = None,
    metrics: list[str] | None = None,
    clip_model: str = CLIP_DEFAULT,
    clap_model: str = CLAP_DEFAULT,
    audioset_model: str = AUDIOSET_CLASSIFIER_DEFAULT,
    i3d_weights: str | Path = WEIGHTS_DIR,
    vggish_weights: str | Path = WEIGHTS_DIR,
    imagebind_weights: str | Path = WEIGHTS_DIR,
    av_align_variant: str = "current",
    scorers: dict[str, Any] | None = None,
    progress: bool = True,
    strict: bool = False,
) -> Evaluation:
    """Score the generated set. `scorers` may supply ready scorers ("clipsim", "clap", "ib_va") and feature extractors
    ("i3d", "vggish", "audioset"), e.g. tiny models in tests. A clip that cannot be decoded (either side) is named in
    a warning and left out (`unpaired["unreadable"]`); with `strict`, it is an error."""
    found = find_clips(generated)
    if not found:
        raise ConfigError(f"no .mp4 files in {generated}")
    unpaired: dict[str, list[str]] = {}
    stems = sorted(found)
    reference_found = {}
    if reference is not None:
        reference_found = find_clips(reference)
        unpaired = {
            "generated_only": sorted(set(stems) - set(reference_found)),
            "reference_only": sorted(set(reference_found) - set(stems)),
        }
        stems = sorted(set(stems) & set(reference_found))
        for side, listed in unpaired.items():
            if listed:
                logger.warning(
                    "%d %s file(s) have no partner and are left out: %s",
                    len(listed),
                    side.replace("_", " "),
                    ", ".join(listed[:5]),
                )
        if not stems:
            raise ConfigError(f"no file of {generated} pairs with one of {reference} by name")
    texts = read_captions(captions) if captions else {}
    chosen = _choose_metrics(metrics, reference is not None, bool(texts))
    missing = [s for s in stems if s not in texts] if {"clipsim", "clap"} & set(chosen) else []
    if missing:
        raise ConfigError(f"{len(missing)} clip(s) have no caption in {captions} (e.g. {missing[0]})")
    if len(stems) < 2 and set(DISTRIBUTIONS) & set(chosen):
        raise ConfigError("FVD, KVD and FAD compare distributions: they need at least 2 paired clips")
    scorers = dict(scorers or {})
    if "clipsim" in chosen and "clipsim" not in scorers:
        scorers["clipsim"] = ClipScorer.from_pretrained(clip_model)
    if "clap" in chosen and "clap" not in scorers:
        scorers["clap"] = ClapScorer.from_pretrained(clap_model)
    if "ib_va" in chosen and "ib_va" not in scorers:
        scorers["ib_va"] = ImageBindScorer.from_pretrained(str(imagebind_weights))
    extractors = _load_extractors(
        chosen, scorers, i3d_weights=i3d_weights, vggish_weights=vggish_weights, audioset_model=audioset_model
    )

    per_clip: dict[str, dict[str, float]] = {}
    features = {side: {kind: [] for kind in extractors} for side in ("generated", "reference")}
    unreadable = []
    for stem in tqdm(stems, desc="evaluate", disable=not progress):
        try:
            clip = load_clip(stem, *found[stem])
            partner = load_clip(stem, *reference_found[stem]) if extractors else None
        except MediaError as error:
            if strict:
                raise
            logger.warning("left out: %s", error)
            unreadable.append(stem)
            continue
        scores = {}
        if "av_align" in chosen:
            scores["av_align"] = av_align(clip.frames, clip.fps, clip.audio, clip.sample_rate, variant=av_align_variant)
        if "clipsim" in chosen:
            scores["clipsim"] = scorers["clipsim"].score(clip, texts[stem]["video"])
        if "clap" in chosen:
            scores["clap"] = scorers["clap"].score(clip, texts[stem]["audio"])
        if "ib_va" in chosen:
            scores["ib_va"] = scorers["ib_va"].score(clip)
        if extractors:
            for kind, extractor in extractors.items():
                features["generated"][kind].append(extractor.features(clip))
                features["reference"][kind].append(extractor.features(partner))
            if "kl" in chosen:
                scores["kl"] = kl_divergence(
                    features["reference"]["audioset"][-1], features["generated"]["audioset"][-1]
                )
        per_clip[stem] = scores
    if unreadable:
        unpaired["unreadable"] = unreadable
    if not per_clip:
        raise MediaError(f"no clip of {generated} could be decoded")
    values = {m: float(np.mean([scores[m] for scores in per_clip.values()])) for m in chosen if m not in DISTRIBUTIONS}
    values.update(_distribution_values(chosen, features["generated"], features["reference"]))
    backbones = {m: scorers[m].name for m in ("clipsim", "clap", "ib_va") if m in chosen}
    backbones.update({m: extractors[FEATURES_OF[m]].name for m in REFERENCE_METRICS if m in chosen})
    if "av_align" in chosen:
        backbones["av_align"] = f"Farneback flow + librosa onsets ({av_align_variant} rules)"
    return Evaluation(n=len(per_clip), values=values, backbones=backbones, per_clip=per_clip, unpaired=unpaired)
