"""The INT8 Q/DQ ONNX of a fused hema model, calibrated on train-split cells: what every INT8 engine is built from.

ONNX Runtime runs it as it is, OpenVINO converts it to IR, TensorRT builds an engine from it
(:mod:`hema.export.precision.int8_quantisation` says what stays in FP32 and why). Whether it is good enough is decided
afterwards on the test split by each export. The card is carried over with its precision and how it was made.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from hema.export.graph.fuse import attach_card, read_card
from hema.export.precision.calibration_cells import calibration_cells
from hema.export.precision.int8_quantisation import Int8Settings, quantise

__all__ = ["quantise_onnx"]


def quantise_onnx(source: Path, calibration: Path, settings: Int8Settings = Int8Settings()) -> onnx.ModelProto:
    """Quantise a fused FP32 hema model to INT8 QDQ, calibrated on train-split cells.

    Args:
        source: The FP32 ``.onnx`` written by ``hema-export onnx``.
        calibration: Cell folder whose train split calibrates.
        settings: Calibration cells, batch size and the convolutions kept in FP32.

    Returns:
        The quantised model with its card (``precision="int8"``, how it was quantised).
    """
    model = onnx.load(str(source))
    card = read_card(model)
    cells = calibration_cells(calibration, card.input, settings.cells)
    details: dict[str, Any] = {
        "method": "NNCF post-training quantisation, symmetric INT8 Q/DQ",
        "calibration": f"{len(cells)} cells of the train split of {calibration}",
        "kept_in_fp32": f"the first {settings.fp32_convolutions} convolutions and everything after the embedding",
    }
    return attach_card(quantise(model, cells, settings), replace(card, precision="int8", quantisation=details))
