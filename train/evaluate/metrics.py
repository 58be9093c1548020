"""Classification metrics for imbalanced cell classes, summarised over repeats, and a confusion-matrix plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "plot_confusion_matrix", "summarise_repeats"]


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, classes: int) -> dict[str, Any]:
    """Balanced accuracy, macro-F1, per-class recall and the confusion matrix of one evaluation.

    Balanced accuracy and macro-F1 average over the classes present in ``truth`` only, so an evaluation set
    that lacks a class (a second lab with no platelets) is scored on what it has.
    """
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    present = np.flatnonzero(confusion.sum(axis=1) > 0)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)
    predicted_count = confusion.sum(axis=0).astype(np.float64)
    recall = np.divide(true_positive, support, out=np.full(classes, np.nan), where=support > 0)
    precision = np.divide(true_positive, predicted_count, out=np.zeros(classes), where=predicted_count > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(classes), where=(precision + recall) > 0)
    return {
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "accuracy": float(true_positive.sum() / support.sum()),
        "recall": recall,
        "confusion_matrix": confusion,
    }


def summarise_repeats(per_repeat: list[dict[str, Any]], class_names: tuple[str, ...]) -> dict[str, Any]:
    """Mean and standard deviation over repeats; per-class recall averaged; confusion matrices summed."""

    def spread(key: str) -> dict[str, Any]:
        values = np.array([result[key] for result in per_repeat])
        return {"mean": float(values.mean()), "std": float(values.std()), "per_repeat": values.round(6).tolist()}

    recalls = np.stack([result["recall"] for result in per_repeat])
    scored = (~np.isnan(recalls)).sum(axis=0)  # a class absent from the evaluation set has no recall
    recall = np.divide(np.nansum(recalls, axis=0), scored, out=np.full(scored.shape, np.nan), where=scored > 0)
    return {
        "class_names": list(class_names),
        "balanced_accuracy": spread("balanced_accuracy"),
        "macro_f1": spread("macro_f1"),
        "accuracy": spread("accuracy"),
        "per_class_recall": {
            name: (None if np.isnan(value) else round(float(value), 6)) for name, value in zip(class_names, recall)
        },
        "confusion_matrix": np.sum([result["confusion_matrix"] for result in per_repeat], axis=0).tolist(),
    }


def plot_confusion_matrix(confusion: np.ndarray, class_names: tuple[str, ...], title: str, path: Path) -> None:
    """Save a row-normalised confusion matrix (recall on the diagonal) with counts, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = np.asarray(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = 1.0 + 0.75 * len(class_names)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), count in np.ndenumerate(confusion):
        colour = "white" if share[row, column] > 0.5 else "black"
        axes.text(
            column, row, f"{share[row, column]:.2f}\n({count})", ha="center", va="center", color=colour, fontsize=7
        )
    axes.set(
        xticks=range(len(class_names)),
        yticks=range(len(class_names)),
        xticklabels=class_names,
        yticklabels=class_names,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    plt.setp(axes.get_xticklabels(), rotation=45, ha="right")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of true class")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
