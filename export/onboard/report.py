"""``onboarding.json`` and ``onboarding.html``: what onboarding changed at a lab and how far to trust the result.

The page is self-contained (inline style, no scripts, no external files) and reuses the runtime report's style
sheet. It shows the shift before and after (the share of the lab's cells flagged by each model), the thresholds
recalibrated for the lab, and, with labelled cells, the out-of-fold accuracy per class with its interval.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from hema.runtime.reports.atomic_files import write_text_atomic
from hema.runtime.reports.html_style import REPORT_CSS

__all__ = ["write_onboarding_report"]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _rows(cells: list[list[object]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in cells)


def _table(header: list[str], cells: list[list[object]], caption: str) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    return f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{_rows(cells)}</tbody></table>"


def _novelty(figures: dict[str, Any]) -> str:
    if figures["mean_novelty"] is None or figures["novelty_threshold"] is None:
        return "n/a"
    return f"{figures['mean_novelty']:.4f} (threshold {figures['novelty_threshold']:.4f})"


def _shift_table(shift: dict[str, Any]) -> str:
    before, after = shift["before"], shift["after"]
    rows: list[list[object]] = [
        [label, _share(before[key]), _share(after[key])]
        for label, key in (
            ("flagged unknown cell type", "flagged_unknown_cell_type"),
            ("flagged low confidence", "flagged_low_confidence"),
        )
    ]
    rows.append(["mean novelty", _novelty(before), _novelty(after)])
    for name in sorted(set(before["predicted_share"]) | set(after["predicted_share"])):
        rows.append(
            [f"called {name}", _share(before["predicted_share"].get(name)), _share(after["predicted_share"].get(name))]
        )
    return _table(["the lab's unlabelled cells", "base model", "onboarded model"], rows, "Shift before and after")


def _interval(bounds: list[float]) -> str:
    return f"{_share(bounds[0])} - {_share(bounds[1])}"


def _estimate_table(estimate: dict[str, Any] | None) -> str:
    if estimate is None:
        return (
            "<p>No labelled cells were given, so accuracy at this lab cannot be estimated: label 20 cells per class "
            "(<code>--labelled</code>) to measure it and to fit the head to this lab.</p>"
        )
    per_class = estimate["per_class"]
    rows: list[list[object]] = [
        [name, entry["cells"], _share(entry["recall"]), _interval(entry["interval_95"])]
        for name, entry in per_class.items()
    ]
    total = sum(entry["cells"] for entry in per_class.values())
    rows.append(
        [
            "balanced accuracy",
            total,
            _share(estimate["balanced_accuracy"]),
            _interval(estimate["balanced_accuracy_interval_95"]),
        ]
    )
    table = _table(["class", "labelled cells", "recall", "95 % interval"], rows, "Accuracy at this lab (estimated)")
    note = (
        f"{estimate['method']}. With so few labels the intervals are wide: they, not the point estimates, say how "
        "far the model can be trusted here."
    )
    return f"{table}<p class='subtitle'>{_e(note)}</p>"


def _counts(counts: int | dict[str, int]) -> str:
    if isinstance(counts, int):
        return f"{counts:,}"
    return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"


def _cells_fact(entry: dict[str, Any]) -> str:
    return f"{_counts(entry['read'])} read; skipped: {_counts(entry['skipped'])}"


def _page(report: dict[str, Any]) -> str:
    base = report["base_model"]
    facts: list[list[object]] = [
        ["base model", f"{base['path']} (sha256 {base['sha256'][:12]}...)"],
        ["unlabelled cells", _cells_fact(report["unlabelled_cells"])],
        ["labelled cells", _cells_fact(report["labelled_cells"])],
        *[[key.replace("_", " "), value] for key, value in report["adapted"].items()],
        ["time", f"{report.get('seconds', 'n/a')} s"],
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hema onboarding</title><style>{REPORT_CSS}</style></head>
<body><header class="report"><div class="inner"><div class="title"><h1>hema onboarding</h1>
<p class="subtitle">The model adapted to this lab's cells: what changed, and how far it can be trusted here.</p>
</div></div></header><main>
{_table(["", ""], facts, "What was adapted")}
{_shift_table(report["shift"])}
{_estimate_table(report["estimate_at_lab"])}
</main></body></html>
"""


def write_onboarding_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out/onboarding.json`` and ``out/onboarding.html`` (each atomically); return their paths."""
    json_path, html_path = out / "onboarding.json", out / "onboarding.html"
    write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")
    write_text_atomic(html_path, _page(report))
    return json_path, html_path
