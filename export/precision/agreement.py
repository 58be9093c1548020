"""Does a converted or quantised model give the same answers as the FP32 ONNX model, on real labelled cells?

``hema-export check`` and every reduced-precision export run this: both models classify the same decoded cells
(by default the test split of a labelled folder, which calibration never sees), and the report gives label
agreement, both balanced accuracies and the largest probability difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hema.runtime.batches import decoded_batches
from hema.runtime.engines.base import PROBABILITIES_OUTPUT, Engine
from hema.runtime.engines.precision_gate import AgreementGate
from hema.train.data.folders import find_labelled_images
from hema.train.evaluate.metrics import classification_metrics

__all__ = ["AgreementError", "AgreementReport", "compare_models"]


class AgreementError(RuntimeError):
    """The candidate model disagrees with its reference more than allowed."""


@dataclass(frozen=True)
class AgreementReport:
    """How a candidate model compares with its reference on labelled cells.

    Attributes:
        cells: Cells compared.
        data: The labelled folder and split they came from.
        candidate: Candidate engine and settings.
        reference: Reference engine and settings.
        label_agreement: Share of cells given the same class by both.
        reference_balanced_accuracy: Reference's balanced accuracy against the folder labels.
        candidate_balanced_accuracy: Candidate's balanced accuracy.
        max_probability_difference: Largest absolute difference of any class probability.
        reference_sha256: sha256 of the reference model's file as it was loaded: what ties a reduced-precision
            artifact to its FP32 model (``hema-infer --backend auto`` runs it only in place of that model).
    """

    cells: int
    data: str
    candidate: str
    reference: str
    label_agreement: float
    reference_balanced_accuracy: float
    candidate_balanced_accuracy: float
    max_probability_difference: float
    reference_sha256: str = ""

    @property
    def balanced_accuracy_drop(self) -> float:
        """Reference minus candidate balanced accuracy (positive: the candidate is worse)."""
        return self.reference_balanced_accuracy - self.candidate_balanced_accuracy

    def problems(self, gate: AgreementGate) -> list[str]:
        """Why the candidate fails the gate (empty when it passes)."""
        found = []
        if self.label_agreement < gate.min_agreement:
            found.append(
                f"labels agree on {self.label_agreement:.2%} of {self.cells} cells (need {gate.min_agreement:.0%})"
            )
        if self.balanced_accuracy_drop > gate.max_accuracy_drop:
            found.append(
                f"balanced accuracy drops by {100 * self.balanced_accuracy_drop:.2f} points "
                f"(allowed {100 * gate.max_accuracy_drop:.2f})"
            )
        return found

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "balanced_accuracy_drop": self.balanced_accuracy_drop}

    def summary(self) -> str:
        """One line for a terminal."""
        return (
            f"{self.cells} cells of {self.data}: labels agree {self.label_agreement:.2%}, balanced accuracy "
            f"{self.candidate_balanced_accuracy:.4f} vs {self.reference_balanced_accuracy:.4f} "
            f"({-100 * self.balanced_accuracy_drop:+.2f} points), max probability difference "
            f"{self.max_probability_difference:.1e}"
        )


def compare_models(
    candidate: Engine, reference: Engine, data: Path, *, split: str = "test", batch_size: int = 32
) -> AgreementReport:
    """Classify the labelled cells of ``data`` (one folder per class) with both models and compare.

    Raises:
        ValueError: If the two models name different classes, a folder is not one of their classes, or a cell
            cannot be decoded.
    """
    classes = reference.card.class_names
    if candidate.card.class_names != classes:
        raise ValueError("candidate and reference models name different classes")
    labelled = find_labelled_images(data, split)
    unknown = sorted(set(labelled.class_names) - set(classes))
    if unknown:
        raise ValueError(f"class folders {unknown} under {data} are not classes of the model ({', '.join(classes)})")
    truth = np.array([classes.index(labelled.class_names[label]) for label in labelled.labels])
    got: dict[str, list[np.ndarray]] = {"candidate": [], "reference": []}
    for batch, images in decoded_batches(labelled.paths, reference.card.input, batch_size=batch_size):
        broken = [f"{path}: {image}" for path, image in zip(batch, images) if isinstance(image, str)]
        if broken:
            raise ValueError(f"cannot compare on unreadable cells: {broken[0]}")
        stacked = np.stack(images)
        got["candidate"].append(candidate.run(stacked)[PROBABILITIES_OUTPUT])
        got["reference"].append(reference.run(stacked)[PROBABILITIES_OUTPUT])
    cand, ref = np.concatenate(got["candidate"]), np.concatenate(got["reference"])

    def balanced_accuracy(probabilities: np.ndarray) -> float:
        return classification_metrics(truth, probabilities.argmax(axis=1), len(classes))["balanced_accuracy"]

    return AgreementReport(
        cells=len(truth),
        data=f"{data} ({split} split)",
        candidate=f"{candidate.path.name} on {candidate.describe()}",
        reference=f"{reference.path.name} on {reference.describe()}",
        label_agreement=float((cand.argmax(axis=1) == ref.argmax(axis=1)).mean()),
        reference_balanced_accuracy=balanced_accuracy(ref),
        candidate_balanced_accuracy=balanced_accuracy(cand),
        max_probability_difference=float(np.abs(cand - ref).max()),
        reference_sha256=next(iter((reference.loaded_sha256 or {}).values()), ""),
    )
