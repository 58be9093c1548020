"""Few-shot evaluation: draw N labelled cells per class R times, fit a head on frozen embeddings, score it.

Embeddings are computed once; every repeat only draws indices and fits a head, so many repeats cost seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hema.train.evaluate.metrics import classification_metrics, summarise_repeats
from hema.train.fewshot.heads import FittedHead, HeadConfig, fit_head

__all__ = ["FewShotResult", "draw_per_class", "run_fewshot"]


def draw_per_class(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` examples of every class, drawn without replacement (all of a class that has fewer).

    ``n = 0`` takes every example.
    """
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(members if n == 0 or len(members) <= n else rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class FewShotResult:
    """What a few-shot run produced.

    Attributes:
        head: The head fitted in the first repeat (the one exported).
        metrics: Means, standard deviations and per-repeat values (see :func:`summarise_repeats`).
    """

    head: FittedHead
    metrics: dict[str, Any]


def run_fewshot(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    class_names: tuple[str, ...],
    eval_features: np.ndarray,
    eval_labels: np.ndarray,
    config: HeadConfig,
    labels_per_class: int,
    repeats: int,
) -> FewShotResult:
    """Fit and evaluate a head ``repeats`` times on fresh draws of ``labels_per_class`` cells per class.

    Args:
        train_features: Embeddings of the labelled pool.
        train_labels: Their labels, indices into ``class_names``.
        class_names: Classes of the pool (the head's outputs).
        eval_features: Embeddings of the evaluation cells.
        eval_labels: Their labels, indices into ``class_names``.
        config: Head configuration; repeat ``r`` uses seed ``config.seed + r``.
        labels_per_class: N; ``0`` uses the whole pool (then one repeat is enough).
        repeats: R.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    heads, draws, per_repeat = [], [], []
    for repeat in range(repeats):
        seed = config.seed + repeat
        chosen = draw_per_class(train_labels, labels_per_class, np.random.default_rng(seed))
        fitted = fit_head(train_features[chosen], train_labels[chosen], class_names, replace(config, seed=seed))
        predictions = fitted.predict_proba(eval_features).argmax(axis=1)
        per_repeat.append(classification_metrics(eval_labels, predictions, len(class_names)))
        heads.append(fitted)
        draws.append(chosen)
    drawn = np.bincount(train_labels[draws[0]], minlength=len(class_names))
    metrics = {
        **summarise_repeats(per_repeat, class_names),
        "head": config.kind,
        "labels_per_class": labels_per_class,
        "labels_drawn_per_class": dict(zip(class_names, map(int, drawn))),
        "repeats": repeats,
        "seed": config.seed,
        "eval_cells": int(len(eval_labels)),
    }
    return FewShotResult(heads[0], metrics)
