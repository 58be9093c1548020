"""INT8 post-training quantisation that keeps a model's answers: NNCF with accuracy control.

Plain 8-bit quantisation of the default model (EfficientNet-Lite0 + logistic regression) changed the class of
about 8 % of PBC test cells: the logit noise INT8 adds (median 3 on train cells) exceeds the margin between the
two best classes of many unseen cells. NNCF's accuracy-controlled quantisation quantises everything, then
returns the most sensitive operations to floating point until label agreement with the FP32 model on
validation cells is within ``max_disagreement``.

Which validation cells matters. The head was fitted on the train split, so it is sure of nearly every train
cell (the 1st percentile of their top-two logit margin is 3.9, against 0.2 on test cells) and agreement on
them overstates agreement on new cells (97.5 % against 91 %). Validation therefore uses the train cells the
FP32 model is least sure of: on the 300 smallest-margin train cells agreement was 91 %, as on the test split.
Even so, on the default model the validation cells reached full agreement while the test split did not (95.8 %):
the gate after export (:mod:`hema.export.agreement`) is what decides whether an INT8 model is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hema.runtime.signal_stack import signal_stack_kept

__all__ = ["Int8Settings", "hardest_cells", "quantise", "quantise_with_accuracy_control"]

Scorer = Callable[[Any], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class Int8Settings:
    """How to quantise.

    Attributes:
        cells: Train-split cells to calibrate with, and as many (the hardest) to validate on.
        pool: Other train-split cells among which the hardest are chosen.
        max_disagreement: Largest share of validation cells allowed to change class.
        batch_size: Cells per inference call during calibration and validation.
    """

    cells: int = 300
    pool: int = 2400
    max_disagreement: float = 0.005
    batch_size: int = 16


def _batches(images: np.ndarray, size: int) -> list[np.ndarray]:
    return [images[start : start + size] for start in range(0, len(images), size)]


def _probabilities(score: Callable[[np.ndarray], np.ndarray], images: np.ndarray, size: int) -> np.ndarray:
    return np.concatenate([score(batch) for batch in _batches(images, size)])


def hardest_cells(probabilities: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` cells with the smallest gap between their two most probable classes."""
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    return np.argsort(top_two[:, 1] - top_two[:, 0], kind="stable")[:count]


def _calibration_dataset(calibration: np.ndarray, settings: Int8Settings) -> tuple[Any, int]:
    import nncf

    batches = _batches(calibration, settings.batch_size)
    return nncf.Dataset(batches, lambda batch: {"image": batch}), len(batches)


def quantise(model: Any, calibration: np.ndarray, settings: Int8Settings = Int8Settings()) -> Any:
    """Plain NNCF post-training quantisation (min-max statistics, fast bias correction), no accuracy control.

    For ONNX Runtime: accuracy control builds an ONNX Runtime session for every candidate it ranks, which took
    more than 15 minutes for the default model on 2 cores. The agreement check after export still applies.
    """
    import nncf

    dataset, size = _calibration_dataset(calibration, settings)
    with signal_stack_kept():  # NNCF makes and drops OpenVINO Cores of its own
        return nncf.quantize(model, dataset, preset=nncf.QuantizationPreset.PERFORMANCE, subset_size=size)


def quantise_with_accuracy_control(
    model: Any,
    calibration: np.ndarray,
    pool: np.ndarray,
    scorer: Scorer,
    reference: Any,
    settings: Int8Settings = Int8Settings(),
) -> Any:
    """Quantise ``model`` to INT8, keeping label agreement with FP32 on the hardest cells of ``pool``.

    Args:
        model: An ``openvino.Model`` or an ``onnx.ModelProto`` of a fused hema classifier.
        calibration: ``uint8`` cells ``(n, h, w, 3)`` for activation statistics.
        pool: Other ``uint8`` cells; the ``settings.cells`` least certain ones validate agreement.
        scorer: ``scorer(candidate)`` returns ``probabilities(images)`` for what NNCF hands to validation (a
            compiled OpenVINO model, or an ``onnx.ModelProto``).
        reference: What ``scorer`` takes, for the FP32 model.
        settings: Agreement bound and sizes.

    Returns:
        The quantised model, of the same type as ``model``.
    """
    import nncf

    reference_probabilities = _probabilities(scorer(reference), pool, settings.batch_size)
    chosen = hardest_cells(reference_probabilities, settings.cells)
    validation = _batches(pool[chosen], settings.batch_size)
    expected = _batches(reference_probabilities[chosen].argmax(axis=1), settings.batch_size)
    dataset, size = _calibration_dataset(calibration, settings)

    def agreement(candidate: Any, items: Any) -> float:
        score = scorer(candidate)
        return float(np.mean(np.concatenate([score(batch).argmax(axis=1) == labels for batch, labels in items])))

    with signal_stack_kept():  # NNCF makes and drops OpenVINO Cores of its own
        return nncf.quantize_with_accuracy_control(
            model,
            dataset,
            nncf.Dataset(list(zip(validation, expected))),
            validation_fn=agreement,
            max_drop=settings.max_disagreement,
            drop_type=nncf.DropType.ABSOLUTE,
            preset=nncf.QuantizationPreset.PERFORMANCE,  # symmetric: zero points of 0, which TensorRT requires
            subset_size=size,
        )
