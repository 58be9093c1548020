"""INT8 post-training quantisation of a fused hema model by NNCF, with the image-reading layers kept in FP32.

One symmetric Q/DQ ONNX model (zero points of 0) serves every engine: ONNX Runtime runs it as it is, OpenVINO
converts its Q/DQ pairs to FakeQuantize, TensorRT builds from it. Two parts of the graph are never quantised:

- **The first convolutions.** The image arrives as exact 8-bit pixels; quantising the normalised image again
  puts it on a coarser grid that is not aligned with the pixels' own (step 0.0208 against 0.0174), and the
  early layers at 112x112 amplify that. Measured on the default model (PBC test split, ONNX Runtime): label
  agreement with FP32 97.7 % with every convolution quantised, 98.9 % with the stem in FP32, 99.8 % with the
  first six (stem, block 0, block 1.0), where the median INT8 noise in the embedding fell from 0.36 to 0.09 of
  each feature's spread between cells. Those six are 13 % of the network's 384 million multiply-adds.
- **Everything after the embedding** (head, novelty score): a few thousand multiply-adds, where quantising adds
  noise and saves nothing.

How close is close enough is decided afterwards, on the test split, by :mod:`hema.export.precision.agreement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from hema.runtime.engines.base import EMBEDDING_OUTPUT, IMAGE_INPUT
from hema.runtime.engines.signal_stack import signal_stack_kept

__all__ = ["Int8Settings", "calibration_dataset", "floating_point_nodes", "quantise"]


@dataclass(frozen=True)
class Int8Settings:
    """How to quantise.

    Attributes:
        cells: Train-split cells to calibrate activation ranges with.
        batch_size: Cells per inference call during calibration.
        fp32_convolutions: How many of the first convolutions (in graph order) stay in FP32.
    """

    cells: int = 300
    batch_size: int = 16
    fp32_convolutions: int = 6

    def __post_init__(self) -> None:
        if self.cells < 1 or self.batch_size < 1 or self.fp32_convolutions < 0:
            raise ValueError(f"INT8 settings out of range: {self}")


def _after_embedding(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes that read the embedding, directly or through other nodes."""
    reached = {EMBEDDING_OUTPUT}
    names = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if reached.intersection(node.input):
            reached.update(node.output)
            names.append(node.name)
    return names


def floating_point_nodes(model: onnx.ModelProto, fp32_convolutions: int) -> list[str]:
    """The nodes :func:`quantise` leaves in FP32: the first ``fp32_convolutions`` Conv nodes and the head.

    Raises:
        ValueError: If a node that must stay in FP32 has no name (NNCF finds nodes by name).
    """
    convolutions = [node for node in model.graph.node if node.op_type == "Conv"][:fp32_convolutions]
    names = [node.name for node in convolutions] + _after_embedding(model.graph)
    if not all(names):
        raise ValueError("every node of the model must have a name to be left out of quantisation")
    return names


def calibration_dataset(calibration: np.ndarray, batch_size: int) -> tuple[Any, int]:
    """The cells as an ``nncf.Dataset`` of model inputs in batches, and how many batches (NNCF's ``subset_size``)."""
    import nncf

    batches = [calibration[start : start + batch_size] for start in range(0, len(calibration), batch_size)]
    return nncf.Dataset(batches, lambda batch: {IMAGE_INPUT: batch}), len(batches)


def quantise(
    model: onnx.ModelProto, calibration: np.ndarray, settings: Int8Settings = Int8Settings()
) -> onnx.ModelProto:
    """Symmetric INT8 Q/DQ quantisation (min-max ranges, fast bias correction) of a fused hema model.

    Args:
        model: The FP32 model from ``hema-export onnx``.
        calibration: ``uint8`` cells ``(n, height, width, 3)`` for activation statistics.
        settings: Batch size and how many early convolutions stay in FP32.

    Returns:
        The quantised model (the card is not touched).
    """
    import nncf

    dataset, batches = calibration_dataset(calibration, settings.batch_size)
    ignored = nncf.IgnoredScope(names=floating_point_nodes(model, settings.fp32_convolutions))
    with signal_stack_kept():  # NNCF makes and drops OpenVINO Cores of its own
        return nncf.quantize(
            model,
            dataset,
            preset=nncf.QuantizationPreset.PERFORMANCE,  # symmetric: zero points of 0, which TensorRT requires
            subset_size=batches,  # NNCF counts dataset items: batches, not cells
            ignored_scope=ignored,
        )
