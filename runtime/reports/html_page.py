"""``report.html``: one self-contained page on which a person reviews a classification run.

Per slide the page shows the differential count (cells of each class and their percentage of the cells
classified on that slide; unreadable files are counted apart), then every cell as a thumbnail grouped by
predicted class, the cells flagged for review first in each class and marked with the reason, then the files
that could not be read with the reason. With several slides an overall differential comes first.

The file needs nothing else to open: the style sheet is inline, thumbnails are ``data:`` URIs, there is no
script and no network reference. Every name that comes from a file, a folder or the model is HTML-escaped, and
file names that are not valid UTF-8 are shown with replacement characters instead of failing the report.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from hema.runtime.classify import CellResult
from hema.runtime.reports.atomic_files import write_text_atomic
from hema.runtime.reports.html_style import REPORT_CSS
from hema.runtime.reports.tables import printable_name
from hema.runtime.reports.thumbnails import thumbnail_data_uris
from hema.runtime.review import shift_warning

__all__ = ["render_html_report", "write_html_report"]


def _e(value: object) -> str:
    """Printable and HTML-escaped (quotes included, so it is safe in attributes too)."""
    return html.escape(printable_name(value), quote=True)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _percent(confidence: float) -> str:
    return f"{100.0 * confidence:.0f}\u00a0%"


def _class_order(class_names: Sequence[str], results: Iterable[CellResult]) -> list[str]:
    """The model's classes in output order, then any other label met in the results."""
    order = list(class_names)
    for result in results:
        if result.status == "ok" and result.label not in order:
            order.append(result.label)
    return order


def _differential(results: Sequence[CellResult], classes: Sequence[str], caption: str) -> str:
    ok = [result for result in results if result.status == "ok"]
    counts = Counter(result.label for result in ok)
    flagged = Counter(result.label for result in ok if result.review)
    errors = len(results) - len(ok)
    total = len(ok)
    rows = []
    for name in classes:
        share = 100.0 * counts[name] / total if total else 0.0
        rows.append(
            f'<tr class="{"zero" if not counts[name] else ""}"><td>{_e(name)}</td>'
            f'<td class="num">{counts[name]:,}</td><td class="num">{share:.1f}</td>'
            f'<td class="bar"><div class="bar"><span style="width:{share:.1f}%"></span></div></td>'
            f'<td class="num">{flagged[name] or ""}</td></tr>'
        )
    return (
        '<table class="differential"><thead><tr><th>Cell class</th><th class="num">Cells</th>'
        '<th class="num">%</th><th></th><th class="num">Flagged</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot>"
        f'<tr><td>Classified</td><td class="num">{total:,}</td><td class="num">{100.0 if total else 0.0:.1f}</td>'
        f'<td></td><td class="num">{sum(flagged.values()) or ""}</td></tr>'
        f'<tr class="apart"><td>Unreadable files (not counted)</td><td class="num">{errors:,}</td>'
        "<td></td><td></td><td></td></tr></tfoot></table>"
        f'<p class="note">{_e(caption)}: percent of the cells classified (cells per 100 classified). '
        "Flagged: cells the model marked for a person to check.</p>"
    )


def _figure(result: CellResult, thumbnail: str | None) -> str:
    name = _e(result.path.name)
    label = _e(result.label)
    confidence = _percent(result.confidence)
    picture = (
        f'<img class="cell" src="{thumbnail}" alt="{label}, {confidence}, {name}" width="96" height="96">'
        if thumbnail
        else '<div class="no-preview">no preview</div>'
    )
    reason = f'<span class="reason">Review: {_e(result.review)}</span>' if result.review else ""
    return (
        f'<figure class="cell{" flagged" if result.review else ""}">{picture}<figcaption>'
        f'<span class="line"><span class="label">{label}</span><span class="conf">{confidence}</span></span>'
        f'<span class="file" title="{_e(result.path)}">{name}</span>{reason}</figcaption></figure>'
    )


def _gallery(results: Sequence[CellResult], classes: Sequence[str], thumbnails: dict[Path, str | None]) -> str:
    groups = []
    for name in classes:
        members = [result for result in results if result.status == "ok" and result.label == name]
        if not members:
            continue
        members.sort(key=lambda result: not result.review)  # stable: flagged first, then in input order
        flagged = sum(1 for result in members if result.review)
        badge = f'<span class="pill flag">{flagged} flagged for review</span>' if flagged else ""
        figures = "".join(_figure(result, thumbnails.get(result.path)) for result in members)
        groups.append(
            f'<details class="group" open><summary>{_e(name)}<span class="count">{_plural(len(members), "cell")}'
            f'</span>{badge}</summary><div class="gallery">{figures}</div></details>'
        )
    return "".join(groups)


