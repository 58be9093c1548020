"""What onboarding changes, decided on the lab's own cells, and how far the result can be trusted there.

Given the base model's embeddings of a lab's unlabelled cells (and, optionally, of a few labelled ones):

1. **Alignment** (``align``, off by default; needs a base model that records its training cells' embedding
   statistics): every embedding is moved so that the lab's unlabelled cells have the training cells' per-feature
   mean and spread (:mod:`hema.export.graph.alignment`). Measured on BCCD (``benchmarks/new_lab.py``) it *lowers*
   accuracy: a lab's mix of cell types differs from the training lab's (BCCD: mostly neutrophils, no platelets),
   and matching statistics then moves the classes instead of the lab (label shift).
2. **Head** (with labelled cells, or, with ``pseudo_labels_per_class``, the unlabelled cells the base model is
   surest of, labelled with its predictions): a logistic regression on the embeddings of the lab's labelled cells,
   for the classes the lab labelled (at least ``min_labels_per_class`` each, at least two classes). A class the
   lab did not label is not named by the onboarded model: it has no evidence at this lab, so its cells are
   flagged ``unknown cell type`` instead. Without labels the base head is kept.
3. **Unknown-cell threshold**: the novelty score's class centroids are the lab's labelled cells' (aligned), and
   the threshold is set so that ``unknown_share`` of the lab's known cells are flagged: measured out of fold
   on the labelled cells, or, without labels, on the unlabelled cells (which may hold unknown types themselves,
   so the share of known cells flagged is then at most ``unknown_share``).
4. **Confidence threshold**: with labels, re-chosen on out-of-fold predictions of the labelled cells by the
   export's rule (:func:`hema.export.review.thresholds.confidence_threshold`); without, the base model's.
5. **Estimate**: with labels, out-of-fold (``review.folds``-fold) recall per class with its Wilson 95 % interval and
   balanced accuracy with a bootstrap 95 % interval: what so few labels can and cannot say.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hema.export.graph.alignment import EmbeddingStatistics
from hema.export.graph.novelty import class_centroids, novelty_scores
from hema.export.review.out_of_fold import held_back_predictions
from hema.export.review.thresholds import ReviewSettings, confidence_threshold
from hema.train.fewshot.heads import FittedHead, HeadConfig, fit_head

__all__ = ["Adaptation", "LabEmbeddings", "OnboardSettings", "adapt_to_lab", "wilson_interval"]


@dataclass(frozen=True)
class OnboardSettings:
    """The rules onboarding follows (module docstring).

    Attributes:
        min_cells: Fewest readable unlabelled cells onboarding accepts.
        min_labels_per_class: Fewest labelled cells of a class that is labelled at all.
        align: Whether to align embeddings when the base model allows it.
        head_c: Inverse regularisation of the logistic-regression head.
        pseudo_labels_per_class: Without labelled cells: refit the head on the base model's most confident
            predictions of the lab's unlabelled cells, up to this many per class (0: keep the base head).
        review: The review-flag rules, the export's own (:class:`hema.export.review.thresholds.ReviewSettings`):
            the novelty percentile that sets the share of known cells flagged ``unknown cell type``, the
            low-confidence target and shares, the folds of the out-of-fold estimates.
        bootstrap: Resamples of the balanced-accuracy interval.
        seed: Seed of the bootstrap.
    """

    min_cells: int = 100
    min_labels_per_class: int = 5
    align: bool = False
    head_c: float = 1.0
    pseudo_labels_per_class: int = 0
    review: ReviewSettings = ReviewSettings()
    bootstrap: int = 2000
    seed: int = 0

    @property
    def unknown_share(self) -> float:
        """Share of the lab's known cells flagged ``unknown cell type`` (from the novelty percentile)."""
        return round(1.0 - self.review.novelty_percentile / 100.0, 6)


