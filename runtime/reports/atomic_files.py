"""Write report files so that no reader sees a half-written file and no link planted at their path is followed.

Every report is first created under a temporary name beside its path (``mkstemp``: ``O_CREAT | O_EXCL``, so never
an existing file nor a symlink) and then renamed over the path. The rename replaces whatever was at the path (an
old report, a symlink or hard link someone planted pointing to a file elsewhere) without writing through it: a
link at ``OUT/cells.csv`` to a lab's other file leaves that file as it was. :func:`write_bytes_atomic` renames a
complete file; :func:`open_in_place` renames an empty one at once, for a report that is streamed row by row.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

__all__ = ["fsync_folder", "open_in_place", "write_bytes_atomic", "write_text_atomic"]

_READABLE_BY_ALL = 0o666


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_file_beside(path: Path) -> tuple[int, str]:
    """A new, empty file beside ``path`` under a temporary name, readable as a report is: descriptor and name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, _READABLE_BY_ALL & ~_umask())  # mkstemp makes it owner-only; a report is shared
    except BaseException:
        os.close(descriptor)
        Path(temporary).unlink(missing_ok=True)
        raise
    return descriptor, temporary


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    descriptor, temporary = _new_file_beside(path)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    write_bytes_atomic(path, text.encode("utf-8"))


def open_in_place(path: Path) -> TextIO:
    """A new, empty UTF-8 text file at ``path``, open for writing, for a report written as it goes.

    The file is made beside ``path`` and renamed over it before anything is written, so what was at ``path`` (an
    old report, a symlink, a hard link) is replaced, never truncated or written through; rows written are at
    ``path`` at once. Opened with ``newline=""``, as :mod:`csv` needs (line ends are written as given).
    """
    descriptor, temporary = _new_file_beside(path)
    try:
        os.replace(temporary, path)
        return os.fdopen(descriptor, "w", newline="", encoding="utf-8")
    except BaseException:
        os.close(descriptor)
        Path(temporary).unlink(missing_ok=True)
        raise


def fsync_folder(folder: Path) -> None:
    """Make renames and new entries in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
