"""`prepare`: sources -> standard clips (§4.1) + manifest, resumable, with every reject recorded and its reason.

Standard clip: `seconds` long (a seeded random window of the source segment, or the whole segment padded
at its end by holding the last frame and adding silence when shorter; sources under `min_seconds` are
rejected), `fps` frames per second, resized to cover `width` x `height` and centre-cropped, audio mono at
`sample_rate`. Writes are atomic and the manifest line is written last, so a killed run resumes cleanly.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..atomic import remove_stale_temporaries, write_text_atomic
from ..config import ConfigError
from ..jsonl import append_jsonl, read_jsonl, write_jsonl
from ..media import ClipStandard, MediaError, read_standard_clip, write_sounding_video, write_wav
from .manifest import CLIPS_DIR, MANIFEST_NAME, REJECTS_NAME, SETTINGS_NAME
from .sources import SourceEntry

logger = logging.getLogger(__name__)

#: fn(frames (F, H, W, 3) uint8, audio (samples,) float32, sample_rate) -> audio-visual correspondence score
AVFilter = Callable[[np.ndarray, np.ndarray, int], float]


@dataclass
class PrepareReport:
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0  # done in an earlier run

    def __str__(self) -> str:
        return f"{self.accepted} clips written, {self.rejected} rejected, {self.skipped} already done"


def load_av_filter(spec: str) -> AVFilter:
    """'package.module:function' -> the function (the paper's filter keeps ImageBind score > 0.3)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"--av-filter must look like package.module:function; got {spec!r}")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot load the audio-visual filter {spec!r}: {error}") from None
    if not callable(function):
        raise ConfigError(f"{spec!r} is not callable")
    return function


def _clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator for one clip that does not depend on the order or number of clips processed."""
    digest = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_NAME
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise ConfigError(f"{out} was prepared with other settings ({', '.join(changed)}); use a new --out folder")
    else:
        write_text_atomic(path, json.dumps(settings, indent=2))


def assign_splits(records: list[dict], test_size: int | None, seed: int) -> list[dict]:
    """Keep given splits; draw `test_size` test clips (seeded) among the others; the rest are train."""
    undecided = sorted(r["id"] for r in records if not r.get("given_split"))
    test = set()
    if test_size:
        if test_size > len(undecided):
            raise ConfigError(
                f"--test-size {test_size} is larger than the {len(undecided)} clips without a given split"
            )
        test = set(np.random.default_rng(seed).choice(undecided, size=test_size, replace=False).tolist())
    for record in records:
        if not record.get("given_split"):
            record["split"] = "test" if record["id"] in test else "train"
    return records


def prepare_dataset(
    entries: list[SourceEntry],
    out: str | Path,
    standard: ClipStandard,
    *,
    seed: int = 0,
    test_size: int | None = None,
    av_filter: AVFilter | None = None,
    av_threshold: float = 0.3,
    progress: bool = True,
) -> PrepareReport:
    out = Path(out)
    (out / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out / CLIPS_DIR)  # a run killed mid-write: its unfinished clips are written again below
    _check_settings(out, {"standard": asdict(standard), "seed": seed})
    manifest_path, rejects_path = out / MANIFEST_NAME, out / REJECTS_NAME
    done = {r["id"] for r in read_jsonl(manifest_path)} | {r["id"] for r in read_jsonl(rejects_path)}
    report = PrepareReport(skipped=sum(entry.id in done for entry in entries))

    for entry in tqdm([e for e in entries if e.id not in done], desc="prepare", disable=not progress):
        try:
            if not entry.path.is_file():
                raise MediaError("file not found")
            clip = read_standard_clip(
                entry.path, standard, segment=(entry.start, entry.end), rng=_clip_rng(seed, entry.id)
            )
            if av_filter is not None:
                score = float(av_filter(clip.frames, clip.audio, standard.sample_rate))
                if not score > av_threshold:
                    raise MediaError(f"audio-visual filter score {score:.3f} is not above {av_threshold}")
        except MediaError as error:
            append_jsonl(rejects_path, {"id": entry.id, "source": str(entry.path), "reason": str(error)})
            report.rejected += 1
            continue
        video_path, audio_path = out / CLIPS_DIR / f"{entry.id}.mp4", out / CLIPS_DIR / f"{entry.id}.wav"
        write_wav(audio_path, clip.audio[None], standard.sample_rate, subtype="PCM_16")
        write_sounding_video(video_path, clip.frames, standard.fps, clip.audio[None], standard.sample_rate)
        append_jsonl(
            manifest_path,
            {
                "id": entry.id,
                "path": f"{CLIPS_DIR}/{entry.id}.mp4",
                "audio_path": f"{CLIPS_DIR}/{entry.id}.wav",
                "source": str(entry.path),
                "source_start": entry.start,
                "source_end": entry.end,
                "start": round(clip.start, 6),
                "duration": standard.seconds,
                "padded_seconds": round(clip.padded_seconds, 6),
                "split": entry.split,
                "given_split": entry.split is not None,
                "label": entry.label,
                "captions": dict(entry.captions),
                "fps": standard.fps,
                "width": standard.width,
                "height": standard.height,
                "sample_rate": standard.sample_rate,
            },
        )
        report.accepted += 1

    records = read_jsonl(manifest_path)
    if records:
        write_jsonl(manifest_path, assign_splits(records, test_size, seed))
    return report
