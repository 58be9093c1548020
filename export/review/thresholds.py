"""Calibrate the review flags at export, on held-back training cells, and describe them for the model card.

What is calibrated (the runtime side is :mod:`hema.runtime.review`):

* **Class centroids** for the ``novelty`` output, from every cell of the head's training split.
* **Confidence threshold**: on out-of-fold predictions (:mod:`hema.export.review.out_of_fold`), the lowest threshold at
  which the held-back cells at or above it reach ``target_unflagged_accuracy``, flagging at most
  ``max_flagged_share`` of them; when the target cannot be reached within that share, exactly that share of the
  least confident cells is flagged. At least ``min_flagged_share`` (10 %) of them are flagged however accurate the
  rest: leaving a class out of fine-tuning and of the head (``benchmarks/unknown_cells.py``) showed that a cell of
  a type the model does not know is more often among its least confident cells than far from every class in its
  embedding, so the confidence flag is the one that catches near unknowns (a basophil for a model without them).
  "Accuracy" is plain accuracy over the held-back cells: the share of a slide's cells a person would not have to
  correct.
* **Novelty threshold**: the ``novelty_percentile`` (90th) percentile of the held-back cells' out-of-fold
  novelty, so about 10 % of cells like the training cells are flagged ``unknown cell type``. The share is set for
  the cell a hematologist must never see named: a blast or another type the model has no class for. It catches
  cells far from every class (another lab's, non-cells: ROC AUC 0.97-1.0) but few near unknowns (a class left out
  of fine-tuning, ``benchmarks/unknown_cells.py``: mean AUROC 0.64), which the confidence flag catches better;
  hema's lab workflow verifies every cell anyway, so flags order the review rather than add to it.
  ``hema-train onboard`` recalibrates the share at a lab.

The card entry also records what the flags did to the held-back cells and to deterministic non-cell images
(:mod:`hema.export.review.non_cells`), as a check a person can read with ``hema-infer info``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hema.export.graph.alignment import EmbeddingStatistics
from hema.export.graph.novelty import class_centroids, novelty_scores
from hema.export.review.non_cells import non_cell_images
from hema.export.review.out_of_fold import HeldBack, held_back_predictions
from hema.runtime.engines.base import EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.preprocessing import resize_cell_image
from hema.train.data.folders import find_labelled_images
from hema.train.fewshot.features import FeatureExtractor
from hema.train.fewshot.heads import FittedHead

__all__ = ["ReviewCalibration", "ReviewSettings", "calibrate_review", "confidence_threshold", "review_entry"]


@dataclass(frozen=True)
class ReviewSettings:
    """How the review thresholds are chosen (see the module docstring).

    Attributes:
        folds: Folds of the out-of-fold predictions.
        target_unflagged_accuracy: Accuracy the held-back cells that are not flagged low-confidence should reach.
        max_flagged_share: Most held-back cells the confidence flag may take.
        min_flagged_share: Fewest held-back cells the confidence flag takes, however accurate the rest.
        novelty_percentile: Percentile of held-back novelty above which a cell is an unknown cell type.
    """

    folds: int = 5
    target_unflagged_accuracy: float = 0.95
    max_flagged_share: float = 0.20
    min_flagged_share: float = 0.10
    novelty_percentile: float = 90.0


@dataclass(frozen=True)
class ReviewCalibration:
    """What the export stores: centroids in the graph, the card entry in the card, the embedding statistics of
    the calibration cells in the metadata (for onboarding at another lab)."""

    centroids: np.ndarray
    card_entry: dict[str, Any]
    statistics: EmbeddingStatistics


def confidence_threshold(
    confidence: np.ndarray, correct: np.ndarray, target: float, max_share: float, *, min_share: float = 0.0
) -> float:
    """The confidence below which cells are flagged (see the module docstring).

    Args:
        confidence: Top-class probability of every held-back cell.
        correct: Whether each held-back prediction was right.
        target: Accuracy the unflagged cells should reach.
        max_share: Largest share of cells the threshold may flag.
        min_share: Smallest share of cells the threshold flags, however accurate the rest (the least confident
            cells of a model are where a cell type it does not know lands most often).
    """
    order = np.argsort(-confidence, kind="stable")
    ranked, hits = confidence[order], correct[order].astype(np.float64)
    kept = np.arange(1, len(ranked) + 1)
    accuracy = np.cumsum(hits) / kept
    group_end = np.r_[ranked[1:] < ranked[:-1], True]  # a threshold keeps every cell tied with the last kept one
    allowed = group_end & ((len(ranked) - kept) <= max_share * len(ranked))
    reaching = np.flatnonzero(allowed & (accuracy >= target))
    index = reaching[-1] if len(reaching) else np.flatnonzero(allowed)[0]
    least = int(np.ceil(min_share * len(ranked)))  # the threshold lies above the least confident `least` cells
    floor = float(np.sort(confidence)[least]) if 0 < least < len(ranked) else 0.0
    return max(float(ranked[index]), floor)


def _share(mask: np.ndarray) -> float:
    return round(float(np.mean(mask)), 4) if len(mask) else 0.0


def _accuracy(correct: np.ndarray) -> float | None:
    return round(float(np.mean(correct)), 4) if len(correct) else None


def review_entry(
    held: HeldBack, labels: np.ndarray, settings: ReviewSettings, source: dict[str, Any]
) -> dict[str, float | dict[str, Any] | str]:
    """Thresholds from out-of-fold outputs, with the rules and what they flag on the held-back cells."""
    confidence = held.probabilities.max(axis=1)
    correct = held.probabilities.argmax(axis=1) == labels
    threshold = confidence_threshold(
        confidence,
        correct,
        settings.target_unflagged_accuracy,
        settings.max_flagged_share,
        min_share=settings.min_flagged_share,
    )
    novelty_threshold = float(np.percentile(held.novelty, settings.novelty_percentile))
    low, far = confidence < threshold, held.novelty > novelty_threshold
    flagged = low | far
    return {
        "confidence_threshold": threshold,
        "novelty_threshold": novelty_threshold,
        "rule": "'low confidence' when the top-class probability is below confidence_threshold; 'unknown cell "
        "type' when the graph output novelty (1 - cosine similarity of the embedding to the nearest "
        "training-class centroid) is above novelty_threshold",
        "confidence_rule": "lowest threshold at which held-back cells at or above it reach "
        "target_unflagged_accuracy, flagging at most max_flagged_share and at least min_flagged_share of them",
        "target_unflagged_accuracy": settings.target_unflagged_accuracy,
        "max_flagged_share": settings.max_flagged_share,
        "min_flagged_share": settings.min_flagged_share,
        "novelty_rule": "novelty_percentile of the held-back cells' novelty",
        "novelty_percentile": settings.novelty_percentile,
        "held_back": {
            **source,
            "method": f"{held.folds}-fold out-of-fold: each cell scored by a head of the same kind and settings "
            "refitted, and centroids computed, without its fold",
            "cells": len(labels),
            "folds": held.folds,
            "accuracy": _accuracy(correct),
            "flagged": _share(flagged),
            "flagged_low_confidence": _share(low),
            "flagged_unknown_cell_type": _share(far),
            "unflagged_accuracy": _accuracy(correct[~flagged]),
            "flagged_accuracy": _accuracy(correct[flagged]),
        },
    }


def _non_cell_check(engine: OnnxRuntimeEngine, centroids: np.ndarray, entry: dict[str, Any]) -> dict[str, Any]:
    images = np.stack([resize_cell_image(image, engine.card.input) for _, image in non_cell_images()])
    outputs = engine.run(images)
    far = novelty_scores(outputs[EMBEDDING_OUTPUT], centroids) > entry["novelty_threshold"]
    low = outputs[PROBABILITIES_OUTPUT].max(axis=1) < entry["confidence_threshold"]
    return {"images": len(images), "flagged": _share(far | low), "flagged_unknown_cell_type": _share(far)}


def calibrate_review(
    model: onnx.ModelProto, head: FittedHead, folder: Path | None = None, settings: ReviewSettings | None = None
) -> ReviewCalibration:
    """Embed the head's training cells with the fused model and calibrate the review flags on them.

    Args:
        model: The fused classifier (before :func:`~hema.export.graph.novelty.attach_novelty`).
        head: The exported head; its ``training_data`` names the folder and split it was fitted on.
        folder: Labelled cells to calibrate on instead of the head's training folder (its recorded split).
        settings: Threshold rules; default :class:`ReviewSettings`.

    Raises:
        ValueError: If the folder is missing, lacks one of the head's classes, or has a class with one cell.
    """
    settings = settings or ReviewSettings()
    training = head.metadata.get("training_data", {})
    folder = Path(folder or training.get("folder", ""))
    split = training.get("split", "all")
    if not folder.is_dir():
        raise ValueError(f"review calibration needs the head's training cells: {folder} is not a folder")
    labelled = find_labelled_images(folder, split)
    missing = sorted(set(head.class_names) - set(labelled.class_names))
    if missing:
        raise ValueError(f"{folder} ({split} split) has no cells of {', '.join(missing)}: cannot calibrate review")
    index = {name: position for position, name in enumerate(head.class_names)}
    keep = [i for i, label in enumerate(labelled.labels) if labelled.class_names[label] in index]
    paths = [labelled.paths[i] for i in keep]
    labels = np.array([index[labelled.class_names[labelled.labels[i]]] for i in keep], dtype=np.int64)
    with tempfile.TemporaryDirectory() as temporary:
        path = Path(temporary) / "calibration.onnx"
        path.write_bytes(model.SerializeToString())
        engine = OnnxRuntimeEngine(path)
        features = FeatureExtractor({}, onnx_engine=engine)(paths, desc="review calibration")
        held = held_back_predictions(features, labels, head, settings.folds)
        centroids = class_centroids(features, labels, len(head.class_names))
        entry = review_entry(held, labels, settings, {"folder": str(folder), "split": split})
        entry["non_cell_images"] = _non_cell_check(engine, centroids, entry)
    return ReviewCalibration(centroids, entry, EmbeddingStatistics.of(features))
