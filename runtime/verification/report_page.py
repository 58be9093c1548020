"""The printable verified report: one page per slide, model against technologist, and what was changed.

Each slide's page names its verification (who, when; or that it is not yet verified), shows the differential the
model gave and the verified one side by side (counts, percentages, difference) with the total against the lab's
target count, the model's agreement with the technologist on the slide, and every cell whose class was changed.
Plain HTML with an inline style sheet and no script: it prints one slide per sheet and opens offline. Every
name from a file, a folder, the model or a user is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from hema.runtime.reports.tables import printable_name

__all__ = ["render_verified_report"]

_CSS = """
body { font: 13px/1.45 system-ui, "Segoe UI", Roboto, Arial, sans-serif; color: #1f2933; margin: 24px; }
section.slide { max-width: 900px; margin: 0 auto 40px; break-after: page; }
h1 { font-size: 20px; margin: 0 0 2px; } h2 { font-size: 15px; margin: 18px 0 6px; }
.status { font-weight: 600; } .status.open { color: #b42318; } .status.done { color: #1a7f37; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; }
th, td { border-bottom: 1px solid #d9dee3; padding: 3px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.changed td { background: #fff4e5; } tfoot td { font-weight: 600; border-top: 2px solid #1f2933; }
.note { color: #616e7c; font-size: 12px; }
@media print { body { margin: 0; } .note { color: #333; } }
"""


def _e(value: object) -> str:
    return html.escape(printable_name(value), quote=True)


def _percent(share: float | None) -> str:
    return "" if share is None else f"{100.0 * share:.0f}\u00a0%"


def _counts_table(slide: dict[str, Any], target: int) -> str:
    model, verified = slide["model_differential"], slide["verified_differential"]
    rows = []
    for name in model:
        before, after = model[name]["count"], verified[name]["count"]
        if not before and not after:
            continue
        rows.append(
            f'<tr class="{"changed" if before != after else ""}"><td>{_e(name)}</td>'
            f'<td class="num">{before}</td><td class="num">{model[name]["percent"]:.1f}</td>'
            f'<td class="num">{after}</td><td class="num">{verified[name]["percent"]:.1f}</td>'
            f'<td class="num">{after - before:+d}</td></tr>'
        )
    reached = "reached" if slide["cells"] >= target else f"{target - slide['cells']} short"
    return (
        '<table><thead><tr><th>Class</th><th class="num">Model</th><th class="num">%</th>'
        '<th class="num">Verified</th><th class="num">%</th><th class="num">Change</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><td>Cells counted</td><td class='num'>{slide['cells']}</td><td>"
        f"</td><td class='num'>{slide['cells']}</td><td></td><td></td></tr></tfoot></table>"
        f'<p class="note">Target count {target} cells: {reached}. Unreadable files, not counted: '
        f"{slide['unreadable_files']}.</p>"
    )


def _agreement_table(agreement: dict[str, Any]) -> str:
    if not agreement["judged_cells"]:
        return '<p class="note">No cell judged yet.</p>'
    rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="num">{entry["model_cells"]}</td><td class="num">{entry["kept"]}</td>'
        f'<td class="num">{_percent(entry["kept_share"])}</td><td class="num">{entry["verified_cells"]}</td>'
        f'<td class="num">{_percent(entry["found_share"])}</td></tr>'
        for name, entry in agreement["classes"].items()
    )
    return (
        '<table><thead><tr><th>Class</th><th class="num">Model put there</th><th class="num">Kept</th>'
        '<th class="num">Kept %</th><th class="num">Verified there</th><th class="num">Found by model %</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="note">Of {agreement["judged_cells"]} judged cells the model\'s class was kept for '
        f"{agreement['kept']} ({_percent(agreement['kept_share'])}).</p>"
    )


def _changes_table(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return '<p class="note">No cell was put into another class.</p>'
    rows = "".join(
        f"<tr><td>{_e(change['path'])}</td><td>{_e(change['model_label'])}</td><td>{_e(change['human_label'])}</td>"
        f"<td>{_e(change['by'])}</td><td>{_e(change['at'])}</td></tr>"
        for change in changes
    )
    return (
        "<table><thead><tr><th>Cell</th><th>Model</th><th>Verified as</th><th>By</th><th>At</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _slide_page(name: str, slide: dict[str, Any], target: int) -> str:
    if slide["verified"]:
        status = f'<span class="status done">Verified by {_e(slide["verified_by"])} at {_e(slide["verified_at"])}'
    else:
        status = '<span class="status open">Not verified yet: this differential is provisional'
    return (
        f'<section class="slide"><h1>Slide {_e(name)}</h1><p>{status}</span> &middot; '
        f"{slide['judged_cells']} of {slide['cells']} cells judged</p>"
        f"<h2>Differential: model and verified</h2>{_counts_table(slide, target)}"
        f"<h2>Agreement of the model with the technologist</h2>{_agreement_table(slide['agreement'])}"
        f"<h2>Cells put into another class ({len(slide['changes'])})</h2>{_changes_table(slide['changes'])}</section>"
    )


def render_verified_report(summary: dict[str, Any], slides: Sequence[str]) -> str:
    """The printable page of ``slides`` from a verified summary (:func:`~.outputs.verified_summary`).

    Args:
        summary: The verified summary of the run.
        slides: The slides to show, one page each.

    Returns:
        The HTML document.
    """
    pages = "".join(_slide_page(name, summary["slides"][name], summary["target"]) for name in slides)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Verified differential: {_e(', '.join(slides))}</title><style>{_CSS}</style></head><body>"
        f'{pages or "<p>No slides.</p>"}<p class="note">Written by hema-infer review from {_e(summary["journal"])} '
        f"({summary['decisions']} decisions) at {_e(summary['written_at'])}.</p></body></html>\n"
    )
