"""A classify run's reports replace the previous run's all together, or not at all.

A run writes its reports in ``OUT`` under staged names and moves them into place only once all are complete:

- ``cells.csv.partial``: the rows, streamed and flushed one by one as cells are classified, so a run that is
  killed keeps every row it classified there (until the next run into ``OUT`` starts a new one);
- ``summary.json.partial`` and ``report.html.partial``: written whole once every cell is classified;
- then :meth:`StagedReports.commit` records the reports of the run in ``OUT/.hema.commit`` (written and flushed
  to disk first) and renames each staged file over its report. A ``--no-html`` run removes the previous run's
  ``report.html``, which would show other cells than the new ``cells.csv``.

So ``cells.csv``, ``summary.json`` and ``report.html`` are either all the previous run's or all the new run's:
a run that fails (an exception, Ctrl-C, SIGTERM, ``kill -9``, a crash of the engine) before the commit leaves
them untouched, byte for byte. A crash during the commit's renames (microseconds, with SIGINT and SIGTERM held
back) leaves ``.hema.commit``: the next run into ``OUT`` (``classify`` or ``watch``) finishes those renames
first (:func:`claim_output`), as the record says, before it does anything else.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from hema.runtime.classify import CellResult
from hema.runtime.reports.atomic_files import fsync_folder, open_in_place, write_text_atomic
from hema.runtime.reports.output_lock import OutputError, lock_output
from hema.runtime.reports.tables import CsvCellWriter

__all__ = [
    "CELLS_NAME",
    "COMMIT_NAME",
    "HTML_NAME",
    "PARTIAL_SUFFIX",
    "REPORT_NAMES",
    "SUMMARY_NAME",
    "StagedReports",
    "claim_output",
    "finish_commit",
]

CELLS_NAME, SUMMARY_NAME, HTML_NAME = "cells.csv", "summary.json", "report.html"
REPORT_NAMES = (CELLS_NAME, SUMMARY_NAME, HTML_NAME)
PARTIAL_SUFFIX = ".partial"
COMMIT_NAME = ".hema.commit"


def partial_path(out: Path, name: str) -> Path:
    """Where a run stages the report ``name`` (``OUT/cells.csv.partial``)."""
    return out / f"{name}{PARTIAL_SUFFIX}"


@contextmanager
def claim_output(out: Path) -> Iterator[Path]:
    """Lock ``out`` for this run (:func:`~hema.runtime.reports.output_lock.lock_output`) and finish a commit that a
    killed run left half done; yield ``out``.

    Raises:
        OutputError: If another run holds ``out``, or it cannot be created, locked or written.
    """
    with lock_output(out):
        try:
            finish_commit(out)
        except OSError as error:
            raise OutputError(f"cannot finish moving the last run's reports into place in {out}: {error}") from error
        yield out


def finish_commit(out: Path) -> bool:
    """Move the staged reports that ``OUT/.hema.commit`` names into place; return whether there was a commit.

    Idempotent: a report already moved is not moved again, so a crash while finishing is finished next time.
    The caller must hold ``out``'s lock.

    Raises:
        OutputError: If ``.hema.commit`` is not a record hema wrote (the reports are then left as they are).
    """
    record = out / COMMIT_NAME
    try:
        names = record.read_text(encoding="utf-8").split()
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as error:
        raise OutputError(f"cannot read {record}: {error}") from error
    if not {CELLS_NAME, SUMMARY_NAME} <= set(names) <= set(REPORT_NAMES):
        raise OutputError(f"{record} is not a record hema wrote: move it away to use {out}")
    for name in REPORT_NAMES:
        if name not in names:
            (out / name).unlink(missing_ok=True)  # the previous run's page, not made again (--no-html)
        elif os.path.lexists(staged := partial_path(out, name)):
            os.replace(staged, out / name)
    fsync_folder(out)
    record.unlink()
    fsync_folder(out)
    return True


class StagedReports:
    """The reports of one classify run, staged under ``.partial`` names and moved into place by :meth:`commit`.

    Use it as a context manager, inside :func:`claim_output`: leaving the block without a commit keeps
    ``cells.csv.partial`` (the rows classified so far) and removes the other staged files.

    Args:
        out: The output folder (locked by the caller).
        class_names: The model's classes, for ``cells.csv``'s columns.
    """

    def __init__(self, out: Path, class_names: Sequence[str]) -> None:
        self.out = out
        self.rows = 0
        self.committed = False
        self.names: tuple[str, ...] = ()  # the reports moved into place, once committed
        self._recorded = False  # .hema.commit names the staged files: they belong to the commit now
        self._remove_staged(SUMMARY_NAME, HTML_NAME)  # left by an earlier run killed while writing them
        try:
            self._stream: TextIO = open_in_place(self.partial(CELLS_NAME))  # never through a link planted there
        except OSError as error:
            raise OutputError(f"cannot write {self.partial(CELLS_NAME)}: {error.strerror or error}") from error
        self._cells = CsvCellWriter(self._stream, class_names)

    def partial(self, name: str) -> Path:
        """The staged path of the report ``name`` (one of :data:`REPORT_NAMES`)."""
        return partial_path(self.out, name)

    def write(self, result: CellResult) -> None:
        """Append one row to ``cells.csv.partial`` and flush it."""
        try:
            self._cells.write(result)
        except OSError as error:
            raise OutputError(f"cannot write {self.partial(CELLS_NAME)}: {error.strerror or error}") from error
        self.rows += 1

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """Yield the staged path to write the report ``name`` to; a failure to write it is an :class:`OutputError`."""
        try:
            yield self.partial(name)
        except OSError as error:
            raise OutputError(f"cannot write {self.partial(name)}: {error.strerror or error}") from error

    def commit(self, names: Sequence[str]) -> None:
        """Move the staged reports ``names`` (``cells.csv`` and ``summary.json`` among them) into place together.

        Every staged file is on disk before ``.hema.commit`` is written, and the renames run with SIGINT and
        SIGTERM held back; reports not in ``names`` (``report.html`` after ``--no-html``) are removed.
        """
        try:
            self._close(durable=True)
            with _signals_held():
                write_text_atomic(self.out / COMMIT_NAME, "\n".join(names) + "\n")
                self._recorded = True
                fsync_folder(self.out)
                finish_commit(self.out)
        except OSError as error:
            raise OutputError(f"cannot move the reports into place in {self.out}: {error}") from error
        self.committed = True
        self.names = tuple(names)

    def __enter__(self) -> StagedReports:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self._close(durable=False)
            if not self._recorded:  # else the next run into OUT finishes the commit with them
                self._remove_staged(SUMMARY_NAME, HTML_NAME)

    def _close(self, durable: bool) -> None:
        if self._stream.closed:
            return
        try:
            self._stream.flush()
            if durable:
                os.fsync(self._stream.fileno())
        finally:
            self._stream.close()

    def _remove_staged(self, *names: str) -> None:
        for name in names:
            try:
                self.partial(name).unlink(missing_ok=True)
            except OSError:
                pass  # staged files are never read unless a commit record names them


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block (POSIX, main thread); they are delivered when it ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
