"""The watch journal: one JSON line per classified cell, appended durably before anything else sees it.

``journal.jsonl`` is the source of truth of a ``hema-infer watch`` run. Each line is one cell::

    {"path": "slide_07/cell_0001.jpg", "slide": "slide_07", "status": "ok", "label": "neutrophil",
     "confidence": 0.97, "probabilities": [...], "error": "", "review": ""}

``path`` is the image's path relative to the watched folder (with ``/`` separators), the key that says a cell
is done. A batch is appended with one ``write`` and made durable with ``fsync`` before the reports are
rewritten from the journal, so a crash at any moment leaves either the whole batch or a torn last line, which
:meth:`Journal.open` cuts away (its cells are classified again on restart). Only one process may append to a
journal at a time: it is locked while open (on POSIX; Windows has no ``fcntl`` and takes no lock).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from hema.runtime.classify import CellResult, slide_of

__all__ = ["Journal", "JournalError", "record_to_result", "result_to_record"]


class JournalError(RuntimeError):
    """The journal cannot be used: corrupt before its last line, written by another model, or locked."""


def result_to_record(result: CellResult, key: str) -> dict[str, Any]:
    """The journal line for one result (JSON-ready: NaN confidence becomes ``null``).

    Args:
        result: The classification of one file.
        key: The file's path relative to the watched folder, ``/``-separated.
    """
    ok = result.status == "ok" and result.probabilities is not None
    return {
        "path": key,
        "slide": result.slide,
        "status": result.status,
        "label": result.label,
        "confidence": float(result.confidence) if ok and math.isfinite(result.confidence) else None,
        "probabilities": [float(p) for p in np.asarray(result.probabilities).ravel()] if ok else None,
        "error": result.error,
        "review": result.review,
    }


def record_to_result(record: dict[str, Any], root: Path) -> CellResult:
    """The :class:`CellResult` a journal line stands for; its path is ``root`` joined with the key."""
    path = root.joinpath(*PurePosixPath(record["path"]).parts)
    probabilities = record.get("probabilities")
    confidence = record.get("confidence")
    return CellResult(
        path=path,
        slide=record.get("slide") or slide_of(path),
        status=record["status"],
        label=record.get("label") or "",
        confidence=float("nan") if confidence is None else float(confidence),
        probabilities=None if probabilities is None else np.asarray(probabilities, dtype=np.float64),
        error=record.get("error") or "",
        review=record.get("review") or "",
    )


def _parse(line: bytes) -> dict[str, Any] | None:
    """A journal record, or ``None`` if the line is not one (torn, zero-filled, foreign)."""
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or "status" not in record:
        return None
    return record


class Journal:
    """An append-only JSON-lines journal of cell results, opened for one watch run.

    Attributes:
        path: The journal file.
        records: Every record in the journal, one per key, in the order they were appended.
        repaired_bytes: How many bytes of a torn last line :meth:`open` cut away (0 if none).
        duplicates: Records whose key was already journaled; they are ignored (the first one counts).
    """

    def __init__(self, path: Path, descriptor: int, records: list[dict[str, Any]], repaired: int, dups: int) -> None:
        self.path = path
        self.records = records
        self.repaired_bytes = repaired
        self.duplicates = dups
        self._descriptor = descriptor
        self._keys = {record["path"] for record in records}

    @classmethod
    def open(cls, path: Path, classes: int | None = None) -> Journal:
        """Open (or create) the journal, lock it, read it and cut away a torn last line.

        Args:
            path: ``OUT/journal.jsonl``.
            classes: The model's number of classes; a journal whose probabilities have another length was
                written by another model and is refused.

        Raises:
            JournalError: If another process holds the journal, a line before the last is corrupt, or the
                journal belongs to another model.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
        try:
            _lock(descriptor, path)
            if created:
                _fsync_folder(path.parent)
            records, repaired, duplicates = _read_and_repair(descriptor, path, classes)
        except BaseException:
            os.close(descriptor)
            raise
        return cls(path, descriptor, records, repaired, duplicates)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append records with one write and ``fsync`` them; records whose key is already journaled are dropped.

        When this returns, the records survive a crash or power loss. If the write fails (a full disk), the
        journal is cut back to where it was and the error is raised.

        Returns:
            The records appended.
        """
        fresh: list[dict[str, Any]] = []
        keys: set[str] = set()
        for record in records:
            if record["path"] not in self._keys and record["path"] not in keys:
                keys.add(record["path"])
                fresh.append(record)
        if not fresh:
            return []
        data = "".join(json.dumps(record, allow_nan=False) + "\n" for record in fresh).encode("utf-8")
        start = os.fstat(self._descriptor).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._descriptor, view) :]
            os.fsync(self._descriptor)
        except BaseException:
            try:
                os.ftruncate(self._descriptor, start)
            except OSError:
                pass  # the next open cuts the torn line away
            raise
        self._keys |= keys
        self.records.extend(fresh)
        return fresh

    def close(self) -> None:
        """Release the lock and close the file."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_and_repair(descriptor: int, path: Path, classes: int | None) -> tuple[list[dict[str, Any]], int, int]:
    """Read every record; truncate a torn (unterminated or unparsable) last line away and fsync the cut."""
    size = os.fstat(descriptor).st_size
    data = path.read_bytes()[:size]
    lines = data.split(b"\n")
    keep = len(data)
    if lines[-1]:  # the last write was torn before its newline
        keep -= len(lines[-1])
    lines.pop()
    if lines and _parse(lines[-1]) is None:  # a terminated but garbled last line (zero-filled after power loss)
        keep -= len(lines.pop()) + 1
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = 0
    for number, line in enumerate(lines, start=1):
        record = _parse(line)
        if record is None:
            raise JournalError(f"{path}: line {number} is not a journal record; the journal is damaged")
        probabilities = record.get("probabilities")
        if classes is not None and probabilities is not None and len(probabilities) != classes:
            raise JournalError(
                f"{path} was written by a model with {len(probabilities)} classes, this one has {classes}: "
                "use another --out folder"
            )
        if record["path"] in seen:
            duplicates += 1
            continue
        seen.add(record["path"])
        records.append(record)
    if keep < size:
        os.ftruncate(descriptor, keep)
        os.fsync(descriptor)
    return records, size - keep, duplicates


def _lock(descriptor: int, path: Path) -> None:
    """Take an exclusive lock on the open journal, released by the OS when the process ends (even ``kill -9``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        raise JournalError(f"{path} is in use by another hema-infer watch writing to the same folder") from error


def _fsync_folder(folder: Path) -> None:
    """Make a new file's directory entry durable (POSIX; a no-op where folders cannot be opened)."""
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
