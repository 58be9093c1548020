"""A run opened for verification: its cells, journal, classes and keys, pictures, and outputs kept up to date.

:class:`ReviewSession` is what the HTTP server (:mod:`~hema.runtime.verification.server`) asks: the run as JSON for
the page, decisions to record (checked, then journalled), the decisions since a revision, the printable report.
The page names cells by row number and slides by index; the journal names them by path and name
(:mod:`~hema.runtime.verification.journal`). ``verified.csv`` and the other outputs
(:mod:`~hema.runtime.verification.outputs`) are written when the session opens, about a second after each burst
of decisions (by a background thread, so that no answer waits for them), and when it closes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hema.runtime.reports.run_output import HTML_NAME
from hema.runtime.verification.images import CellImages
from hema.runtime.verification.journal import JOURNAL_NAME, Conflict, DecisionJournal
from hema.runtime.verification.outputs import verified_summary, write_outputs
from hema.runtime.verification.report_page import render_verified_report
from hema.runtime.verification.run_table import RunTable, load_run
from hema.runtime.verification.settings import ReviewSettings, class_keys
from hema.runtime.verification.tally import class_list, verdicts

__all__ = ["OUTPUT_DELAY", "ReviewSession"]

OUTPUT_DELAY = 1.0
"""Seconds the outputs wait after a decision for more before they are written again."""


class ReviewSession:
    """One run under review (see the module docstring). Use :meth:`open`; :meth:`close` when done.

    Args:
        table: The run's cells.
        journal: Its open decision journal.
        settings: The session's settings.
        warn: Prints a warning (an output that could not be written).
    """

    def __init__(
        self, table: RunTable, journal: DecisionJournal, settings: ReviewSettings, warn: Callable[[str], None]
    ) -> None:
        self.table = table
        self.journal = journal
        self.settings = settings
        self.classes = class_list(table, settings.extra_classes, journal)
        self.keys = class_keys(self.classes)
        self.images = CellImages(table)
        self._warn = warn
        self._slides = {name: index for index, name in enumerate(table.slides)}
        self._ids = {cell.path: cell.id for cell in table.cells}
        self._dirty = threading.Event()
        self._closed = False
        self._writer = threading.Thread(target=self._keep_outputs, name="verified-outputs", daemon=True)

    @classmethod
    def open(cls, run_dir: Path, settings: ReviewSettings, warn: Callable[[str], None]) -> ReviewSession:
        """Read the run, open its journal, write the outputs once and start keeping them up to date.

        Raises:
            ReviewError: If the run or its journal cannot be used, or there are more classes than keys.
        """
        table = load_run(run_dir)
        journal = DecisionJournal.open(run_dir / JOURNAL_NAME, table.class_names)
        try:
            session = cls(table, journal, settings, warn)
            session.write_outputs()
        except BaseException:
            journal.close()
            raise
        session._writer.start()
        return session

    def notes(self) -> list[str]:
        """What the technologist should know about the run and the journal."""
        notes = []
        if self.journal.repaired:
            notes.append(
                f"{JOURNAL_NAME}: a decision cut short when the server stopped ({self.journal.repaired} bytes) was "
                "removed; it had not been shown as saved. Every saved decision is here"
            )
        if missing := self.table.missing:
            saved = sum(self.images.has_saved(cell) for cell in missing)
            notes.append(
                f"{len(missing)} image(s) listed in cells.csv are no longer there: shown as missing, "
                f"{saved} of them from the thumbnail in {HTML_NAME}; they can still be verified"
            )
        return notes

    def run_json(self) -> dict[str, Any]:
        """Everything the page needs to show the run: classes and keys, slides, cells, decisions so far."""
        cells = [
            {
                "id": cell.id,
                "name": cell.name,
                "path": cell.path,
                "slide": self._slides[cell.slide],
                "label": cell.label,
                "confidence": cell.confidence,
                "review": cell.review,
                "ok": cell.classified,
                "error": cell.error,
                "missing": cell.image is None,
                "preview": cell.classified and (cell.image is not None or self.images.has_saved(cell)),
            }
            for cell in self.table.cells
        ]
        slides = {name: [] for name in self.table.slides}
        for cell in self.table.cells:
            slides[cell.slide].append(cell.id)
        return {
            "run": str(self.table.run_dir),
            "user": self.settings.user,
            "target": self.settings.target,
            "classes": [{"name": n, "key": self.keys[n], "model": n in self.table.class_names} for n in self.classes],
            "slides": [{"name": name, "cells": ids} for name, ids in slides.items()],
            "cells": cells,
            "records": self.records_since(0),
            "notes": self.notes(),
        }

    def records_since(self, rev: int) -> list[dict[str, Any]]:
        """The decisions after ``rev`` as the page names things (cell id, slide index; ``None`` if not in the run)."""
        return [
            {
                "rev": record["rev"],
                "kind": record["kind"],
                "slide": self._slides.get(record["slide"]),
                "cell": self._ids.get(record.get("cell", "")),
                "label": record.get("human_label"),
                "verified": record.get("verified"),
                "user": record["user"],
                "time": record["time"],
            }
            for record in self.journal.since(rev)
        ]

    def label(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Record ``{"cell": id, "label": class or null, "base": rev, "seen": rev}``; HTTP status and answer."""
        cell_id, label = request.get("cell"), request.get("label")
        if not _count(cell_id) or cell_id >= len(self.table.cells) or not self.table.cells[cell_id].classified:
            return 400, {"saved": False, "message": f"no classified cell {cell_id!r} in this run"}
        if label is not None and label not in self.classes:
            return 400, {"saved": False, "message": f"{label!r} is not a class of this review"}
        cell = self.table.cells[cell_id]
        return self._record(
            request,
            lambda base: self.journal.label(
                slide=cell.slide, cell=cell.path, model_label=cell.label, human_label=label, base=base, user=self.user
            ),
        )

    def verify(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Record ``{"slide": index, "verified": bool, "base": rev, "seen": rev}``; HTTP status and answer."""
        index, verified = request.get("slide"), request.get("verified")
        if not _count(index) or index >= len(self.table.slides) or not isinstance(verified, bool):
            return 400, {"saved": False, "message": f"no slide {index!r} in this run, or verified not true/false"}
        slide = self.table.slides[index]
        return self._record(
            request, lambda base: self.journal.verify(slide=slide, verified=verified, base=base, user=self.user)
        )

    @property
    def user(self) -> str:
        """Who decides."""
        return self.settings.user

    def report_html(self, slide: int | None) -> str | None:
        """The printable verified report of slide number ``slide`` (``None``: all); ``None`` if there is none."""
        if slide is not None and not 0 <= slide < len(self.table.slides):
            return None
        judged = verdicts(self.table, self.journal)
        summary = verified_summary(self.table, self.journal, self.classes, self.settings.target, judged)
        return render_verified_report(summary, self.table.slides if slide is None else [self.table.slides[slide]])

    def write_outputs(self) -> list[Path]:
        """Write ``verified.csv``, ``verified_summary.json`` and ``verified_report.html`` now."""
        return write_outputs(self.table, self.journal, self.classes, self.settings.target)

    def close(self) -> list[Path]:
        """Stop the background writer, write the outputs a last time, release the journal; the files written."""
        self._closed = True
        self._dirty.set()
        if self._writer.is_alive():
            self._writer.join()
        try:
            return self.write_outputs()
        finally:
            self.journal.close()

    def _record(self, request: dict[str, Any], append: Callable[[int], Any]) -> tuple[int, dict[str, Any]]:
        base, seen = request.get("base"), request.get("seen", 0)
        if not _count(base) or not _count(seen):
            return 400, {"saved": False, "message": "base and seen must be revisions (whole numbers from 0)"}
        try:
            append(base)
        except Conflict as conflict:
            records = self.records_since(seen)
            return 409, {"saved": False, "conflict": True, "message": str(conflict), "records": records}
        except OSError as error:
            message = f"not saved: cannot write {self.journal.path}: {error.strerror or error}"
            return 500, {"saved": False, "message": message, "records": self.records_since(seen)}
        self._dirty.set()
        return 200, {"saved": True, "rev": self.journal.rev, "records": self.records_since(seen)}

    def _keep_outputs(self) -> None:
        while True:
            self._dirty.wait()
            if self._closed:
                return
            self._dirty.clear()
            time.sleep(OUTPUT_DELAY)  # gather a burst of decisions into one rewrite
            try:
                self.write_outputs()
            except OSError as error:
                self._warn(f"warning: cannot write the verified outputs in {self.table.run_dir}: {error}")


def _count(value: object) -> bool:
    """Whether ``value`` is a whole number from 0 (JSON ``true`` is not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
