"""INT8 ONNX for CPUs without OpenVINO: QDQ quantisation by NNCF, run by ONNX Runtime.

Symmetric 8-bit weights and activations (zero points of 0: the Q/DQ form TensorRT's explicit quantisation also
takes), statistics from train-split cells. Whether the result is good enough is decided afterwards on the test
split by :func:`hema.export.reduced_precision.export_onnx_int8`. The card is carried over with its precision.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from hema.export.calibration import calibration_cells
from hema.export.fuse import attach_card, read_card
from hema.export.int8_quantisation import Int8Settings, quantise

__all__ = ["quantise_onnx"]


def quantise_onnx(source: Path, calibration: Path, settings: Int8Settings = Int8Settings()) -> onnx.ModelProto:
    """Quantise a fused FP32 hema model to INT8 QDQ, calibrated on train-split cells.

    Args:
        source: The FP32 ``.onnx`` written by ``hema-export onnx``.
        calibration: Cell folder whose train split calibrates.
        settings: Number of calibration cells and batch size.

    Returns:
        The quantised model with its card (``precision="int8"``, how it was quantised).
    """
    model = onnx.load(str(source))
    card = read_card(model)
    cells, _ = calibration_cells(calibration, card.input, settings.cells, 0)
    details: dict[str, Any] = {
        "method": "NNCF post-training quantisation, symmetric INT8 QDQ (ONNX Runtime, TensorRT)",
        "calibration": f"{len(cells)} cells of the train split of {calibration}",
    }
    return attach_card(quantise(model, cells, settings), replace(card, precision="int8", quantisation=details))
