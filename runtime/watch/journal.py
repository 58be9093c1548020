"""The watch journal: one JSON line per classified file, appended durably before anything else sees it.

``journal.jsonl`` is the source of truth of a ``hema-infer watch`` run. Each line is the result for one file as
it was when it was read::

    {"path": "slide_07/cell_0001.jpg", "slide": "slide_07", "status": "ok", "label": "neutrophil",
     "confidence": 0.97, "probabilities": [...], "error": "", "review": "",
     "size": 20417, "mtime_ns": 1733130000123456789, "sha256": "9f2c...", "moved_from": null}

The first line names the model that wrote the journal (:mod:`hema.runtime.watch.model_identity`)::

    {"hema_journal": 1, "model": ".../hema-default.onnx", "model_sha256": {".onnx": "..."}, "class_names": [...]}

A journal is resumed only by the same model (the same bytes and classes): two models' results must never mix in
one differential. A file whose first line is not such a header is not a hema journal (or one written before
hema recorded the model) and is refused untouched: only a journal's own torn last line is ever cut away.

``path`` is the image's path relative to the watched folder (with ``/`` separators). A file's row follows its
current content: ``size`` and ``mtime_ns`` say which version of the file was read (watch reads the file again
when either differs, so a file read while incomplete, or overwritten, gets a new row), and ``sha256`` of its
bytes says which cell it is, so that a file moved or renamed (same bytes at a new path, old path gone) stays one
cell: its new row names the old path in ``moved_from`` and replaces that path's row. A later line for a path
replaces the earlier one; the rows that count (:attr:`Journal.records`) are the last of each path.

A batch is appended with one ``write`` and made durable with ``fsync`` before the reports are rewritten from
the journal, so a crash at any moment leaves either the whole batch or a torn last line, which
:meth:`Journal.open` cuts away (its files are classified again on restart). Only one process may append to a
journal at a time: it is locked while open (on POSIX; Windows has no ``fcntl`` and takes no lock). A symbolic link
at the journal's path is refused, never followed: watch writes to no file elsewhere through it.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from hema.runtime.classify import CellResult, slide_of
from hema.runtime.reports.atomic_files import fsync_folder
from hema.runtime.watch.arrivals import Signature
from hema.runtime.watch.model_identity import JOURNAL_FORMAT, ModelIdentity

__all__ = ["Journal", "JournalError", "apply_record", "record_to_result", "result_to_record", "set_aside"]

Row = TypeVar("Row")


class JournalError(RuntimeError):
    """The journal cannot be used: not a hema journal, corrupt before its last line, of another model, or locked."""


def result_to_record(
    result: CellResult, key: str, signature: Signature, sha256: str | None, moved_from: str | None = None
) -> dict[str, Any]:
    """The journal line for one result (JSON-ready: NaN confidence becomes ``null``).

    Args:
        result: The classification of one file.
        key: The file's path relative to the watched folder, ``/``-separated.
        signature: ``(size, mtime_ns)`` of the file that was read.
        sha256: Hex sha256 of its bytes (``None`` if they could not be read).
        moved_from: The key this file was journaled under before it was moved or renamed (its row goes).
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
        "size": signature[0],
        "mtime_ns": signature[1],
        "sha256": sha256,
        "moved_from": moved_from,
    }


def apply_record(rows: dict[str, Row], record: dict[str, Any], row: Row) -> None:
    """Let a journal record take effect in a map of current rows (``row`` stands for ``record``).

    The record replaces the row of its path and, for a moved file, the row of the path it was moved from: one
    file, one row. The journal and the reports apply records by this one rule.
    """
    if record.get("moved_from"):
        rows.pop(record["moved_from"], None)
    rows[record["path"]] = row


def _file_version(record: dict[str, Any]) -> tuple[Any, ...]:
    """Which version of a file a record was made from: the same file read twice gives the same tuple."""
    return record["size"], record["mtime_ns"], record.get("sha256")


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
    if not all(isinstance(record.get(name), int) for name in ("size", "mtime_ns")):
        return None
    return record


