"""Cross-domain check: a head fitted on one lab, scored on that lab's test split and on a second lab.

Only the classes both labs have are used (see :mod:`hema.train.data.domains`): the head is fitted on the source
lab's train cells of those classes (all of them), so its predictions and both scores range over the same
classes, and a drop from source to target measures the domain shift alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hema.train.evaluate.metrics import classification_metrics
from hema.train.fewshot.heads import FittedHead, HeadConfig, fit_head

__all__ = ["CrossDomainResult", "cross_domain", "cross_domain_markdown"]


@dataclass(frozen=True)
class CrossDomainResult:
    """A source-lab head scored on several evaluation sets.

    Attributes:
        classes: The shared classes (the head's outputs).
        head: The fitted head.
        train_cells: Source training cells per class.
        scores: Per evaluation set (name to dict): ``balanced_accuracy``, ``macro_f1``, ``accuracy``,
            ``cells`` per class, ``per_class_recall`` (``None`` where the set has no cell of a class) and
            ``confusion_matrix``.
    """

    classes: tuple[str, ...]
    head: FittedHead
    train_cells: dict[str, int]
    scores: dict[str, dict[str, Any]]


def cross_domain(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    classes: tuple[str, ...],
    evaluations: dict[str, tuple[np.ndarray, np.ndarray]],
    config: HeadConfig | None = None,
) -> CrossDomainResult:
    """Fit one head on the source cells and score it on every evaluation set.

    Args:
        train_features: Source-lab embeddings of the shared classes.
        train_labels: Their labels, indices into ``classes``.
        classes: The shared classes.
        evaluations: Name to ``(features, labels)``, labels indices into ``classes``.
        config: The head; logistic regression by default.

    Raises:
        ValueError: If an evaluation set is empty.
    """
    head = fit_head(train_features, train_labels, classes, config or HeadConfig(kind="lr"))
    scores = {}
    for name, (features, labels) in evaluations.items():
        if len(labels) == 0:
            raise ValueError(f"evaluation set {name!r} has no cell of the shared classes {list(classes)}")
        predicted = head.predict_proba(features).argmax(axis=1)
        metrics = classification_metrics(labels, predicted, len(classes))
        scores[name] = {
            "balanced_accuracy": metrics["balanced_accuracy"],
            "macro_f1": metrics["macro_f1"],
            "accuracy": metrics["accuracy"],
            "cells": {c: int((labels == i).sum()) for i, c in enumerate(classes)},
            "per_class_recall": {
                c: None if np.isnan(value) else round(float(value), 6) for c, value in zip(classes, metrics["recall"])
            },
            "confusion_matrix": metrics["confusion_matrix"].tolist(),
        }
    train_cells = {c: int((train_labels == i).sum()) for i, c in enumerate(classes)}
    return CrossDomainResult(tuple(classes), head, train_cells, scores)


def cross_domain_markdown(result: CrossDomainResult) -> str:
    """A Markdown table: one row per evaluation set with balanced accuracy, macro-F1 and its cell count."""
    lines = ["| evaluated on | cells | balanced accuracy | macro-F1 |", "|---|---:|---:|---:|"]
    for name, score in result.scores.items():
        cells = sum(score["cells"].values())
        lines.append(f"| {name} | {cells} | {score['balanced_accuracy']:.3f} | {score['macro_f1']:.3f} |")
    return "\n".join(lines) + "\n"
