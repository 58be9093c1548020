"""The verification journal: every decision a technologist makes, one JSON line each, on disk before it counts.

``RUN_DIR/verification.jsonl`` is the source of truth of a review; ``verified.csv`` and the other outputs are
made from it. The first line says what it is and which classes the run's model had::

    {"hema_verification": 1, "class_names": ["basophil", ...], "created": "2025-05-02T09:14:03+02:00"}

then one line per decision, numbered from 1 by ``rev``::

    {"rev": 1, "kind": "label", "slide": "slide_07", "cell": "exports/slide_07/c12.jpg",
     "model_label": "lymphocyte", "human_label": "blast", "user": "akim", "time": "2025-05-02T09:15:40+02:00"}
    {"rev": 2, "kind": "slide", "slide": "slide_07", "verified": true, "user": "akim", "time": "..."}

``human_label`` ``null`` takes a cell back to the model's label (an undo of its first change); ``verified``
``false`` reopens a slide. The latest line of a cell (or slide) is its state.

**Nothing is lost.** :meth:`DecisionJournal.label` and :meth:`~DecisionJournal.verify` write the line with one
``write`` and ``fsync`` it before they return, and the server answers "saved" only after that: killing the
server (or the machine) loses at most the decision in flight, which the page never showed as saved. Such a kill
may leave a torn last line; opening the journal cuts it away and says so (:attr:`DecisionJournal.repaired`). A
damaged line before the last one is not a torn write: that journal is refused untouched. Only one process uses a
journal at a time (it is locked; POSIX).

**Two tabs.** Each change names the revision of what it changes that the page saw: for a cell, the ``rev`` of the
cell's latest line (0: none); for a slide, the ``rev`` of the latest line on the slide or any of its cells. If
the journal has moved on since (another tab changed the cell, or the slide), the change is refused with
:class:`Conflict`, which the server answers with HTTP 409 and a message naming who changed what: no decision
ever overwrites another one silently. A cell of a slide marked verified cannot be changed before the slide is
reopened.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hema.runtime.reports.atomic_files import fsync_folder
from hema.runtime.verification.settings import ReviewError

__all__ = ["FORMAT", "JOURNAL_NAME", "Conflict", "DecisionJournal", "JournalError", "now"]

JOURNAL_NAME = "verification.jsonl"
FORMAT = 1
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_LABEL_FIELDS = {"slide": str, "cell": str, "model_label": str, "user": str, "time": str}
_SLIDE_FIELDS = {"slide": str, "verified": bool, "user": str, "time": str}


class JournalError(ReviewError):
    """The journal cannot be used: not a verification journal, damaged before its last line, another run's, locked."""


class Conflict(Exception):
    """A change made on a state the journal has moved on from (another tab), or to a cell of a verified slide."""


