"""Which engines the benchmark measures for a model, where their artifacts are, and why any is skipped."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = [
    "BASELINE",
    "REFERENCE",
    "EngineSpec",
    "artifact_bytes",
    "build_log",
    "edge_artifacts",
    "engine_specs",
    "gpu_present",
]

BASELINE = "pytorch-eager-fp32"  # the "x eager" column divides by this engine's batch-32 throughput
REFERENCE = "onnxruntime-fp32"  # label agreement is measured against this engine's answers


@dataclass(frozen=True)
class EngineSpec:
    """One engine configuration to measure.

    Attributes:
        name: Short unique id (``openvino-int8``).
        label: Name in the table (``OpenVINO INT8``).
        engine: ``torch``, ``onnxruntime``, ``openvino`` or ``tensorrt``.
        format: Artifact format in words.
        precision: What was asked for (``fp32``, ``int8``, ``bf16 hint``, ``fp16 weights``).
        artifact: The file the engine loads.
        inference_precision: OpenVINO ``INFERENCE_PRECISION_HINT`` requested (``f32``, ``bf16``, ``f16``).
        skip: Why it is not measured here (empty: it is).
    """

    name: str
    label: str
    engine: str
    format: str
    precision: str
    artifact: str
    inference_precision: str = "f32"
    skip: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def edge_artifacts(model: Path, edge: Path) -> dict[str, Path]:
    """The files ``make edge-models`` builds from ``model`` into ``edge`` (and a TensorRT engine, if built)."""
    stem = model.stem
    return {
        "openvino-fp32": edge / f"{stem}-fp32.xml",
        "openvino-fp16": edge / f"{stem}-fp16.xml",
        "openvino-int8": edge / f"{stem}-int8.xml",
        "onnxruntime-int8": edge / f"{stem}.int8.onnx",
        "tensorrt": edge / f"{stem}.engine",
    }


def artifact_bytes(path: Path) -> int:
    """Size on disk: the file, plus the weights ``.bin`` beside an OpenVINO ``.xml``."""
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(file.stat().st_size for file in files if file.is_file())


def build_log(artifact: Path) -> dict[str, object]:
    """What ``make edge-models`` logged beside an artifact (``ARTIFACT.log``): exit code, seconds, error line.

    The Makefile ends each log with ``exit CODE after SECONDS s``; an export refused by its accuracy check
    prints ``error: ...``. Empty when there is no log (the artifact was built some other way, or not at all).
    """
    log = artifact.with_suffix(".log")
    if not log.is_file():
        return {}
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    found: dict[str, object] = {"log": str(log)}
    for line in lines:
        if line.startswith("error:"):
            found["error"] = line.removeprefix("error:").strip()
        elif line.startswith("exit ") and " after " in line:
            code, seconds = line.removeprefix("exit ").removesuffix(" s").split(" after ")
            found.update(exit_code=int(code), build_s=int(seconds))
    return found


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible (driver device node or ``nvidia-smi``)."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def engine_specs(model: Path, edge: Path) -> list[EngineSpec]:
    """Every engine configuration, in table order; those that cannot run here carry the reason."""
    built = edge_artifacts(model, edge)
    specs = [
        EngineSpec(BASELINE, "PyTorch eager", "torch", "PyTorch (timm)", "fp32", str(model)),
        EngineSpec(REFERENCE, "ONNX Runtime", "onnxruntime", "ONNX", "fp32", str(model)),
        EngineSpec(
            "onnxruntime-int8", "ONNX Runtime INT8", "onnxruntime", "ONNX QDQ", "int8", str(built["onnxruntime-int8"])
        ),
        EngineSpec("openvino-fp32", "OpenVINO", "openvino", "OpenVINO IR", "fp32", str(built["openvino-fp32"])),
        EngineSpec(
            "openvino-bf16-hint",
            "OpenVINO bf16 hint",
            "openvino",
            "OpenVINO IR",
            "bf16 hint",
            str(built["openvino-fp32"]),
            inference_precision="bf16",
        ),
        EngineSpec(
            "openvino-fp16", "OpenVINO FP16 IR", "openvino", "OpenVINO IR", "fp16 weights", str(built["openvino-fp16"])
        ),
        EngineSpec("openvino-int8", "OpenVINO INT8", "openvino", "OpenVINO IR", "int8", str(built["openvino-int8"])),
        EngineSpec("tensorrt", "TensorRT", "tensorrt", "TensorRT engine", "fp16", str(built["tensorrt"])),
    ]
    return [replace(spec, skip=_skip_reason(spec)) for spec in specs]


def _skip_reason(spec: EngineSpec) -> str:
    if spec.engine == "torch" and not (_installed("torch") and _installed("timm")):
        return "torch/timm are not installed (pip install 'hema[train]')"
    if spec.engine == "openvino" and not _installed("openvino"):
        return "OpenVINO is not installed (pip install 'hema[openvino]')"
    if spec.engine == "tensorrt":
        if not gpu_present():
            return "no NVIDIA GPU on this machine"
        if not Path(spec.artifact).is_file():
            return f"no engine at {spec.artifact}: build one with hema-export tensorrt on this GPU"
        if not _installed("tensorrt"):
            return "TensorRT is not installed (pip install 'hema[tensorrt]')"
    if not Path(spec.artifact).is_file():
        error = build_log(Path(spec.artifact)).get("error")
        if error:
            return f"not built, its export check refused it: {error.split(': ', 1)[-1]}"
        return f"{spec.artifact} is not built (make edge-models)"
    return ""
