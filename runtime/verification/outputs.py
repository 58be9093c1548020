"""What a review writes beside the run, all made from the journal and replaced atomically each time.

- ``verified.csv``: ``cells.csv``'s rows, as they were written, plus ``human_label``, ``verified_by`` and
  ``verified_at`` (empty for a cell not judged yet; see :mod:`~hema.runtime.verification.tally`). The new text
  values follow ``cells.csv``'s rule against spreadsheet formulas (a leading ``'``).
- ``verified_summary.json``: per slide, whether and by whom it is verified, the model's and the verified
  differential, the model's agreement with the technologist and the changed cells; the agreement per class over
  the whole run.
- ``verified_report.html``: the printable report, one page per slide
  (:func:`~hema.runtime.verification.report_page.render_verified_report`).

The journal is the record; these files can always be made again from it (starting ``hema-infer review`` does).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hema.runtime.reports.atomic_files import write_text_atomic
from hema.runtime.reports.tables import spreadsheet_safe
from hema.runtime.verification.journal import JOURNAL_NAME, DecisionJournal, now
from hema.runtime.verification.report_page import render_verified_report
from hema.runtime.verification.run_table import RunTable
from hema.runtime.verification.tally import Verdict, agreement, slide_tally, verdicts

__all__ = [
    "REPORT_NAME",
    "SUMMARY_NAME",
    "VERIFIED_COLUMNS",
    "VERIFIED_NAME",
    "verified_csv_text",
    "verified_summary",
    "write_outputs",
]

VERIFIED_NAME = "verified.csv"
SUMMARY_NAME = "verified_summary.json"
REPORT_NAME = "verified_report.html"
VERIFIED_COLUMNS = ("human_label", "verified_by", "verified_at")
SUMMARY_FORMAT = 1


def verified_csv_text(table: RunTable, judged: dict[int, Verdict]) -> str:
    """``verified.csv`` as text: every row of ``cells.csv`` with its verdict (or three empty fields)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow([*table.header, *VERIFIED_COLUMNS])
    for cell in table.cells:
        verdict = judged.get(cell.id)
        extra = [spreadsheet_safe(verdict.label), spreadsheet_safe(verdict.by), verdict.at] if verdict else ["", "", ""]
        writer.writerow([*cell.row, *extra])
    return buffer.getvalue()


def verified_summary(
    table: RunTable, journal: DecisionJournal, classes: Sequence[str], target: int, judged: dict[int, Verdict]
) -> dict[str, Any]:
    """The content of ``verified_summary.json`` (see the module docstring)."""
    slides = {slide: slide_tally(table, journal, judged, slide, classes) for slide in table.slides}
    for tally in slides.values():
        tally["target_reached"] = tally["cells"] >= target
    pairs = [(cell.label, judged[cell.id].label) for cell in table.cells if cell.id in judged]
    return {
        "hema_verified_summary": SUMMARY_FORMAT,
        "run": str(table.run_dir.absolute()),
        "journal": JOURNAL_NAME,
        "decisions": journal.rev,
        "written_at": now(),
        "target": target,
        "class_names": list(table.class_names),
        "extra_classes": [name for name in classes if name not in table.class_names],
        "slides_verified": sum(tally["verified"] for tally in slides.values()),
        "agreement": agreement(pairs, classes),
        "slides": slides,
    }


def write_outputs(table: RunTable, journal: DecisionJournal, classes: Sequence[str], target: int) -> list[Path]:
    """Write ``verified.csv``, ``verified_summary.json`` and ``verified_report.html`` into the run folder.

    Returns:
        The files written.
    """
    judged = verdicts(table, journal)
    summary = verified_summary(table, journal, classes, target, judged)
    written = {
        VERIFIED_NAME: verified_csv_text(table, judged),
        SUMMARY_NAME: json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
        REPORT_NAME: render_verified_report(summary, table.slides),
    }
    for name, text in written.items():
        write_text_atomic(table.run_dir / name, text)
    return [table.run_dir / name for name in written]
