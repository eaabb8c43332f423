"""Append-only JSONL records that survive being killed: each append is one write of one full line, flushed
and synced; a torn last line (a kill mid-write) is ignored on reading and cut off on the next append."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import atomic_path
from .config import read_text

logger = logging.getLogger(__name__)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All complete records; a final line without its newline (an interrupted append) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    text = read_text(path)
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]
    for number, line in enumerate(complete, start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error.msg})") from None
    if tail.strip():
        logger.warning("%s: ignoring an incomplete last line (an interrupted write)", path)
    return records


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    path = Path(path)
    _drop_torn_tail(path)
    line = json.dumps(record, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def write_jsonl(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """Replace the whole file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def iter_ids(records: list[dict[str, Any]]) -> Iterator[str]:
    return (record["id"] for record in records)


def _drop_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = handle.seek(0) or handle.read()
        handle.truncate(data.rfind(b"\n") + 1)
