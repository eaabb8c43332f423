"""A prepared dataset: `DATASET/manifest.jsonl` (one record per standard clip), `DATASET/clips/<id>.mp4` (H.264 +
AAC, for viewing and video frames) and `DATASET/clips/<id>.wav` (mono PCM at the standard rate, for audio),
`DATASET/rejects.jsonl` (sources that could not become clips, with the reason), `DATASET/prepare.json` (settings).

A manifest record:
    {"id", "path", "audio_path",            # clip files, relative to DATASET
     "source", "source_start", "source_end", # where it came from (the segment asked for, or null)
     "start", "duration", "padded_seconds",  # the clip's offset in the source; its length; padding at its end
     "split", "label", "captions": {"video": T_V, "audio": T_A, "shared": one caption for both},
     "fps", "width", "height", "sample_rate"}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..jsonl import read_jsonl

MANIFEST_NAME = "manifest.jsonl"
REJECTS_NAME = "rejects.jsonl"
SETTINGS_NAME = "prepare.json"
CLIPS_DIR = "clips"
#: the keys every manifest record must have, as strings
REQUIRED_KEYS = ("id", "path", "audio_path")


def load_manifest(dataset: str | Path, *, split: str | None = None) -> list[dict[str, Any]]:
    dataset = Path(dataset)
    path = dataset / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{dataset} is not a prepared dataset: {MANIFEST_NAME} is missing (run bridgedit prepare)"
        )
    records = read_jsonl(path)
    for number, record in enumerate(records, start=1):
        lacking = [key for key in REQUIRED_KEYS if not isinstance(record.get(key), str)]
        if lacking:
            raise ConfigError(
                f"{path}: record {number} lacks {', '.join(lacking)} (every clip needs {', '.join(REQUIRED_KEYS)}: "
                "a manifest written by bridgedit prepare)"
            )
    if split is not None:
        records = [r for r in records if r.get("split") == split]
        if not records:
            raise ConfigError(f"{path} has no clips in split {split!r}")
    return records


def clip_files(dataset: str | Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """(video .mp4, audio .wav) of a manifest record."""
    dataset = Path(dataset)
    return dataset / record["path"], dataset / record["audio_path"]
