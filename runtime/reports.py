"""Write what a classification run found: one CSV row per cell and a per-class, per-slide summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hema.runtime.atomic_files import write_text_atomic
from hema.runtime.classify import CellResult

__all__ = ["CELLS_COLUMNS", "CsvCellWriter", "summarise", "format_summary", "write_summary"]

CELLS_COLUMNS = ("path", "slide", "label", "confidence", "status", "error")


class CsvCellWriter:
    """Streams results to ``cells.csv``: the fixed columns, then ``p_<class>`` for every class.

    Rows are flushed as they come, so a run that is interrupted keeps every cell classified so far.
    """

    def __init__(self, path: Path, class_names: Sequence[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow([*CELLS_COLUMNS, *(f"p_{name}" for name in class_names)])
        self._classes = len(class_names)

    def write(self, result: CellResult) -> None:
        """Append one result."""
        ok = result.status == "ok"
        confidence = f"{result.confidence:.6f}" if ok else ""
        probabilities = [f"{p:.6f}" for p in result.probabilities] if ok else [""] * self._classes
        self._writer.writerow(
            [str(result.path), result.slide, result.label, confidence, result.status, result.error, *probabilities]
        )
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvCellWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _counts(labels: Counter[str], class_names: Sequence[str]) -> dict[str, dict[str, float]]:
    total = sum(labels.values())
    return {
        name: {"count": labels[name], "percent": round(100.0 * labels[name] / total, 2) if total else 0.0}
        for name in class_names
    }


def summarise(
    results: Iterable[CellResult], class_names: Sequence[str], model: str, skipped: int = 0
) -> dict[str, Any]:
    """Counts and percentages of each class over all cells and per slide.

    Percentages are of the cells classified on that slide (error rows are counted apart).
    """
    overall: Counter[str] = Counter()
    slides: dict[str, Counter[str]] = {}
    errors: Counter[str] = Counter()
    total = 0
    for result in results:
        total += 1
        slides.setdefault(result.slide, Counter())
        if result.status == "ok":
            overall[result.label] += 1
            slides[result.slide][result.label] += 1
        else:
            errors[result.slide] += 1
    return {
        "model": model,
        "files": total,
        "classified": sum(overall.values()),
        "errors": sum(errors.values()),
        "skipped_non_images": skipped,
        "classes": _counts(overall, class_names),
        "slides": {
            slide: {
                "classified": sum(counts.values()),
                "errors": errors[slide],
                "classes": _counts(counts, class_names),
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
    return "\n".join(lines)