def now() -> str:
    """The local time with its UTC offset, to the second (``2025-05-02T09:15:40+02:00``)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _valid(record: object, rev: int) -> bool:
    if not isinstance(record, dict) or record.get("rev") != rev:
        return False
    fields = {"label": _LABEL_FIELDS, "slide": _SLIDE_FIELDS}.get(record.get("kind"))  # type: ignore[arg-type]
    if fields is None or not all(isinstance(record.get(name), kind) for name, kind in fields.items()):
        return False
    return record["kind"] == "slide" or record.get("human_label") is None or isinstance(record["human_label"], str)


class DecisionJournal:
    """An open, locked verification journal and the state its lines add up to. Use :meth:`open`.

    Attributes:
        path: The journal file.
        records: Every decision, in order (``records[i]["rev"] == i + 1``).
        repaired: Bytes of a torn last line cut away on opening (0: none).
    """

    def __init__(self, path: Path, descriptor: int, records: list[dict[str, Any]], repaired: int) -> None:
        self.path = path
        self.records = records
        self.repaired = repaired
        self._descriptor = descriptor
        self._lock = threading.Lock()
        self._cells: dict[str, dict[str, Any]] = {}
        self._slides: dict[str, dict[str, Any]] = {}
        self._slide_revs: dict[str, int] = {}
        for record in records:
            self._apply(record)

    @classmethod
    def open(cls, path: Path, class_names: Sequence[str]) -> DecisionJournal:
        """Open (or start) the journal of a run whose model has ``class_names``, lock it and read it.

        Raises:
            JournalError: If it is locked by another review, is not a verification journal, belongs to a run of
                another model, or is damaged before its last line.
        """
        try:
            descriptor = os.open(path, _FLAGS, 0o644)
        except OSError as error:
            reason = "a symbolic link" if error.errno == errno.ELOOP else error.strerror or str(error)
            raise JournalError(f"cannot open the verification journal {path}: {reason}") from error
        try:
            _lock(descriptor, path)
            records, repaired = _read(descriptor, path, list(class_names))
        except BaseException:
            os.close(descriptor)
            raise
        fsync_folder(path.parent)
        return cls(path, descriptor, records, repaired)

    @property
    def rev(self) -> int:
        """The number of decisions (the ``rev`` of the latest)."""
        return len(self.records)

    def cell(self, path: str) -> dict[str, Any] | None:
        """The latest label line of the cell ``path``, or ``None``."""
        return self._cells.get(path)

    def slide(self, slide: str) -> dict[str, Any] | None:
        """The latest verification line of ``slide``, or ``None``."""
        return self._slides.get(slide)

    def slide_rev(self, slide: str) -> int:
        """The ``rev`` of the latest line on ``slide`` or any of its cells (0: none)."""
        return self._slide_revs.get(slide, 0)

    def since(self, rev: int) -> list[dict[str, Any]]:
        """The decisions after ``rev``."""
        with self._lock:
            return self.records[max(0, rev) :]

    def label(
        self, *, slide: str, cell: str, model_label: str, human_label: str | None, base: int, user: str
    ) -> dict[str, Any]:
        """Record that ``user`` put the cell ``cell`` into ``human_label`` (``None``: back to the model's label).

        Args:
            slide: The cell's slide.
            cell: The cell's path (its identity).
            model_label: The model's class of the cell.
            human_label: The technologist's class, or ``None``.
            base: The ``rev`` of the cell's latest line that the change was made on (0: none).
            user: Who decided.

        Returns:
            The new line, once it is on disk.

        Raises:
            Conflict: If the cell changed since ``base`` or its slide is marked verified.
            OSError: If the line could not be written to disk (nothing is recorded).
        """
        with self._lock:
            latest = self._cells.get(cell)
            if (latest["rev"] if latest else 0) != base:
                raise Conflict(_changed_elsewhere(cell, model_label, latest))
            if (state := self._slides.get(slide)) and state["verified"]:
                raise Conflict(
                    f"slide {slide} was marked verified by {state['user']} at {state['time']}: reopen it to change "
                    "its cells"
                )
            return self._append(
                {"kind": "label", "slide": slide, "cell": cell, "model_label": model_label, "human_label": human_label}
                | {"user": user, "time": now()}
            )

    def verify(self, *, slide: str, verified: bool, base: int, user: str) -> dict[str, Any]:
        """Record that ``user`` marked ``slide`` verified (``verified=False``: reopened it).

        Raises:
            Conflict: If the slide or one of its cells changed since ``base`` (:meth:`slide_rev`).
            OSError: If the line could not be written to disk (nothing is recorded).
        """
        with self._lock:
            if self.slide_rev(slide) != base:
                latest = self.records[self.slide_rev(slide) - 1]
                raise Conflict(
                    f"slide {slide} changed elsewhere (another tab or window): {latest['user']} changed it at "
                    f"{latest['time']}. Look at it again before marking it; nothing was saved"
                )
            return self._append({"kind": "slide", "slide": slide, "verified": verified, "user": user, "time": now()})

    def close(self) -> None:
        """Release the lock and close the file."""
        os.close(self._descriptor)

    def _append(self, fields: dict[str, Any]) -> dict[str, Any]:
        record = {"rev": self.rev + 1, **fields}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        size = os.fstat(self._descriptor).st_size
        try:
            if os.write(self._descriptor, line) != len(line):
                raise OSError(errno.ENOSPC, "the disk took only part of the line")
            os.fsync(self._descriptor)
        except OSError:
            os.ftruncate(self._descriptor, size)  # no torn line is left for the next decision to follow
            raise
        self.records.append(record)
        self._apply(record)
        return record

    def _apply(self, record: dict[str, Any]) -> None:
        (self._cells if record["kind"] == "label" else self._slides)[record.get("cell") or record["slide"]] = record
        self._slide_revs[record["slide"]] = record["rev"]


def _changed_elsewhere(cell: str, model_label: str, latest: dict[str, Any] | None) -> str:
    """The conflict message for a change to ``cell`` made on an outdated state."""
    if latest is None:
        return f"{cell}: this page is out of date (the journal was started afresh); reload it. Nothing was saved"
    into = latest["human_label"] or f"the model's class {model_label}"
    return (
        f"{cell} was changed elsewhere (another tab or window): {latest['user']} put it into {into} at "
        f"{latest['time']}. The page now shows that; your change was not saved"
    )


def _lock(descriptor: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        raise JournalError(f"{path} is in use by another hema-infer review of this run: use that one") from error


def _read(descriptor: int, path: Path, class_names: list[str]) -> tuple[list[dict[str, Any]], int]:
    """The decisions in the journal, and the bytes of a torn last line cut away (a new journal gets its header)."""
    data = b""
    while chunk := os.pread(descriptor, 1 << 20, len(data)):
        data += chunk
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file ends with a newline: no partial line
    parsed: list[Any] = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append(None)
    header = parsed[0] if parsed else None
    if not parsed or (len(parsed) == 1 and header is None):  # empty, or a header torn as it was written
        os.ftruncate(descriptor, 0)
        line = {"hema_verification": FORMAT, "class_names": class_names, "created": now()}
        os.write(descriptor, (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(descriptor)
        return [], len(data)
    if not isinstance(header, dict) or "hema_verification" not in header:
        raise JournalError(f"{path} is not a hema verification journal: move it away to verify this run afresh")
    if header["hema_verification"] != FORMAT:
        raise JournalError(
            f"{path} was written by another version of hema-infer review (format {header['hema_verification']!r}, "
            f"this one reads {FORMAT})"
        )
    if header.get("class_names") != class_names:
        theirs = ", ".join(map(str, header.get("class_names") or []))
        raise JournalError(
            f"{path} is the journal of a run of a model with other classes ({theirs}), not {', '.join(class_names)}"
            ": the run was classified again. Move the journal away to start afresh"
        )
    records, torn = parsed[1:], 0
    if records and not _valid(records[-1], len(records)):
        torn = len(data) - (len(b"\n".join(lines[:-1])) + 1)
        os.ftruncate(descriptor, len(data) - torn)
        os.fsync(descriptor)
        records.pop()
    for rev, record in enumerate(records, 1):
        if not _valid(record, rev):
            raise JournalError(
                f"{path} line {rev + 1} is damaged (not a decision of this journal); it is not the last line, so "
                "not a write cut short by a crash: the journal is left untouched"
            )
    return records, torn
