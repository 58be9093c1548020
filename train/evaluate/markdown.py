"""``report.md``: the evaluation report's numbers and figures on one page, rendered from ``report.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["render_report"]


def _cells(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def _data_section(report: dict[str, Any]) -> list[str]:
    lines = ["## Data", "", "| lab | folder | train split | test split |", "|---|---|---|---|"]
    for lab, data in report["data"].items():
        train, test = data["train"], data["test"]
        lines.append(
            f"| {lab} | `{data['folder']}` | {sum(train.values())} ({_cells(train)}) | "
            f"{sum(test.values())} ({_cells(test)}) |"
        )
    return [*lines, ""]


def _cross_domain_section(report: dict[str, Any], table: str) -> list[str]:
    domains = report["cross_domain"]
    mapping = ", ".join(f"{target} → {source}" for target, source in domains["class_mapping"].items())
    lines = [
        "## Cross-domain",
        "",
        f"Head: {domains['head']} ({sum(domains['train_cells'].values())} cells). Shared classes: "
        f"{', '.join(domains['shared_classes'])}. Class mapping (second lab → training lab): {mapping}.",
    ]
    if domains["source_only_classes"] or domains["target_only_classes"]:
        lines.append(
            f"Left out: training-lab only {domains['source_only_classes']}, second-lab only "
            f"{domains['target_only_classes']}."
        )
    lines += ["", table]
    for name, score in domains["results"].items():
        absent = [c for c, n in score["cells"].items() if n == 0]
        if absent:
            lines.append(f"- {name}: no cell of {', '.join(absent)} (scored on the classes present).")
    recalls = [
        f"| {name} | " + " | ".join("–" if r is None else f"{r:.2f}" for r in score["per_class_recall"].values()) + " |"
        for name, score in domains["results"].items()
    ]
    header = "| recall | " + " | ".join(domains["shared_classes"]) + " |"
    return [*lines, "", header, "|---|" + "---:|" * len(domains["shared_classes"]), *recalls, ""]


def _figures_section(report: dict[str, Any]) -> list[str]:
    lines = ["## Confusion matrices (logistic regression, all labels)", ""]
    lines += [f"![{name}]({file})" for name, file in report["confusion_matrices"].items()]
    umap = report["umap"]
    settings = ", ".join(f"{key}={value}" for key, value in umap["settings"].items())
    lines += [
        "",
        "## UMAP of the embeddings",
        "",
        f"{_cells(umap['cells'])} cells (a subsample balanced between labs); {settings}.",
        "",
        f"![UMAP]({umap['file']})",
        "",
        "## Saliency",
        "",
    ]
    saliency = report["saliency"]
    if "skipped" in saliency:
        return [*lines, f"Skipped: {saliency['skipped']}.", ""]
    cells = len(saliency["cells"])
    return [
        *lines,
        f"Method: {saliency['method']}; explained: {saliency['explained']}; module: {saliency['module']} (largest "
        f"embedding difference from the extracted features {saliency['max_embedding_difference']:.1e}). "
        f"{saliency['cells_per_class']} test cells per class, {saliency['correct']} of {cells} predicted right "
        "(green titles; red: wrong).",
        "",
        f"![saliency]({saliency['file']})",
        "",
    ]


def render_report(report: dict[str, Any], curves_table: str, cross_domain_table: str) -> str:
    """The Markdown report.

    Args:
        report: The ``report.json`` document of :func:`hema.train.evaluate.report.run_evaluation`.
        curves_table: The learning-curve table (:func:`hema.train.evaluate.learning_curves.curves_markdown`).
        cross_domain_table: The cross-domain table (:func:`hema.train.evaluate.cross_domain.cross_domain_markdown`).
    """
    backbone = report["backbone"]
    config = report["config"]
    seconds = report["seconds"]
    steps = ", ".join(f"{step} {value:.0f} s" for step, value in seconds.items() if step != "total")
    lines = [
        f"# Evaluation of {backbone.get('arch', config['backbone'])} ({backbone.get('source', '')})",
        "",
        f"Command: `{report['command']}`" if report["command"] else "",
        "",
        f"Backbone: `{config['backbone']}`, embedding dimension {backbone.get('embedding_dim', '?')}. "
        f"Wall-clock {seconds['total']:.0f} s ({steps}).",
        "",
        *_data_section(report),
        "## Few-shot learning curves",
        "",
        f"Balanced accuracy on the test split (mean ± std over {config['repeats']} draws; the all-labels point is "
        "fitted once), heads fitted on N labelled train cells per class (a class with fewer gives all it has).",
        "",
        curves_table,
        "![learning curves](learning_curves.png)",
        "",
        *_cross_domain_section(report, cross_domain_table),
        *_figures_section(report),
    ]
    return "\n".join(lines)
