"""What every reduced-precision export shares: compare the candidate with FP32 first, write it only if it agrees.

The ONNX Runtime INT8 export lives here too; OpenVINO's is in :mod:`hema.export.precision.openvino_ir`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import onnx

from hema.export.graph.fuse import attach_card, read_card
from hema.export.precision.agreement import AgreementError, AgreementReport, compare_models
from hema.export.precision.int8_quantisation import Int8Settings
from hema.runtime.card import ModelCard
from hema.runtime.engines.base import Engine
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.engines.precision_gate import AgreementGate
from hema.runtime.manifest import write_manifest

__all__ = ["ReducedPrecisionExport", "check_candidate", "export_onnx_int8"]


@dataclass(frozen=True)
class ReducedPrecisionExport:
    """An artifact written after its agreement check (``agreement`` is ``None`` when none was asked for)."""

    path: Path
    card: ModelCard
    agreement: AgreementReport | None
    size_bytes: int


def check_candidate(
    *,
    save: Callable[[Path], object],
    open_candidate: Callable[[Path], Engine],
    name: str,
    source: Path,
    check_data: Path,
    gate: AgreementGate,
) -> AgreementReport:
    """Save the candidate into a temporary folder, run it beside the FP32 ``source`` and judge the difference.

    Raises:
        AgreementError: If it fails the ``gate``.
    """
    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / name
        save(candidate)
        report = compare_models(open_candidate(candidate), OnnxRuntimeEngine(source), check_data)
    problems = report.problems(gate)
    if problems:
        raise AgreementError(f"{name} disagrees with {source.name}: " + "; ".join(problems))
    return report


def export_onnx_int8(
    source: Path,
    out: Path,
    *,
    calibration: Path,
    check_data: Path | None = None,
    gate: AgreementGate = AgreementGate(),
    settings: Int8Settings = Int8Settings(),
) -> ReducedPrecisionExport:
    """Quantise ``source`` for ONNX Runtime and write ``out`` only if it agrees with FP32.

    Args:
        source: Fused FP32 ``.onnx``.
        out: The INT8 ``.onnx`` to write.
        calibration: Cells whose train split calibrates and validates the quantisation.
        check_data: Labelled cells whose test split judges it (default: ``calibration``).
        gate: How closely it must agree with FP32.
        settings: Quantisation settings.

    Raises:
        AgreementError: If the INT8 model disagrees too much (nothing is written).
    """
    from hema.export.precision.onnx_int8 import quantise_onnx

    model = quantise_onnx(source, calibration, settings)
    report = check_candidate(
        save=lambda path: onnx.save(model, str(path)),
        open_candidate=OnnxRuntimeEngine,
        name=out.name,
        source=source,
        check_data=check_data or calibration,
        gate=gate,
    )
    card = read_card(model)
    card = replace(card, quantisation={**card.quantisation, "agreement": report.to_dict()})
    model = attach_card(model, card)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    write_manifest(out, "onnx", [out], details={"precision": "int8", "source": source.name})
    return ReducedPrecisionExport(out, card, report, out.stat().st_size)
