"""Few-shot learning curves: balanced accuracy against labelled cells per class, for several heads.

Every point is :func:`hema.train.fewshot.draws.run_fewshot` on embeddings computed once: ``repeats`` fresh draws of N
cells per class from the train split, each head scored on the whole test split. The last point of every curve
uses all train cells ("all labels"); its draws would all be the same, so it is fitted once (std 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from hema.train.fewshot.draws import FewShotResult, run_fewshot
from hema.train.fewshot.heads import HeadConfig

__all__ = ["ALL_LABELS", "LearningCurves", "curves_markdown", "learning_curves", "shot_label"]

ALL_LABELS = 0  # labels_per_class value of the "all labels" point, as in run_fewshot


@dataclass(frozen=True)
class LearningCurves:
    """Learning curves of several heads.

    Attributes:
        heads: Head kinds, in order.
        shots: Labels per class of each point, ending with :data:`ALL_LABELS`.
        rows: One row per (head, point): ``head``, ``labels_per_class``, ``labels_per_class_mean`` (cells
            actually drawn per class on average: small classes give all they have), ``repeats``,
            ``balanced_accuracy_mean``/``_std``/``_per_repeat``, ``macro_f1_mean``/``_std``, ``seconds``.
        all_labels: The all-labels :class:`~hema.train.fewshot.draws.FewShotResult` of each head.
    """

    heads: tuple[str, ...]
    shots: tuple[int, ...]
    rows: list[dict[str, Any]]
    all_labels: dict[str, FewShotResult]

    def row(self, head: str, labels_per_class: int) -> dict[str, Any]:
        """The row of one point."""
        return next(r for r in self.rows if r["head"] == head and r["labels_per_class"] == labels_per_class)


def learning_curves(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    class_names: tuple[str, ...],
    test_features: np.ndarray,
    test_labels: np.ndarray,
    heads: tuple[str, ...],
    shots: tuple[int, ...],
    repeats: int,
    seed: int = 0,
) -> LearningCurves:
    """Fit every head at every number of labels per class (then once on all labels) and score it.

    Args:
        train_features: Embeddings of the train split.
        train_labels: Their labels, indices into ``class_names``.
        class_names: The classes.
        test_features: Embeddings of the test split.
        test_labels: Their labels, indices into ``class_names``.
        heads: Head kinds (see :data:`hema.train.fewshot.heads.HEAD_KINDS`).
        shots: Labels per class, each at least 1.
        repeats: Draws per point (the all-labels point is fitted once).
        seed: Seed of the first draw; repeat ``r`` uses ``seed + r``.

    Raises:
        ValueError: If a shot is below 1 or no head is given.
    """
    if not heads or any(n < 1 for n in shots):
        raise ValueError(f"need at least one head and shots of at least 1 label per class, got {heads}, {shots}")
    points = (*sorted(set(shots)), ALL_LABELS)
    rows, all_labels = [], {}
    grid = [(head, n) for head in heads for n in points]
    for head, n in tqdm(grid, desc="learning curves", unit="point", disable=None):
        started = time.perf_counter()
        draws = 1 if n == ALL_LABELS else repeats
        config = HeadConfig(kind=head, seed=seed)
        result = run_fewshot(train_features, train_labels, class_names, test_features, test_labels, config, n, draws)
        metrics = result.metrics
        rows.append(
            {
                "head": head,
                "labels_per_class": n,
                "labels_per_class_mean": float(np.mean(list(metrics["labels_drawn_per_class"].values()))),
                "repeats": draws,
                "balanced_accuracy_mean": metrics["balanced_accuracy"]["mean"],
                "balanced_accuracy_std": metrics["balanced_accuracy"]["std"],
                "balanced_accuracy_per_repeat": metrics["balanced_accuracy"]["per_repeat"],
                "macro_f1_mean": metrics["macro_f1"]["mean"],
                "macro_f1_std": metrics["macro_f1"]["std"],
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
        if n == ALL_LABELS:
            all_labels[head] = result
    return LearningCurves(tuple(heads), points, rows, all_labels)


def shot_label(curves: LearningCurves, labels_per_class: int) -> str:
    """``"5"``, or ``"all (~345)"`` for the all-labels point (mean train cells per class)."""
    if labels_per_class != ALL_LABELS:
        return str(labels_per_class)
    return f"all (~{curves.row(curves.heads[0], ALL_LABELS)['labels_per_class_mean']:.0f})"


def curves_markdown(curves: LearningCurves, metric: str = "balanced_accuracy") -> str:
    """A Markdown table: one row per number of labels per class, one ``mean ± std`` column per head."""
    lines = [
        "| labels per class | " + " | ".join(curves.heads) + " |",
        "|---:|" + "---:|" * len(curves.heads),
    ]
    for n in curves.shots:
        cells = [
            f"{curves.row(h, n)[f'{metric}_mean']:.3f} ± {curves.row(h, n)[f'{metric}_std']:.3f}" for h in curves.heads
        ]
        lines.append(f"| {shot_label(curves, n)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