def _error_table(results: Sequence[CellResult]) -> str:
    errors = [result for result in results if result.status != "ok"]
    if not errors:
        return ""
    rows = "".join(
        f'<tr class="error-row"><td class="file" title="{_e(result.path)}">{_e(result.path.name)}</td>'
        f'<td class="reason">{_e(result.error or "unknown error")}</td></tr>'
        for result in errors
    )
    return (
        f"<h3>Files that could not be read ({len(errors):,})</h3>"
        f'<table class="errors"><thead><tr><th>File</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _facts(results: Sequence[CellResult]) -> str:
    ok = sum(1 for result in results if result.status == "ok")
    flagged = sum(1 for result in results if result.status == "ok" and result.review)
    errors = len(results) - ok
    parts = [f'<span class="slide-facts">{_plural(ok, "cell")} classified</span>']
    if flagged:
        parts.append(f'<span class="pill flag">{flagged:,} flagged for review</span>')
    if errors:
        parts.append(f'<span class="pill error">{_plural(errors, "unreadable file")}</span>')
    warning = shift_warning([result.review for result in results if result.status == "ok"])
    if warning:
        parts.append(f'<p class="shift-warning" role="alert"><strong>Lab shift.</strong> {_e(warning)}</p>')
    return "".join(parts)


def _slide_section(
    anchor: str, slide: str, results: Sequence[CellResult], classes: Sequence[str], thumbnails: dict[Path, str | None]
) -> str:
    return (
        f'<section class="slide" id="{anchor}"><header><h2><span class="kicker">Slide</span>{_e(slide)}</h2>'
        f"{_facts(results)}</header>"
        f"{_differential(results, classes, 'Differential count on this slide')}"
        f"<h3>Cells by predicted class</h3>{_gallery(results, classes, thumbnails)}{_error_table(results)}</section>"
    )


def render_html_report(
    results: Sequence[CellResult],
    summary: dict[str, Any],
    class_names: Sequence[str],
    model_description: str = "",
    thumbnails: dict[Path, str | None] | None = None,
) -> str:
    """The whole page as a string (see :func:`write_html_report`).

    Args:
        results: One result per input file, in input order.
        summary: The run's summary (:func:`hema.runtime.reports.tables.summarise`); only ``model`` and
            ``skipped_non_images`` are read from it, when present; counts are computed from ``results``.
        class_names: The model's classes in output order.
        model_description: One line naming the model and engine, shown in the page header.
        thumbnails: ``data:`` URI (or ``None``: no preview) per cell, keyed by ``result.path``.

    Returns:
        The HTML document.
    """
    thumbnails = thumbnails or {}
    classes = _class_order(class_names, results)
    slides: dict[str, list[CellResult]] = {}
    for result in results:
        slides.setdefault(result.slide, []).append(result)
    names = sorted(slides)
    anchors = {slide: f"slide-{number}" for number, slide in enumerate(names, 1)}
    ok = sum(1 for result in results if result.status == "ok")
    meta = [
        ("Generated", datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("Model", model_description or summary.get("model", "")),
        ("Slides", f"{len(names):,}"),
        ("Cells classified", f"{ok:,} of {_plural(len(results), 'file')}"),
        ("Flagged for review", f"{sum(1 for result in results if result.status == 'ok' and result.review):,}"),
        ("Unreadable files", f"{len(results) - ok:,}"),
    ]
    if summary.get("skipped_non_images"):
        meta.append(("Non-image files skipped", f"{summary['skipped_non_images']:,}"))
    header = "".join(f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>" for key, value in meta if value != "")
    nav = "".join(f'<a href="#{anchors[slide]}">{_e(slide)} ({len(slides[slide]):,})</a>' for slide in names)
    overall = (
        f'<section class="slide" id="overall"><header><h2>All slides</h2>{_facts(results)}</header>'
        f"{_differential(results, classes, 'Differential count over all slides')}</section>"
        if len(names) > 1
        else ""
    )
    sections = "".join(_slide_section(anchors[slide], slide, slides[slide], classes, thumbnails) for slide in names)
    title = f"White-blood-cell review: {_plural(ok, 'cell')}, {_plural(len(names), 'slide')}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{REPORT_CSS}</style></head><body>"
        '<header class="report"><div class="inner"><div class="title">'
        "<h1>White-blood-cell differential: review report</h1>"
        '<p class="subtitle">Automated pre-classification of single-cell images for review by a qualified '
        "person. Not a diagnosis.</p></div>"
        f'<dl class="meta">{header}</dl></div></header><main>'
        f'<nav class="slides">Slides: {nav}</nav>{overall}{sections}</main>'
        '<footer class="report">Written by hema-infer. Cells in an amber frame are flagged for review with the '
        "reason; percentages exclude files that could not be read.</footer></body></html>\n"
    )


def write_html_report(
    path: Path,
    results: Sequence[CellResult],
    summary: dict[str, Any],
    class_names: Sequence[str],
    model_description: str = "",
    *,
    threads: int = 4,
    on_thumbnail: Callable[[int], None] | None = None,
) -> None:
    """Write the self-contained review page ``report.html`` atomically.

    Args:
        path: Where to write the page.
        results: One result per input file, in input order.
        summary: The run's summary (see :func:`render_html_report`).
        class_names: The model's classes in output order.
        model_description: One line naming the model and engine, shown in the page header.
        threads: Threads making thumbnails.
        on_thumbnail: Called with 1 after each thumbnail (for progress bars).
    """
    ok = [result for result in results if result.status == "ok"]
    uris = thumbnail_data_uris([result.path for result in ok], threads=threads, on_done=on_thumbnail)
    thumbnails = {result.path: uri for result, uri in zip(ok, uris)}
    write_text_atomic(path, render_html_report(results, summary, class_names, model_description, thumbnails))
