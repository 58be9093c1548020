"""Scoring an adapted model on the target lab: label-free selection scores, and accuracy where labels exist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hema.runtime.card import InputSpec
from hema.train.adapt.mdd import MDDClassifier, MDDInference
from hema.train.adapt.model_selection import prediction_entropy, soft_neighbourhood_density
from hema.train.backbones.embeddings import run_on_images
from hema.train.data.folders import find_labelled_images, find_unlabelled_images
from hema.train.evaluate.metrics import classification_metrics
from hema.train.fewshot.heads import softmax

__all__ = ["TargetCells", "score_target"]


@dataclass(frozen=True)
class TargetCells:
    """The target lab's images, with labels (indices into the source classes) only if its folders name them.

    Attributes:
        paths: Target images.
        labels: Source-class index per image, or ``None`` when the target is unlabelled.
        classes: Number of source classes.
    """

    paths: tuple[Path, ...]
    labels: np.ndarray | None
    classes: int

    @classmethod
    def find(cls, folder: str | Path, split: str, source_classes: tuple[str, ...]) -> TargetCells:
        """Labelled if every first-level folder of ``folder`` is a source class name, else unlabelled."""
        folder = Path(folder)
        subfolders = {child.name for child in folder.iterdir() if child.is_dir() and not child.name.startswith(".")}
        if subfolders and subfolders <= set(source_classes):
            cells = find_labelled_images(folder, split)
            labels = np.array([source_classes.index(cells.class_names[label]) for label in cells.labels])
            return cls(cells.paths, labels, len(source_classes))
        return cls(find_unlabelled_images([folder], split), None, len(source_classes))


def score_target(
    model: MDDClassifier, target: TargetCells, spec: InputSpec, device: torch.device, workers: int
) -> dict[str, float]:
    """Prediction entropy (lower is better) and SND (higher is better) on the target, without its labels.

    If the target is labelled, ``target_balanced_accuracy`` and ``target_macro_f1`` are added for reporting;
    they never steer training or model selection.
    """
    logits = run_on_images(MDDInference(model), target.paths, spec, 64, device, workers, "target")
    probabilities = softmax(logits.astype(np.float64))
    scores = {
        "entropy": prediction_entropy(probabilities),
        "snd": soft_neighbourhood_density(probabilities),
    }
    if target.labels is not None:
        metrics = classification_metrics(target.labels, probabilities.argmax(axis=1), target.classes)
        scores.update(target_balanced_accuracy=metrics["balanced_accuracy"], target_macro_f1=metrics["macro_f1"])
    return scores