@dataclass(frozen=True)
class LabEmbeddings:
    """What adaptation needs of the lab and the base model.

    Attributes:
        unlabelled: Base-model embeddings of the lab's unlabelled cells ``(n, dim)``.
        labelled: Embeddings of its labelled cells ``(m, dim)`` (``(0, dim)`` without labels).
        labels: Class name of each labelled cell.
        base_classes: The base model's classes.
        base_statistics: The base model's training-cell embedding statistics, or ``None``.
        base_centroids: The base model's novelty centroids ``(classes, dim)``, or ``None`` (no novelty output).
        unlabelled_probabilities: The base model's class probabilities of the unlabelled cells (for pseudo-labels).
    """

    unlabelled: np.ndarray
    labelled: np.ndarray
    labels: tuple[str, ...]
    base_classes: tuple[str, ...]
    base_statistics: EmbeddingStatistics | None
    base_centroids: np.ndarray | None
    unlabelled_probabilities: np.ndarray | None = None


@dataclass(frozen=True)
class Adaptation:
    """The decisions and figures of onboarding.

    Attributes:
        lab_statistics: The lab's embedding statistics when aligned, else ``None``.
        head: The refitted head, or ``None`` (the base head is kept).
        centroids: Novelty centroids of the onboarded model (``None``: the base model's are kept).
        novelty_threshold: The recalibrated unknown-cell threshold.
        confidence_threshold: The confidence threshold (recalibrated with labels, else ``None``: the base's).
        estimate: Out-of-fold figures with labels (see :func:`adapt_to_lab`), else ``None``.
    """

    lab_statistics: EmbeddingStatistics | None
    head: FittedHead | None
    centroids: np.ndarray | None
    novelty_threshold: float
    confidence_threshold: float | None
    estimate: dict[str, Any] | None

    def align(self, embeddings: np.ndarray, onto: EmbeddingStatistics | None) -> np.ndarray:
        """Embeddings as the onboarded graph's alignment makes them."""
        if self.lab_statistics is None or onto is None:
            return np.asarray(embeddings, dtype=np.float32)
        return self.lab_statistics.aligned(embeddings, onto)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95 % by default), sound for small counts and 0 % or 100 %."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    denominator = 1 + z**2 / trials
    centre = (share + z**2 / (2 * trials)) / denominator
    half = z * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _labelled_classes(lab: LabEmbeddings, settings: OnboardSettings) -> tuple[str, ...]:
    counts = {name: lab.labels.count(name) for name in lab.base_classes if name in lab.labels}
    short = {name: count for name, count in counts.items() if count < settings.min_labels_per_class}
    if short:
        listed = ", ".join(f"{name} ({count})" for name, count in short.items())
        raise ValueError(
            f"too few labelled cells: {listed}; each labelled class needs at least {settings.min_labels_per_class} "
            "(20 per class are recommended): label more, or leave the class folder out"
        )
    if len(counts) < 2:
        raise ValueError("labelled cells of at least two classes are needed to fit a head (20 per class recommended)")
    return tuple(counts)


def _estimate(
    held_probabilities: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], settings: OnboardSettings
) -> dict[str, Any]:
    hits_by_class = [held_probabilities[labels == index].argmax(axis=1) == index for index in range(len(classes))]
    rng = np.random.default_rng(settings.seed)
    resampled = np.mean(
        [rng.choice(hits, size=(settings.bootstrap, len(hits))).mean(axis=1) for hits in hits_by_class], axis=0
    )
    per_class = {
        name: {
            "cells": len(hits),
            "recall": float(hits.mean()),
            "interval_95": list(wilson_interval(int(hits.sum()), len(hits))),
        }
        for name, hits in zip(classes, hits_by_class)
    }
    return {
        "method": f"{settings.review.folds}-fold out-of-fold predictions on the labelled cells (each scored by a head "
        "fitted without it); recall intervals: Wilson 95 %; balanced accuracy interval: class-stratified "
        f"bootstrap ({settings.bootstrap} resamples) 95 %",
        "balanced_accuracy": float(np.mean([hits.mean() for hits in hits_by_class])),
        "balanced_accuracy_interval_95": [float(np.percentile(resampled, 2.5)), float(np.percentile(resampled, 97.5))],
        "per_class": per_class,
    }


