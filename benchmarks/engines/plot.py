"""The benchmark's figure: batch-1 latency against balanced accuracy, and batch-32 throughput, per engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

__all__ = ["plot_engines"]


def plot_engines(result: dict, path: Path) -> Path:
    """Write a two-panel PNG; skipped or failed engines are listed under the figure."""
    rows = [row for row in result["engines"] if row["status"] == "ok" and row.get("balanced_accuracy") is not None]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]})
    colours = plt.get_cmap("tab10")
    markers = "osD^vP*Xh"
    for index, row in enumerate(rows):
        left.scatter(
            row["latency_ms"]["p50"],
            row["balanced_accuracy"],
            s=80,
            color=colours(index),
            marker=markers[index % len(markers)],
            label=f"{row['label']} ({row['precision']})",
            zorder=3,
            alpha=0.85,
        )
    if rows:
        left.legend(fontsize=8, loc="lower right")
    left.set_xscale("log")
    left.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0, 7.0)))
    left.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    left.xaxis.set_minor_formatter(ticker.NullFormatter())
    accuracies = [row["balanced_accuracy"] for row in rows] or [0.0]
    left.set_ylim(min(accuracies) - 0.02, max(accuracies) + 0.01)
    left.set_xlabel("batch-1 latency p50 (ms per cell, log scale)")
    left.set_ylabel(f"balanced accuracy ({result['data']['cells']} {result['data']['split']}-split cells)")
    left.set_title("Latency vs accuracy (left and up is better)")
    left.grid(True, which="both", alpha=0.3)
    names = [row["label"] for row in rows]
    rates = [row.get("throughput", {}).get("32", {}).get("cells_per_s") or 0.0 for row in rows]
    bars = right.barh(names, rates, color=[colours(index) for index in range(len(rows))])
    for bar, row in zip(bars, rows):
        speedup = row.get("speedup_vs_eager_b32")
        label = f"{bar.get_width():.0f}" + (f"  ({speedup:.1f}x eager)" if speedup else "")
        right.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, " " + label, va="center", fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("cells/s at batch 32")
    right.set_xlim(0, max(rates + [1.0]) * 1.45)
    right.set_title("Throughput at batch 32")
    machine = result["machine"]
    skipped = "; ".join(
        f"{row['label']}: {row['reason'].split(';')[0]}" for row in result["engines"] if row["status"] != "ok"
    )
    caption = f"{result['model']['name']} on {machine['cpu']['model']}, {machine['cores']} cores"
    figure.suptitle(caption)
    footer = textwrap.wrap("Not measured: " + skipped, width=190) if skipped else []
    if footer:
        figure.text(0.01, 0.01, "\n".join(footer), fontsize=7, color="dimgray", va="bottom")
    figure.tight_layout(rect=(0, 0.03 * len(footer), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
