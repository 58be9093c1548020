"""Rewrite a watch run's reports from its journal: ``cells.csv``, ``summary.json`` and ``report.html``.

The reports are never appended to: each is regenerated from every journaled cell and replaced atomically
(:mod:`hema.runtime.reports.atomic_files`), so a reader never sees a half-written file and a report can never count a
cell twice, whatever happened between a journal append and the last rewrite. While cells stream in, the
reports are rewritten at most every ``interval`` seconds (longer when a rewrite itself takes long).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hema.runtime.classify import CellResult
from hema.runtime.reports.atomic_files import write_text_atomic
from hema.runtime.reports.tables import cells_csv_text, summarise, write_summary
from hema.runtime.watch.journal import apply_record, record_to_result

__all__ = ["CELLS_NAME", "HTML_NAME", "SUMMARY_NAME", "JournalReports"]

CELLS_NAME = "cells.csv"
SUMMARY_NAME = "summary.json"
HTML_NAME = "report.html"

# report.html comes from hema.runtime.reports.html_page (another part of the project). Where that module is absent,
# watch writes only cells.csv and summary.json; the single call site is in JournalReports._write.
try:
    from hema.runtime.reports.html_page import write_html_report
except ModuleNotFoundError as _missing:
    if _missing.name != "hema.runtime.reports.html_page":
        raise
    write_html_report = None


@dataclass
class _Schedule:
    """When one kind of report was last rewritten, how long that took, and whether it is out of date."""

    stale: bool = True
    last: float = -float("inf")
    took: float = 0.0

    def due(self, now: float, interval: float) -> bool:
        """Out of date, and the last rewrite is older than ``interval`` and five times its own duration."""
        return self.stale and now >= self.last + max(interval, 5.0 * self.took)


class JournalReports:
    """Keeps the reports of a watch run in step with its journal.

    ``cells.csv`` and ``summary.json`` are rewritten on one schedule, ``report.html`` (which decodes every cell
    again for its thumbnails, so takes longer) on its own: while cells stream in, each is rewritten at most every
    ``interval`` seconds and at most a fifth of the time.

    Args:
        out: The output folder.
        root: The watched folder (journal keys are relative to it).
        class_names: The model's classes.
        model: The model's path, as ``summary.json`` names it.
        model_description: One line for ``report.html``: the model and the engine that runs it.
        interval: Least seconds between two rewrites while cells stream in.
        log: Told when ``report.html`` cannot be written (watch goes on: the journal and tables are what count).
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self,
        out: Path,
        root: Path,
        class_names: Sequence[str],
        model: str,
        model_description: str = "",
        interval: float = 3.0,
        log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.root = root
        self.class_names = tuple(class_names)
        self.model = model
        self.model_description = model_description
        self.interval = interval
        self._log = log
        self._clock = clock
        self._rows: dict[str, CellResult] = {}
        self._tables = _Schedule()
        self._html = _Schedule(stale=write_html_report is not None)
        self.summary: dict[str, Any] = summarise([], self.class_names, model)

    @property
    def dirty(self) -> bool:
        """Whether journaled cells are missing from a report on disk."""
        return self._tables.stale or self._html.stale

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Take journaled records into account (they must already be in the journal, durably).

        A record replaces the row of its file, and of the path a moved file came from, as it does in the journal.
        """
        for record in records:
            apply_record(self._rows, record, record_to_result(record, self.root))
        self._tables.stale = True
        self._html.stale = write_html_report is not None

    def write_if_due(self, skipped: int = 0) -> None:
        """Rewrite the reports that are out of date and whose last rewrite is old enough."""
        now = self._clock()
        self._write(skipped, self._tables.due(now, self.interval), self._html.due(now, self.interval))

    def write(self, skipped: int = 0) -> dict[str, Any]:
        """Rewrite every report now from all cells added so far; return the summary.

        Args:
            skipped: Non-image files in the watched folder (reported like ``hema-infer classify`` does).
        """
        self._write(skipped, tables=True, html=write_html_report is not None)
        return self.summary

    def _write(self, skipped: int, tables: bool, html: bool) -> None:
        if not (tables or html):
            return
        started = self._clock()
        results = list(self._rows.values())
        self.summary = summarise(results, self.class_names, self.model, skipped=skipped)
        if tables:
            write_text_atomic(self.out / CELLS_NAME, cells_csv_text(results, self.class_names))
            write_summary(self.summary, self.out / SUMMARY_NAME)
            self._tables = _Schedule(False, self._clock(), self._clock() - started)
        if html and write_html_report is not None:  # the one report.html call site (see the import above)
            started = self._clock()
            try:
                write_html_report(
                    self.out / HTML_NAME,
                    results,
                    self.summary,
                    self.class_names,
                    model_description=self.model_description,
                )
            except Exception as error:  # a page that cannot be drawn must not stop the classification
                self._log(f"warning: cannot write {self.out / HTML_NAME}: {type(error).__name__}: {error}")
            self._html = _Schedule(False, self._clock(), self._clock() - started)