def adapt_to_lab(lab: LabEmbeddings, settings: OnboardSettings | None = None) -> Adaptation:
    """Decide alignment, head and thresholds on the lab's cells (module docstring).

    Raises:
        ValueError: If there are too few unlabelled cells, too few labelled cells of a labelled class, or labels
            of fewer than two classes; the message says how many are needed.
    """
    settings = settings or OnboardSettings()
    if len(lab.unlabelled) < settings.min_cells:
        raise ValueError(
            f"{len(lab.unlabelled)} readable unlabelled cells: onboarding needs at least {settings.min_cells} "
            "(a few hundred to a few thousand of the lab's exports are recommended)"
        )
    lab_statistics = None
    if settings.align and lab.base_statistics is not None:
        lab_statistics = EmbeddingStatistics.of(lab.unlabelled)
    adaptation = Adaptation(lab_statistics, None, None, 0.0, None, None)
    unlabelled = adaptation.align(lab.unlabelled, lab.base_statistics)
    percentile = settings.review.novelty_percentile
    if not lab.labels and settings.pseudo_labels_per_class and lab.unlabelled_probabilities is not None:
        fitted = _fitted(_pseudo_labelled(lab, settings), settings, adaptation, percentile)
        novelty = novelty_scores(unlabelled, fitted.centroids)  # all the lab's cells, not only the surest
        return replace(
            fitted,
            novelty_threshold=float(np.percentile(novelty, percentile)),
            confidence_threshold=None,
            estimate=None,
        )
    if not lab.labels:
        if lab.base_centroids is None:
            raise ValueError("the base model has no novelty output: unknown cells cannot be flagged; re-export it")
        threshold = float(np.percentile(novelty_scores(unlabelled, lab.base_centroids), percentile))
        return Adaptation(lab_statistics, None, None, threshold, None, None)
    return _fitted(lab, settings, adaptation, percentile)


def _pseudo_labelled(lab: LabEmbeddings, settings: OnboardSettings) -> LabEmbeddings:
    """The lab's unlabelled cells the base model is surest of, up to ``pseudo_labels_per_class`` per class."""
    probabilities = lab.unlabelled_probabilities
    predicted, confidence = probabilities.argmax(axis=1), probabilities.max(axis=1)
    chosen = []
    for index in range(len(lab.base_classes)):
        members = np.flatnonzero(predicted == index)
        if len(members) >= settings.min_labels_per_class:
            chosen.extend(members[np.argsort(-confidence[members], kind="stable")][: settings.pseudo_labels_per_class])
    chosen = np.sort(np.asarray(chosen, dtype=np.int64))
    names = tuple(lab.base_classes[predicted[i]] for i in chosen)
    return replace(lab, labelled=lab.unlabelled[chosen], labels=names)


def _fitted(lab: LabEmbeddings, settings: OnboardSettings, adaptation: Adaptation, percentile: float) -> Adaptation:
    """Head, centroids and thresholds fitted on the (aligned) labelled cells, with the out-of-fold estimate."""
    classes = _labelled_classes(lab, settings)
    keep = np.array([name in classes for name in lab.labels])
    features = adaptation.align(lab.labelled[keep], lab.base_statistics)
    labels = np.array([classes.index(name) for name, kept in zip(lab.labels, keep) if kept], dtype=np.int64)
    head = fit_head(features, labels, classes, HeadConfig(kind="lr", c=settings.head_c))
    held = held_back_predictions(features, labels, head, settings.review.folds)
    confidence = held.probabilities.max(axis=1)
    correct = held.probabilities.argmax(axis=1) == labels
    return Adaptation(
        adaptation.lab_statistics,
        head,
        class_centroids(features, labels, len(classes)),
        float(np.percentile(held.novelty, percentile)),
        confidence_threshold(
            confidence,
            correct,
            settings.review.target_unflagged_accuracy,
            settings.review.max_flagged_share,
            min_share=settings.review.min_flagged_share,
        ),
        _estimate(held.probabilities, labels, classes, settings),
    )
