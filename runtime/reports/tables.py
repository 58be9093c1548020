"""Write what a classification run found: one CSV row per cell and a per-class, per-slide summary.

Both say which cells a hematologist should look at: ``cells.csv`` has the reason in its ``review`` column and
``summary.json`` counts and lists the flagged cells of every slide (:mod:`hema.runtime.review`).

``cells.csv`` is opened in spreadsheets, where a cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return is read as a formula (CSV injection: a file named ``=HYPERLINK(...).jpg`` would become a live
link, or worse). As OWASP recommends, such a text value (``path``, ``slide``, ``label``, ``status``, ``review``,
``error``) is written with a single quote ``'`` in front (:func:`spreadsheet_safe`), which a spreadsheet shows as
text. A value that starts with ``'`` itself gets one too, so the rule can be undone: a program reading
``cells.csv`` drops one leading ``'`` from a text value, if it has one, to get the name back. Numbers
(``confidence``, ``p_<class>``) are written as hema formats them (``0.973215``), never negative, and never get
one. ``summary.json`` keeps every name as it is. ``cells.csv`` is created in place of whatever was at its path,
never written through a link planted there (:func:`~hema.runtime.reports.atomic_files.open_in_place`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from hema.runtime.classify import CellResult
from hema.runtime.reports.atomic_files import open_in_place, write_text_atomic
from hema.runtime.review import shift_warning

__all__ = [
    "CELLS_COLUMNS",
    "CsvCellWriter",
    "cells_csv_text",
    "format_summary",
    "printable_name",
    "spreadsheet_safe",
    "summarise",
    "write_summary",
]

CELLS_COLUMNS = ("path", "slide", "label", "confidence", "status", "review", "error")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")  # OWASP's list for CSV injection, and the quote itself


def printable_name(value: object) -> str:
    """A file or folder name as text that encodes to UTF-8, for reports.

    Bytes that are not UTF-8 (a Latin-1 ``café.jpg``) and control characters become U+FFFD.
    """
    text = os.fsdecode(value) if isinstance(value, bytes | os.PathLike) else str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is not an escaped byte
        text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("\ufffd", text)


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it as text: ``'`` in front if it starts like a formula (OWASP's rule).

    Examples: ``=1+2.jpg`` becomes ``'=1+2.jpg``, ``-slide`` becomes ``'-slide`` and ``'a.jpg`` becomes
    ``''a.jpg`` (so that dropping one leading ``'`` always gives the text back); ``/data/slide_1`` is unchanged.
    """
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class CsvCellWriter:
    """Streams results to ``cells.csv``: the fixed columns, then ``p_<class>`` for every class.

    Rows are flushed as they come, so a run that is interrupted keeps every cell classified so far. Given an
    open text stream instead of a path, it writes there and leaves the stream open. Text values that a
    spreadsheet would read as a formula are written with ``'`` in front (:func:`spreadsheet_safe`).
    """

    def __init__(self, path: Path | TextIO, class_names: Sequence[str]) -> None:
        self._owned = isinstance(path, Path)
        if isinstance(path, Path):
            self._file: TextIO = open_in_place(path)  # replaces a link planted at the path, never follows it
        else:
            self._file = path
        self._writer = csv.writer(self._file)
        self._writer.writerow([*CELLS_COLUMNS, *(f"p_{name}" for name in class_names)])
        self._classes = len(class_names)

    def write(self, result: CellResult) -> None:
        """Append one result."""
        ok = result.status == "ok"
        confidence = f"{result.confidence:.6f}" if ok else ""
        probabilities = [f"{p:.6f}" for p in result.probabilities] if ok else [""] * self._classes
        safe = spreadsheet_safe  # text values only: numbers are never negative
        self._writer.writerow(
            [
                safe(printable_name(result.path)),
                safe(printable_name(result.slide)),
                safe(result.label),
                confidence,
                safe(result.status),
                safe(result.review) if ok else "",
                safe(result.error),
                *probabilities,
            ]
        )
        self._file.flush()

    def close(self) -> None:
        if self._owned:
            self._file.close()

    def __enter__(self) -> CsvCellWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cells_csv_text(results: Iterable[CellResult], class_names: Sequence[str]) -> str:
    """The whole ``cells.csv`` as text, for rewriting the file atomically."""
    buffer = io.StringIO(newline="")
    with CsvCellWriter(buffer, class_names) as writer:
        for result in results:
            writer.write(result)
    return buffer.getvalue()


