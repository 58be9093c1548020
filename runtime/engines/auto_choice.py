"""``--backend auto``: run a model's INT8 artifact in its place when one beside it passed the gate and is faster here.

``hema-export`` writes reduced-precision artifacts beside the FP32 ONNX model they were made from
(``make edge-models``; the embedded default model ships with its OpenVINO INT8 IR): ``NAME-int8.xml`` (OpenVINO)
and ``NAME.int8.onnx`` (ONNX Runtime). For ``NAME.onnx`` with ``--backend auto``, such an artifact is run instead
of the FP32 model only when all of these hold:

- it is faster on this CPU (measured, ``make bench``): OpenVINO INT8 wherever OpenVINO is installed (on the
  AVX2-only 2-core CPU hema is developed on, 1.8x the FP32 model); ONNX Runtime INT8 only on CPUs with VNNI or
  AMX (``avx512_vnni``, ``avx_vnni``, ``amx_int8``), without which it is slower than FP32 (0.35x here);
- its files match its own manifest (it is always verified, whatever ``--unverified`` says of the FP32 model);
- its card records an agreement with the FP32 model that passes the default gate
  (:class:`~hema.runtime.engines.precision_gate.AgreementGate`: labels agree on at least 99 % of the test split,
  balanced accuracy at most half a point lower);
- that agreement was measured against *this* FP32 file: the sha256 recorded at export equals the sha256 of
  ``NAME.onnx`` as read now (an INT8 artifact left over from an earlier model is never run in a new one's place).

Otherwise the FP32 model runs, as an explicit ``--backend openvino`` or ``--backend onnxruntime`` always does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hema.runtime.engines.base import Engine, ModelError
from hema.runtime.engines.precision_gate import AgreementGate

__all__ = ["INT8_SIBLINGS", "cpu_has_int8_dot_product", "faster_siblings", "open_faster_sibling", "refusal"]

INT8_SIBLINGS = (("-int8.xml", "openvino"), (".int8.onnx", "onnxruntime"))
"""Name endings of the INT8 artifacts of ``NAME.onnx`` and the engine of each, fastest first."""
_INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_has_int8_dot_product(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has VNNI or AMX int8 instructions (Linux ``/proc/cpuinfo`` flags; ``False`` elsewhere)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return not _INT8_DOT_PRODUCT_FLAGS.isdisjoint(flags)


def faster_siblings(model: Path, installed: tuple[str, ...]) -> list[tuple[Path, str]]:
    """The INT8 artifacts beside ``model`` (an ``.onnx``) that would run faster here, fastest first, with their
    engine; only those that exist and whose engine is installed."""
    if model.suffix.lower() != ".onnx":
        return []
    found = []
    for ending, backend in INT8_SIBLINGS:
        sibling = model.with_name(model.stem + ending)
        if backend not in installed or not sibling.is_file():
            continue
        if backend == "onnxruntime" and not cpu_has_int8_dot_product():
            continue
        found.append((sibling, backend))
    return found


def refusal(engine: Engine, fp32_sha256: str, gate: AgreementGate = AgreementGate()) -> str | None:
    """Why an opened INT8 artifact may not run in place of the FP32 model whose file has ``fp32_sha256``, or
    ``None`` when it may."""
    if engine.card.precision != "int8":
        return f"its card says {engine.card.precision}, not int8"
    agreement = engine.card.quantisation.get("agreement")
    if not isinstance(agreement, dict) or not gate.passed_by(agreement):
        return "it records no agreement with FP32 that passes the gate"
    if agreement.get("reference_sha256") != fp32_sha256:
        return "its agreement was measured against another FP32 model (sha256 differs)"
    return None


def open_faster_sibling(
    model: Path, fp32_sha256: str, installed: tuple[str, ...], open_verified: Callable[[Path, str], Engine]
) -> tuple[Engine | None, list[str]]:
    """The first INT8 sibling of ``model`` that may run in its place, opened, and why the others were passed over.

    Args:
        model: The FP32 ``.onnx``.
        fp32_sha256: sha256 of its bytes as read for this run.
        installed: Engines installed here.
        open_verified: Opens an artifact on an engine, checked against its manifest.
    """
    passed_over = []
    for sibling, backend in faster_siblings(model, installed):
        try:
            engine = open_verified(sibling, backend)
        except ModelError as error:
            passed_over.append(f"{sibling.name}: {error}")
            continue
        reason = refusal(engine, fp32_sha256)
        if reason is None:
            return engine, passed_over
        passed_over.append(f"{sibling.name}: {reason}")
    return None, passed_over
