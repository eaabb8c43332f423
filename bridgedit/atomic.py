"""Atomic file writes: the final path either holds a complete file or is untouched, never a partial one."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final_path`; on success it replaces `final_path`, on failure it is removed.

    The temporary file keeps the final suffix (e.g. ".mp4") so that writers choosing a format by
    extension behave the same.
    """
    final = Path(final_path)
    if final.is_dir():
        raise IsADirectoryError(f"{final} is a directory, not a file path")
    if not final.parent.exists():
        raise FileNotFoundError(f"output folder {final.parent} does not exist")
    if not os.access(final.parent, os.W_OK):
        raise PermissionError(f"output folder {final.parent} is not writable")
    fd, temporary = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    temporary = Path(temporary)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; a finished file gets the usual mode
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


#: the name `atomic_path` gives a temporary file: ".{final name}.{mkstemp's 8 random characters}{suffix}"
TEMPORARY_NAME = re.compile(r"^\.(?P<final>.+)\.[A-Za-z0-9_]{8}(?P<suffix>\.[^.]+)?$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that writes killed mid-way left in `folder` (run before a job writes there again,
    never while another writer may be running); returns what was removed."""
    removed = []
    for path in Path(folder).glob(".*"):
        if path.is_file() and TEMPORARY_NAME.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