def _counts(labels: Counter[str], class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    total = sum(labels.values())
    return {
        name: {"count": labels[name], "percent": round(100.0 * labels[name] / total, 2) if total else 0.0}
        for name in class_names
    }


def summarise(
    results: Iterable[CellResult], class_names: Sequence[str], model: str, skipped: int = 0
) -> dict[str, Any]:
    """Counts and percentages of each class over all cells and per slide, and the cells flagged for review.

    Percentages are of the cells classified on that slide (error rows are counted apart). ``flagged`` counts the
    classified cells with a review reason, overall and per slide; every slide lists its flagged cells
    (``path``, ``label``, ``reason``) in input order under ``flagged_cells``. ``shift_warning``, overall and per
    slide, is :func:`hema.runtime.review.shift_warning` of those cells (``null`` when none is due).
    """
    overall: Counter[str] = Counter()
    slides: dict[str, Counter[str]] = {}
    errors: Counter[str] = Counter()
    flagged: dict[str, list[dict[str, str]]] = {}
    reviews: dict[str, list[str]] = {}  # the review reason of every classified cell, per slide
    total = 0
    for result in results:
        total += 1
        slides.setdefault(result.slide, Counter())
        flagged.setdefault(result.slide, [])
        reviews.setdefault(result.slide, [])
        if result.status == "ok":
            reviews[result.slide].append(result.review)
            overall[result.label] += 1
            slides[result.slide][result.label] += 1
            if result.review:
                flagged[result.slide].append({"path": str(result.path), "label": result.label, "reason": result.review})
        else:
            errors[result.slide] += 1
    return {
        "model": model,
        "files": total,
        "classified": sum(overall.values()),
        "errors": sum(errors.values()),
        "flagged": sum(len(cells) for cells in flagged.values()),
        "skipped_non_images": skipped,
        "classes": _counts(overall, class_names),
        "shift_warning": shift_warning([review for slide in reviews.values() for review in slide]),
        "slides": {
            slide: {
                "classified": sum(counts.values()),
                "errors": errors[slide],
                "flagged": len(flagged[slide]),
                "classes": _counts(counts, class_names),
                "flagged_cells": flagged[slide],
                "shift_warning": shift_warning(reviews[slide]),
            }
            for slide, counts in sorted(slides.items())
        },
    }


def write_summary(summary: dict[str, Any], path: Path) -> None:
    """Write ``summary.json`` atomically."""
    write_text_atomic(path, json.dumps(summary, indent=2) + "\n")


def format_summary(summary: dict[str, Any]) -> str:
    """A per-class table a person reads in the terminal."""
    width = max([len("class"), *(len(name) for name in summary["classes"])])
    lines = [f"{'class':<{width}}  {'cells':>7}  {'percent':>7}"]
    for name, entry in summary["classes"].items():
        lines.append(f"{name:<{width}}  {entry['count']:>7}  {entry['percent']:>6.2f}%")
    lines.append(
        f"{summary['classified']} cells classified on {len(summary['slides'])} slide(s), "
        f"{summary['errors']} file(s) could not be read"
        + (f", {summary['skipped_non_images']} non-image file(s) skipped" if summary["skipped_non_images"] else "")
    )
    flagged = summary.get("flagged", 0)
    lines.append(
        f"{flagged} of {summary['classified']} cells flagged for review (low confidence or unknown cell type)"
        + (": see the review column of cells.csv" if flagged else "")
    )
    return "\n".join(lines)
