"""The evaluation report's figures: learning curves, the two-panel UMAP map, and the saliency grid (PNG, Agg)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from hema.train.evaluate.learning_curves import LearningCurves, shot_label

__all__ = ["plot_embedding_map", "plot_learning_curves", "plot_saliency_grid"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    _pyplot().close(figure)


def plot_learning_curves(curves: LearningCurves, title: str, path: Path) -> None:
    """Balanced accuracy (mean ± std over repeats) against labels per class, one line per head, log x axis.

    The all-labels point sits at the mean number of train cells per class.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    positions = [curves.row(curves.heads[0], n)["labels_per_class_mean"] for n in curves.shots]
    for head in curves.heads:
        rows = [curves.row(head, n) for n in curves.shots]
        means = [row["balanced_accuracy_mean"] for row in rows]
        stds = [row["balanced_accuracy_std"] for row in rows]
        axes.errorbar(positions, means, yerr=stds, marker="o", capsize=3, label=head)
    axes.set_xscale("log")
    axes.set_xticks(positions, [shot_label(curves, n).replace(" (", "\n(") for n in curves.shots])
    axes.minorticks_off()
    axes.set(xlabel="labelled cells per class (train split)", ylabel="balanced accuracy (test split)", title=title)
    axes.set_ylim(0.0, 1.0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    _save(figure, path)


def _scatter_panel(axes: Any, points: np.ndarray, groups: list[str], title: str, colours: str) -> None:
    plt = _pyplot()
    names = sorted(set(groups))
    palette = plt.get_cmap(colours)
    values = np.array(groups)
    for index, name in enumerate(names):
        member = values == name
        axes.scatter(
            *points[member].T, s=4, alpha=0.7, color=palette(index % palette.N), label=f"{name} ({member.sum()})"
        )
    axes.set(title=title, xticks=[], yticks=[])
    axes.legend(markerscale=3, fontsize=7, loc="best", frameon=True)


def plot_embedding_map(points: np.ndarray, classes: list[str], labs: list[str], title: str, path: Path) -> None:
    """Two panels of the same UMAP coordinates: coloured by class, and by lab."""
    plt = _pyplot()
    figure, (by_class, by_lab) = plt.subplots(1, 2, figsize=(13, 6))
    _scatter_panel(by_class, points, classes, "coloured by class", "tab10")
    _scatter_panel(by_lab, points, labs, "coloured by lab", "Set1")
    figure.suptitle(title)
    figure.tight_layout()
    _save(figure, path)


def plot_saliency_grid(
    images: np.ndarray, maps: np.ndarray, truth: list[str], predicted: list[str], per_class: int, title: str, path: Path
) -> None:
    """A grid of cells, one row per class: each cell as it is, then with its saliency map overlaid.

    Args:
        images: ``uint8 (n, height, width, 3)``, grouped by class, ``per_class`` each (a class may have fewer:
            its row is padded with blanks).
        maps: ``(n, height, width)`` in ``[0, 1]``.
        truth: True class of every cell.
        predicted: Predicted class of every cell (green title when right, red when wrong).
        per_class: Cells per row.
        title: Figure title.
        path: PNG to write.
    """
    plt = _pyplot()
    classes = list(dict.fromkeys(truth))
    figure, axes = plt.subplots(
        len(classes), 2 * per_class, figsize=(2.0 * 2 * per_class, 2.1 * len(classes)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    column = dict.fromkeys(classes, 0)
    for image, heat, true_name, predicted_name in zip(images, maps, truth, predicted):
        row, col = classes.index(true_name), 2 * column[true_name]
        column[true_name] += 1
        axes[row, col].imshow(image)
        axes[row, col].set_title(true_name, fontsize=8)
        axes[row, col + 1].imshow(image)
        axes[row, col + 1].imshow(heat, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
        colour = "green" if predicted_name == true_name else "red"
        axes[row, col + 1].set_title(f"pred: {predicted_name}", fontsize=8, color=colour)
    wrapped = textwrap.fill(title, width=max(30, 24 * per_class))
    figure.suptitle(wrapped, fontsize=10)
    title_inches = 0.2 * (wrapped.count("\n") + 2)
    figure.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - title_inches / figure.get_figheight()))
    _save(figure, path)
