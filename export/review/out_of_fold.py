"""Out-of-fold predictions: how the exported head would score cells it was not fitted on.

The exported head is fitted on every cell of its training split, so its confidence on those cells says
nothing about new cells (a logistic regression on 1,280 features is sure of nearly every cell it has seen).
Instead the cells are dealt into ``folds`` folds and every fold is scored by a head of the same kind and
settings refitted on the other folds, with class centroids computed from the other folds as well. Folds are
dealt round robin within each class in the order the cells are given (hema sorts them by path), so the
assignment is fixed, stratified, and needs no random seed.

A few-shot head (``labels_per_class`` N > 0) is refitted on N cells per class drawn from the other folds, with
the head's seed plus the fold index, so the held-back confidences match a head that saw N labels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from hema.export.graph.novelty import class_centroids, novelty_scores
from hema.train.fewshot.draws import draw_per_class
from hema.train.fewshot.heads import FittedHead, HeadConfig, fit_head

__all__ = ["HeldBack", "deal_folds", "held_back_predictions", "refit_config"]


@dataclass(frozen=True)
class HeldBack:
    """Out-of-fold outputs of every cell.

    Attributes:
        probabilities: ``(n, classes)`` class probabilities from a head that did not see the cell.
        novelty: ``(n,)`` novelty against centroids computed without the cell's fold.
        folds: Number of folds.
    """

    probabilities: np.ndarray
    novelty: np.ndarray
    folds: int


def deal_folds(labels: np.ndarray, folds: int) -> np.ndarray:
    """Fold index of every cell: round robin within each class, in the given order."""
    assigned = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        assigned[members] = np.arange(len(members)) % folds
    return assigned


def refit_config(head: FittedHead) -> HeadConfig:
    """The :class:`HeadConfig` that refits a head like ``head`` (its recorded kind and settings)."""
    known = {item.name for item in fields(HeadConfig)}
    return HeadConfig(**{key: value for key, value in head.params.items() if key in known})


def held_back_predictions(features: np.ndarray, labels: np.ndarray, head: FittedHead, folds: int = 5) -> HeldBack:
    """Score every cell with a head and centroids fitted without its fold.

    Args:
        features: Embeddings ``(n, dim)`` of the head's training cells.
        labels: Their labels, indices into ``head.class_names``.
        head: The exported head (its kind, settings and ``labels_per_class`` are reused).
        folds: Requested folds; fewer when the smallest class has fewer cells.

    Raises:
        ValueError: If a class has fewer than two cells (nothing could be held back).
    """
    classes = len(head.class_names)
    counts = np.bincount(labels, minlength=classes)
    if counts.min() < 2:
        short = [name for name, count in zip(head.class_names, counts) if count < 2]
        raise ValueError(f"review calibration needs at least 2 cells of every class; too few: {', '.join(short)}")
    folds = int(min(folds, counts.min()))
    assigned = deal_folds(labels, folds)
    config = refit_config(head)
    per_class = int(head.metadata.get("labels_per_class") or 0)
    probabilities = np.zeros((len(labels), classes), dtype=np.float32)
    novelty = np.zeros(len(labels), dtype=np.float32)
    for fold in range(folds):
        kept, out = np.flatnonzero(assigned != fold), np.flatnonzero(assigned == fold)
        drawn = kept
        if per_class:
            drawn = kept[draw_per_class(labels[kept], per_class, np.random.default_rng(config.seed + fold))]
        refitted = fit_head(features[drawn], labels[drawn], head.class_names, config)
        probabilities[out] = refitted.predict_proba(features[out])
        novelty[out] = novelty_scores(features[out], class_centroids(features[kept], labels[kept], classes))
    return HeldBack(probabilities, novelty, folds)