class Journal:
    """An append-only JSON-lines journal of cell results, opened for one watch run.

    Attributes:
        path: The journal file.
        repaired_bytes: How many bytes of a torn last line :meth:`open` cut away (0 if none).
    """

    def __init__(self, path: Path, descriptor: int, records: list[dict[str, Any]], repaired: int) -> None:
        self.path = path
        self.repaired_bytes = repaired
        self._descriptor = descriptor
        self._current: dict[str, dict[str, Any]] = {}
        self._signatures: dict[str, Signature] = {}
        self._keys_by_sha256: dict[str, set[str]] = {}
        for record in records:
            self._take(record)

    @classmethod
    def open(cls, path: Path, model: ModelIdentity) -> Journal:
        """Open (or create) the journal, lock it, check whose it is, read it and cut away a torn last line.

        Args:
            path: ``OUT/journal.jsonl``.
            model: The model of this run: a new journal's header names it, an existing one must name it too.

        Raises:
            JournalError: If another process holds the journal, the file is not a hema journal (or is a symbolic
                link, which is never followed), the journal belongs to another model, or a line before the last
                is corrupt. The file is left as it was.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            if path.is_symlink():  # O_NOFOLLOW refuses it too, where the OS has it
                raise OSError(errno.ELOOP, "symbolic link")
            descriptor = os.open(path, flags, 0o644)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise JournalError(f"{path} is a symbolic link, never followed: give watch a journal of its own") from error
        try:
            _lock(descriptor, path)
            if created:
                fsync_folder(path.parent)
            records, repaired = _read_and_repair(descriptor, path, model)
        except BaseException:
            os.close(descriptor)
            raise
        return cls(path, descriptor, records, repaired)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The record that counts for each file (the last one of its path), in the order they took effect."""
        return list(self._current.values())

    @property
    def signatures(self) -> Mapping[str, Signature]:
        """``(size, mtime_ns)`` of each file as it was read: a file whose signature differs must be read again."""
        return MappingProxyType(self._signatures)

    def keys_with_sha256(self, sha256: str) -> list[str]:
        """The journaled files whose bytes had this sha256 (where a moved file may come from), sorted."""
        return sorted(self._keys_by_sha256.get(sha256, ()))

    def __contains__(self, key: object) -> bool:
        return key in self._current

    def __len__(self) -> int:
        return len(self._current)

    def append(self, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append records with one write and ``fsync`` them; a record of a file version already journaled is dropped.

        When this returns, the records survive a crash or power loss. If the write fails (a full disk), the
        journal is cut back to where it was and the error is raised.

        Returns:
            The records appended.
        """
        fresh: list[dict[str, Any]] = []
        versions = {key: _file_version(record) for key, record in self._current.items()}
        for record in records:
            if versions.get(record["path"]) != (version := _file_version(record)):
                versions[record["path"]] = version
                fresh.append(record)
        if not fresh:
            return []
        _append_lines(self._descriptor, fresh)
        for record in fresh:
            self._take(record)
        return fresh

    def _take(self, record: dict[str, Any]) -> None:
        """Let a record take effect: it becomes its file's row and replaces the row of a path it was moved from."""
        for key in (record["path"], record.get("moved_from")):
            displaced = self._current.get(key) if key else None
            if displaced is not None:
                self._signatures.pop(key, None)
                self._keys_by_sha256.get(displaced.get("sha256"), set()).discard(key)
        apply_record(self._current, record, record)
        self._signatures[record["path"]] = (record["size"], record["mtime_ns"])
        if record.get("sha256"):
            self._keys_by_sha256.setdefault(record["sha256"], set()).add(record["path"])

    def close(self) -> None:
        """Release the lock and close the file."""
        if self._descriptor >= 0:
            os.close(self._descriptor)
            self._descriptor = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _append_lines(descriptor: int, lines: Sequence[dict[str, Any]]) -> None:
    """Append JSON lines with one write and ``fsync``; on failure (a full disk) cut the file back and raise."""
    data = "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines).encode("utf-8")
    start = os.fstat(descriptor).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    except BaseException:
        try:
            os.ftruncate(descriptor, start)
        except OSError:
            pass  # the next open cuts the torn line away
        raise


def _written_by(header_line: bytes, path: Path) -> ModelIdentity | None:
    """The model a journal's first line names, or ``None`` if the line is no journal header."""
    try:
        header = json.loads(header_line)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict) or not isinstance(header.get("hema_journal"), int):
        return None
    if header["hema_journal"] > JOURNAL_FORMAT:
        raise JournalError(f"{path} was written by a newer hema (journal format {header['hema_journal']}): update hema")
    return ModelIdentity.from_header(header)


def _read_and_repair(descriptor: int, path: Path, model: ModelIdentity) -> tuple[list[dict[str, Any]], int]:
    """Check the header and read every record; truncate a torn last line away and fsync the cut.

    An empty file (new, or created by a run that stopped before its first write) gets ``model``'s header. Whose
    journal it is, is settled before anything is cut: a file that is not a hema journal, or is another model's,
    is refused as it is.
    """
    size = os.fstat(descriptor).st_size
    data = path.read_bytes()[:size]
    if not data:
        _append_lines(descriptor, [model.header()])
        return [], 0
    end = data.find(b"\n")
    written_by = _written_by(data[:end], path) if end >= 0 else None
    if written_by is None:
        raise JournalError(
            f"{path} is not a hema watch journal (its first line is no journal header, as in journals written "
            "before hema recorded the model): it was left as it is. Give watch another --out folder, or "
            "--new-journal to move it aside and start a new journal"
        )
    if not written_by.same_model(model):
        raise JournalError(
            f"{path} was written by another model, {written_by.describe()}; this run's is {model.describe()}. One "
            "journal must not mix two models' results: use --new-journal to move it aside (nothing is deleted) and "
            "start a new journal, or another --out folder"
        )
    lines = data[end + 1 :].split(b"\n")
    keep = len(data)
    if lines[-1]:  # the last write was torn before its newline
        keep -= len(lines[-1])
    lines.pop()
    if lines and _parse(lines[-1]) is None:  # a terminated but garbled last line (zero-filled after power loss)
        keep -= len(lines.pop()) + 1
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=2):
        record = _parse(line)
        if record is None:
            raise JournalError(f"{path}: line {number} is not a journal record; the journal is damaged")
        records.append(record)
    if keep < size:
        os.ftruncate(descriptor, keep)
        os.fsync(descriptor)
    return records, size - keep


def set_aside(path: Path, folder: Path, companions: Sequence[Path] = ()) -> bool:
    """Move the journal at ``path``, and those of ``companions`` that exist, into ``folder``; delete nothing.

    The journal is locked first, so that the journal of a watch still running is never moved away under it, and
    no watch can rewrite the companions (the reports made from the journal) while they are moved.

    Args:
        path: The journal.
        folder: Where to move it; created here (it must not exist yet).
        companions: Files that belong with the journal.

    Returns:
        Whether there was a journal to move.

    Raises:
        JournalError: If another process holds the journal.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        return False
    try:
        _lock(descriptor, path)
        folder.mkdir(parents=True)
        os.rename(path, folder / path.name)
        for companion in companions:
            if companion.is_file():
                os.rename(companion, folder / companion.name)
        fsync_folder(folder)
        fsync_folder(path.parent)
    finally:
        os.close(descriptor)
    return True


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
