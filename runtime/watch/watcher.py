"""Classify cell images as an analyser writes them into a folder, each exactly once, across crashes and restarts.

How every image ends with exactly one row:

1. ``OUT/journal.jsonl`` (:mod:`hema.runtime.watch.journal`) is the only record of what is done. A batch's results
   are appended to it and ``fsync``-ed before they are shown anywhere else; the reports are regenerated from
   the journal alone (:mod:`hema.runtime.watch.reports`).
2. On start the journal is read (a torn last line from a crash is cut away), a file journaled with its present
   size and modification time is done and not classified again, and the reports are rewritten from it at once.
3. A crash between the engine's output and the append loses only results that are in no file: those images
   are not in the journal, so they are classified on restart. A crash during the append leaves a torn line,
   cut away on restart: the same. A crash after the append and before the reports are rewritten leaves stale
   reports, rebuilt from the journal on restart. The reports are replaced whole and atomically, never appended
   to, and hold the journal's last row of each path, so no file can be counted twice; the journal itself
   refuses a second row for a version of a file it already holds.
4. Only one watch process may write to an output folder (the journal is locked while open); ``hema-infer watch``
   also holds ``OUT/.hema.lock`` (:mod:`hema.runtime.reports.output_lock`), as ``classify`` does, so the two never
   share an output folder.
5. Only the model that started a journal may add to it (its header names the model's sha256 and classes). Another
   model needs a new journal: ``new_journal`` moves the old one, and the reports made from it, into
   ``OUT/earlier/<UTC time>/``; nothing is deleted.

A file is read only once it has settled (:mod:`hema.runtime.watch.arrivals`); if its size or modification time
changed between settling and the append, its result is dropped and it is read again when it settles anew.

A file's row follows its present content. A journaled file whose size or modification time changes (an
incomplete file the analyser finished, an overwritten one) is classified again once it settles, and its new
row replaces the old. A file that appears with the bytes (sha256) of a journaled file whose path is gone was
moved or renamed: its row replaces the old path's, so it stays one cell. A file that disappears without
reappearing elsewhere keeps its row (a folder a network share briefly fails to list must not lose its cells).
The sha256 is taken after the file was classified and before its signature is checked again, so the bytes hashed
are the bytes classified unless a writer changed them without changing the size or the modification time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hema.runtime.classify import CellResult, classify_files
from hema.runtime.discovery import slide_name
from hema.runtime.engines.base import Engine
from hema.runtime.manifest import file_sha256
from hema.runtime.watch.arrivals import Arrival, ArrivalScanner, file_signature
from hema.runtime.watch.journal import Journal, result_to_record, set_aside
from hema.runtime.watch.model_identity import ModelIdentity
from hema.runtime.watch.reports import CELLS_NAME, HTML_NAME, SUMMARY_NAME, JournalReports

__all__ = [
    "EARLIER_NAME",
    "JOURNAL_NAME",
    "StopFlag",
    "WatchOutcome",
    "WatchSettings",
    "stop_on_signals",
    "watch_folder",
]

JOURNAL_NAME = "journal.jsonl"
EARLIER_NAME = "earlier"
"""Folder inside ``OUT`` where ``new_journal`` moves earlier journals, each with its reports."""


@dataclass(frozen=True)
class WatchSettings:
    """How ``hema-infer watch`` polls, waits and batches.

    Attributes:
        batch_size: Images per engine call; also the unit that is journaled (and lost at most, in a crash).
        decode_threads: Threads decoding images.
        poll_interval: Seconds between two scans of the folder when there is nothing to do.
        settle: Seconds a file's size and modification time must stay unchanged before it is read.
        empty_timeout: Seconds an empty file must stay empty before it gets an error row.
        report_interval: Least seconds between two report rewrites while cells stream in.
        once: Process what is in the folder (waiting for it to settle) and return, instead of watching on.
    """

    batch_size: int = 32
    decode_threads: int = 1
    poll_interval: float = 1.0
    settle: float = 2.0
    empty_timeout: float = 30.0
    report_interval: float = 3.0
    once: bool = False


@dataclass(frozen=True)
class WatchOutcome:
    """What a watch run did.

    Attributes:
        summary: The final ``summary.json`` (all journaled cells, including earlier runs').
        resumed: Cells already in the journal when the run started.
        classified: Cells journaled by this run.
        repaired_bytes: Bytes of a torn last journal line cut away at start (0 if none).
        stopped_by: The signal that stopped the run (empty if it ended by itself).
    """

    summary: dict[str, Any]
    resumed: int
    classified: int
    repaired_bytes: int
    stopped_by: str


class StopFlag:
    """Asks the watch loop to stop after the current batch; safe to set from a signal handler or another thread."""

    def __init__(self) -> None:
        self.reason = ""
        self._set = False

    def set(self, reason: str = "stop") -> None:
        """Ask the loop to stop (a plain assignment: no lock that a signal handler could deadlock on)."""
        self.reason = self.reason or reason
        self._set = True

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self._set

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early on a stop; return whether a stop was asked for."""
        deadline = time.monotonic() + seconds
        while not self._set and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))
        return self._set


@contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into a clean stop while inside the block; a second signal stops at once.

    The handler only sets ``stop`` (it never writes, so it cannot break a write in progress). A second signal
    raises :class:`KeyboardInterrupt`: the journal still holds every finished batch. Outside the main thread
    (where Python allows no handlers) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(number: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set(signal.Signals(number).name)

    names = ("SIGINT", "SIGTERM", "SIGBREAK")
    previous = {
        getattr(signal, name): signal.signal(getattr(signal, name), handle) for name in names if hasattr(signal, name)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _quiet(message: str) -> None:
    """The default log: say nothing."""


def watch_folder(
    engine: Engine,
    root: Path,
    out: Path,
    settings: WatchSettings = WatchSettings(),
    stop: StopFlag | None = None,
    log: Callable[[str], None] = _quiet,
    on_batch: Callable[[int], None] | None = None,
    new_journal: bool = False,
) -> WatchOutcome:
    """Classify the images in ``root`` as they settle, journal them and keep the reports in ``out`` current.

    Args:
        engine: A loaded classifier.
        root: The watched folder (searched recursively; one sub-folder per slide).
        out: Folder for ``journal.jsonl``, ``cells.csv``, ``summary.json`` (and ``report.html``).
        settings: Polling, settling and batching.
        stop: Set it to end the run after the current batch (see :func:`stop_on_signals`).
        log: Receives one line per notable event (resumed run, unreadable, changed or moved file).
        on_batch: Called with the number of cells journaled after each batch (for progress bars).
        new_journal: Move the journal in ``out`` (and its reports) into ``out/earlier/<UTC time>/`` and start a
            new one, instead of resuming it (needed to go on with another model).

    Raises:
        JournalError: If the journal is not a hema journal, is damaged, belongs to another model or is used by
            another process.
        ModelError: If the model is a backbone-only export.
    """
    engine.require_classifier()
    stop = stop if stop is not None else StopFlag()
    class_names = engine.card.class_names
    if new_journal and (earlier := _set_aside_earlier_run(out)) is not None:
        log(f"new journal: the earlier journal and its reports were moved to {earlier}")
    with Journal.open(out / JOURNAL_NAME, ModelIdentity.of_engine(engine)) as journal:
        if journal.repaired_bytes:
            log(f"journal: cut away a torn last line ({journal.repaired_bytes} bytes) left by an interrupted run")
        resumed = len(journal)
        if resumed:
            log(f"resuming: {resumed} cell(s) already in {journal.path} are not classified again unless changed")
        description = f"{engine.path} on {engine.describe()}"
        reports = JournalReports(out, root, class_names, str(engine.path), description, settings.report_interval, log)
        reports.add(journal.records)
        reports.write()  # the journal may be ahead of the reports after a crash
        scanner = ArrivalScanner(root, settings.settle, settings.empty_timeout, exclude=_inside(out, root))
        per_cycle = max(settings.batch_size * 8, 256)  # rescan between chunks of a long backlog
        classified = 0
        while not stop.is_set():
            ready = scanner.poll(journal.signatures)
            if ready:
                with closing(_process(engine, root, ready[:per_cycle], settings, stop)) as batches:
                    for batch in batches:
                        classified += _commit(batch, root, journal, scanner, reports, log, on_batch)
                continue
            if reports.dirty:
                reports.write(scanner.skipped)
            if settings.once and scanner.waiting == 0:
                break
            stop.wait(settings.poll_interval)
        summary = reports.write(scanner.skipped)
    return WatchOutcome(summary, resumed, classified, journal.repaired_bytes, stop.reason)


def _set_aside_earlier_run(out: Path) -> Path | None:
    """Move ``out``'s journal and the reports made from it into a new ``out/earlier/<UTC time>/``; return it.

    Returns:
        The folder they were moved to, or ``None`` if ``out`` held no journal (then nothing is moved).
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    folder = out / EARLIER_NAME / stamp
    reports = [out / name for name in (CELLS_NAME, SUMMARY_NAME, HTML_NAME)]
    return folder if set_aside(out / JOURNAL_NAME, folder, reports) else None


def _process(
    engine: Engine, root: Path, ready: Sequence[Arrival], settings: WatchSettings, stop: StopFlag
) -> Iterator[list[tuple[Arrival, CellResult]]]:
    """Classify settled images, yielding one engine batch at a time; stop after the batch during which a stop
    was asked for (the rest stay unjournaled and are classified by the next run).

    Each image's slide is its folder's path relative to the watched folder (:func:`slide_name`, as in
    ``hema-infer classify``), so that two patients' ``slide_01`` stay two slides.
    """
    results = classify_files(
        engine,
        [arrival.path for arrival in ready],
        batch_size=settings.batch_size,
        decode_threads=settings.decode_threads,
        slides={arrival.path: slide_name(arrival.path.parent, root) for arrival in ready},
    )
    batch: list[tuple[Arrival, CellResult]] = []
    try:
        for number, (arrival, result) in enumerate(zip(ready, results), start=1):
            batch.append((arrival, result))
            if len(batch) == settings.batch_size or number == len(ready):
                yield batch
                batch = []
                if stop.is_set():
                    return
    finally:
        results.close()


def _commit(
    batch: Sequence[tuple[Arrival, CellResult]],
    root: Path,
    journal: Journal,
    scanner: ArrivalScanner,
    reports: JournalReports,
    log: Callable[[str], None],
    on_batch: Callable[[int], None] | None,
) -> int:
    """Journal a batch durably, then (and only then) let the reports see it; return the cells journaled."""
    records = []
    claimed: set[str] = set()  # old paths of files moved within this batch
    for arrival, result in batch:
        scanner.forget(arrival.key)
        sha256 = _sha256_or_none(arrival.path)
        now = file_signature(arrival.path)
        if now is None:
            log(f"warning: {arrival.path} disappeared before its result was saved; it gets a row if it comes back")
        elif now != arrival.signature:
            log(f"{arrival.path} changed while it was read: reading it again once it settles")
        else:
            moved_from = _moved_from(arrival.key, sha256, root, journal, claimed)
            records.append(result_to_record(result, arrival.key, now, sha256, moved_from))
    replaced = [record["path"] for record in records if record["path"] in journal]
    fresh = journal.append(records)  # durable from here on: a crash after this line loses nothing
    reports.add(fresh)
    for record in fresh:
        if record["moved_from"]:
            log(f"{root / record['moved_from']} moved to {root / record['path']}: one cell, counted at its new path")
        elif record["path"] in replaced:
            log(f"{root / record['path']} changed since it was classified: its row is replaced")
        if record["status"] == "error":
            log(f"error: {root / record['path']}: {record['error']}")
    if on_batch is not None:
        on_batch(len(fresh))
    reports.write_if_due(scanner.skipped)
    return len(fresh)


def _sha256_or_none(path: Path) -> str | None:
    """Hex sha256 of the file's bytes, or ``None`` if they cannot be read (its row is then an error row)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def _moved_from(key: str, sha256: str | None, root: Path, journal: Journal, claimed: set[str]) -> str | None:
    """The journaled path a file was moved or renamed from: one with the same bytes that no longer exists."""
    if sha256 is None:
        return None
    for candidate in journal.keys_with_sha256(sha256):
        if candidate != key and candidate not in claimed and _gone(root / candidate):
            claimed.add(candidate)
            return candidate
    return None


def _gone(path: Path) -> bool:
    """Whether nothing is at ``path`` (a folder that cannot be read is not proof that its files are gone)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _inside(out: Path, root: Path) -> Path | None:
    """``out`` if it lies inside ``root`` (so the scan must skip it), else ``None``."""
    out_path, root_path = os.path.abspath(out), os.path.abspath(root)
    try:
        return out if os.path.commonpath([out_path, root_path]) == root_path and out_path != root_path else None
    except ValueError:  # different drives on Windows
        return None
