"""Convert a fused hema ONNX model to OpenVINO IR in FP32, FP16 or INT8, with its model card inside.

FP16 stores the weights in half precision (half the file); the CPU still computes in FP32, as the runtime
pins ``INFERENCE_PRECISION_HINT``. INT8 is the conversion of the Q/DQ ONNX that ONNX Runtime and TensorRT also
use (:mod:`hema.export.precision.onnx_int8`): one quantisation, calibrated on train-split cells, for every engine.
Every reduced-precision IR is compared with the FP32 ONNX model on the test split of a labelled folder before it
is written; one that disagrees too much is not written at all.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnx

from hema.export.graph.fuse import read_card
from hema.export.precision.int8_quantisation import Int8Settings
from hema.export.precision.reduced_precision import ReducedPrecisionExport, check_candidate
from hema.export.precision.targets import OPENVINO_PRECISIONS
from hema.runtime.card import ModelCard
from hema.runtime.engines.openvino_engine import OPENVINO_CARD_KEY, OpenVinoEngine
from hema.runtime.engines.precision_gate import AgreementGate
from hema.runtime.manifest import write_manifest

__all__ = ["export_openvino"]


def _converted_int8(source: Path, calibration: Path, settings: Int8Settings) -> tuple[Any, dict[str, Any]]:
    """The Q/DQ INT8 ONNX of ``source`` as an ``openvino.Model``, and how it was quantised."""
    from openvino.tools.ovc import convert_model

    from hema.export.precision.onnx_int8 import quantise_onnx

    quantised = quantise_onnx(source, calibration, settings)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "int8.onnx"
        onnx.save(quantised, str(path))
        return convert_model(str(path)), read_card(quantised).quantisation


def _save(model: Any, card: ModelCard, out: Path, precision: str) -> list[Path]:
    import openvino as ov

    model.set_rt_info(card.to_json(), list(OPENVINO_CARD_KEY))
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out), compress_to_fp16=precision == "fp16")
    return [out, out.with_suffix(".bin")]


def export_openvino(
    source: Path,
    out: Path,
    *,
    precision: str = "fp32",
    calibration: Path | None = None,
    check_data: Path | None = None,
    gate: AgreementGate = AgreementGate(),
    settings: Int8Settings = Int8Settings(),
) -> ReducedPrecisionExport:
    """Write ``out`` (``.xml`` + ``.bin``) from the FP32 hema ONNX model ``source``.

    Args:
        source: Fused FP32 ``.onnx`` from ``hema-export onnx``.
        out: The ``.xml`` to write.
        precision: ``fp32``, ``fp16`` or ``int8``.
        calibration: Cell folder whose train split calibrates INT8 (required for ``int8``).
        check_data: Labelled folder whose test split the result is checked on (default: ``calibration``).
            Required for ``fp16`` and ``int8``; optional for ``fp32``.
        gate: How closely FP16 and INT8 must agree with FP32.
        settings: INT8 quantisation settings.

    Raises:
        ValueError: If the model's head needs ONNX Runtime, or a needed folder is missing.
        AgreementError: If the result disagrees with ``source`` beyond the thresholds (nothing is written).
    """
    from openvino.tools.ovc import convert_model

    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(f"precision must be one of {OPENVINO_PRECISIONS}, not {precision!r}")
    card = read_card(onnx.load(str(source)))
    if "openvino" not in card.engines:
        raise ValueError(f"{source}'s head ({card.head.get('kind')}) runs in ONNX Runtime only, not in OpenVINO")
    check_data = check_data or calibration
    if precision != "fp32" and check_data is None:
        raise ValueError(f"a {precision} export is checked against FP32 on labelled cells: pass --data")
    quantisation: dict[str, Any] = {}
    if precision == "int8":
        if calibration is None:
            raise ValueError("INT8 needs calibration cells: pass --data")
        model, quantisation = _converted_int8(source, calibration, settings)
    else:
        model = convert_model(str(source))
    card = replace(card, precision=precision, quantisation=quantisation)
    report = None
    if check_data is not None:
        report = check_candidate(
            save=lambda path: _save(model, card, path, precision),
            open_candidate=OpenVinoEngine,
            name=out.name,
            source=source,
            check_data=check_data,
            gate=gate,
        )
        card = replace(card, quantisation={**quantisation, "agreement": report.to_dict()})
    files = _save(model, card, out, precision)
    write_manifest(out, "openvino", files, details={"precision": precision, "source": source.name})
    return ReducedPrecisionExport(out, card, report, sum(path.stat().st_size for path in files))
