"""Check an exported ONNX model against its reference on real cell images, and fail loudly when they differ.

The candidate is what a workstation runs: the runtime's Pillow preprocessing and ONNX Runtime on the exported
file. The reference is what training measured: the torch backbone fed by the training eval transform (or the
source ONNX backbone, for heads refitted on exported features) followed by the head as scikit-learn fitted it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hema.runtime.engines.base import EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.preprocessing import load_cell_image

__all__ = ["ParityError", "ParityReport", "check_parity", "parity_images"]

PROBABILITY_TOLERANCE = 1e-3
EMBEDDING_TOLERANCE = 1e-3  # relative to the largest embedding magnitude


class ParityError(RuntimeError):
    """The exported model does not reproduce its reference."""


@dataclass(frozen=True)
class ParityReport:
    """How closely the export matched its reference.

    Attributes:
        images: Real cell images compared.
        max_embedding_difference: Largest absolute embedding difference divided by the largest magnitude.
        max_probability_difference: Largest absolute probability difference (``None`` for backbone exports).
        label_agreement: Share of images with the same predicted class (``None`` for backbone exports).
    """

    images: int
    max_embedding_difference: float
    max_probability_difference: float | None = None
    label_agreement: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def parity_images(folder: Path, per_class: int = 8) -> list[Path]:
    """Up to ``per_class`` images from every class folder under ``folder`` (sorted, so the choice is fixed)."""
    from hema.train.data.folders import find_labelled_images

    labelled = find_labelled_images(folder)
    chosen: list[Path] = []
    for index in range(len(labelled.class_names)):
        members = [path for path, label in zip(labelled.paths, labelled.labels) if label == index]
        chosen.extend(members[:per_class])
    return chosen


def check_parity(
    exported: bytes,
    images: Sequence[Path],
    reference_embeddings: Callable[[Sequence[Path]], np.ndarray],
    reference_probabilities: Callable[[np.ndarray], np.ndarray] | None,
) -> ParityReport:
    """Run the exported model on ``images`` and compare with the reference.

    Args:
        exported: The serialized ONNX model.
        images: Real cell image files.
        reference_embeddings: Reference embeddings of the files.
        reference_probabilities: Reference head applied to reference embeddings (``None``: backbone only).

    Raises:
        ParityError: If embeddings or probabilities differ beyond tolerance or any predicted class differs.
    """
    if not images:
        raise ParityError("no images to check parity on")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "candidate.onnx"
        path.write_bytes(exported)
        engine = OnnxRuntimeEngine(path)
        batch = np.stack([load_cell_image(image, engine.card.input) for image in images])
        outputs = engine.run(batch)
    embeddings = reference_embeddings(images)
    scale = float(np.abs(embeddings).max()) or 1.0
    embedding_gap = float(np.abs(outputs[EMBEDDING_OUTPUT] - embeddings).max()) / scale
    problems = []
    if embedding_gap > EMBEDDING_TOLERANCE:
        problems.append(f"embeddings differ by {embedding_gap:.2e} (relative; tolerance {EMBEDDING_TOLERANCE:.0e})")
    if reference_probabilities is None:
        report = ParityReport(len(images), embedding_gap)
    else:
        expected = reference_probabilities(embeddings)
        got = outputs[PROBABILITIES_OUTPUT]
        probability_gap = float(np.abs(got - expected).max())
        agreement = float((got.argmax(axis=1) == expected.argmax(axis=1)).mean())
        if probability_gap > PROBABILITY_TOLERANCE:
            problems.append(f"probabilities differ by {probability_gap:.2e} (tolerance {PROBABILITY_TOLERANCE:.0e})")
        if agreement < 1.0:
            problems.append(f"predicted classes agree on only {agreement:.1%} of {len(images)} cells")
        report = ParityReport(len(images), embedding_gap, probability_gap, agreement)
    if problems:
        raise ParityError("exported model does not match its reference: " + "; ".join(problems))
    return report
