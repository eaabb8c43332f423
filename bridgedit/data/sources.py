"""Where source videos come from: a folder, a CSV/JSONL manifest, or a known dataset layout.

Every reader returns the same `SourceEntry` list. Layouts expected:

- folder: any tree of .mp4 / .mkv / .webm / .mov / .avi files; ids from the relative path.
- manifest (.csv with a header, or .jsonl): `path` (absolute, or relative to the manifest's folder) and
  optionally `id`, `start` and `end` (seconds), `split`, `label`, and captions `video_caption`,
  `audio_caption`, `caption` (one shared caption).
- avsync15: `ROOT/videos/<class>/<clip>.mp4` with `ROOT/train.txt` and `ROOT/test.txt`, each line one
  path relative to `videos/` (`<class>/<clip>.mp4`); the class becomes the label, the file the split.
- vggsound-ss: `ROOT/vggss.json`, a list of objects with `"file"` (the clip name, e.g. `<youtube id>_<start>`)
  and `"class"`, and the clips as `ROOT/video/<file>.mp4` (or `ROOT/videos/`); no split is given (draw a
  test set with `--test-size`). Listed clips missing on disk are rejected with that reason.
- landscape: `ROOT/train/<class>/<clip>.mp4` and `ROOT/test/<class>/<clip>.mp4`.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, read_text

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")
LAYOUTS = ("auto", "folder", "manifest", "avsync15", "vggsound-ss", "landscape")
CAPTION_COLUMNS = {"video_caption": "video", "audio_caption": "audio", "caption": "shared"}


@dataclass(frozen=True)
class SourceEntry:
    id: str
    path: Path
    start: float | None = None
    end: float | None = None
    split: str | None = None
    label: str | None = None
    captions: dict[str, str] = field(default_factory=dict)  # keys: video, audio, shared


def safe_id(text: str) -> str:
    """A file-name-safe id: path separators become '__', anything else unusual '_'."""
    text = text.replace("/", "__").replace("\\", "__")
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("._") or "clip"


def _unique(entries: list[SourceEntry]) -> list[SourceEntry]:
    seen: dict[str, int] = {}
    unique = []
    for entry in entries:
        count = seen.get(entry.id, 0)
        seen[entry.id] = count + 1
        unique.append(entry if count == 0 else SourceEntry(**{**entry.__dict__, "id": f"{entry.id}-{count + 1}"}))
    return unique


def _videos_under(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")  # hidden: temporaries
    )


def from_folder(root: Path) -> list[SourceEntry]:
    return _unique(
        [SourceEntry(id=safe_id(str(p.relative_to(root).with_suffix(""))), path=p) for p in _videos_under(root)]
    )


def _float_or_none(value, where: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a number of seconds") from None


def from_manifest(path: Path) -> list[SourceEntry]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    elif path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    else:
        raise ConfigError(f"{path}: a manifest must be .csv or .jsonl")
    entries = []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"{path}:{number}"
        if not row.get("path"):
            raise ConfigError(f'{where}: the "path" column is missing or empty')
        video = Path(row["path"])
        video = video if video.is_absolute() else path.parent / video
        start, end = _float_or_none(row.get("start"), where), _float_or_none(row.get("end"), where)
        if start is not None and end is not None and end <= start:
            raise ConfigError(f"{where}: end ({end}) must be after start ({start})")
        default_id = video.stem + (f"_{round(start * 1000)}ms" if start is not None else "")
        entries.append(
            SourceEntry(
                id=safe_id(row.get("id") or default_id),
                path=video,
                start=start,
                end=end,
                split=row.get("split") or None,
                label=row.get("label") or None,
                captions={key: row[column] for column, key in CAPTION_COLUMNS.items() if row.get(column)},
            )
        )
    return _unique(entries)


def avsync15(root: Path) -> list[SourceEntry]:
    entries = []
    for split in ("train", "test"):
        listing = root / f"{split}.txt"
        if not listing.is_file():
            raise ConfigError(f"{root} is not an AVSync15 folder: {listing.name} is missing")
        for line in read_text(listing).splitlines():
            relative = line.strip()
            if relative:
                path = root / "videos" / relative
                entries.append(
                    SourceEntry(
                        id=safe_id(str(Path(relative).with_suffix(""))),
                        path=path,
                        split=split,
                        label=Path(relative).parent.name or None,
                    )
                )
    return _unique(entries)


def vggsound_ss(root: Path) -> list[SourceEntry]:
    index = root / "vggss.json"
    if not index.is_file():
        raise ConfigError(f"{root} is not a VGGSound-SS folder: vggss.json is missing")
    folder = next((root / name for name in ("video", "videos") if (root / name).is_dir()), root)
    entries = []
    for item in json.loads(index.read_text()):
        name = item["file"]
        path = folder / name if Path(name).suffix else folder / f"{name}.mp4"
        entries.append(SourceEntry(id=safe_id(Path(name).stem), path=path, label=item.get("class")))
    return _unique(entries)


def landscape(root: Path) -> list[SourceEntry]:
    entries = []
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise ConfigError(f"{root} is not a Landscape folder: {split}/ is missing")
        for path in _videos_under(root / split):
            entries.append(
                SourceEntry(
                    id=safe_id(f"{split}/{path.relative_to(root / split).with_suffix('')}"),
                    path=path,
                    split=split,
                    label=path.parent.name,
                )
            )
    return _unique(entries)


def detect_layout(source: Path) -> str:
    if source.is_file():
        return "manifest"
    if (source / "train.txt").is_file() and (source / "videos").is_dir():
        return "avsync15"
    if (source / "vggss.json").is_file():
        return "vggsound-ss"
    if (source / "train").is_dir() and (source / "test").is_dir():
        return "landscape"
    return "folder"


def read_sources(source: str | Path, layout: str = "auto") -> tuple[str, list[SourceEntry]]:
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"source {source} does not exist")
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    layout = detect_layout(source) if layout == "auto" else layout
    readers = {
        "folder": from_folder,
        "manifest": from_manifest,
        "avsync15": avsync15,
        "vggsound-ss": vggsound_ss,
        "landscape": landscape,
    }
    entries = readers[layout](source)
    if not entries:
        raise ConfigError(f"no videos found in {source} (layout {layout}; extensions {', '.join(VIDEO_EXTENSIONS)})")
    return layout, entries
