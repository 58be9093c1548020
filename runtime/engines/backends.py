"""Pick and open the inference engine for a model artifact.

An artifact's suffix says which engines can run it: ``.onnx`` runs on OpenVINO (plain-op heads) and ONNX
Runtime, an OpenVINO IR ``.xml`` on OpenVINO, a serialized ``.engine`` on TensorRT. ``auto`` takes the fastest
installed engine that loads the artifact (on a CPU OpenVINO before ONNX Runtime), falling back to the next when
one cannot run the model (an ONNX Runtime-only head); and, for an ``.onnx`` model, runs an INT8 artifact beside it
in its place when that passed the gate against this very file and is faster on this CPU
(:mod:`hema.runtime.engines.auto_choice`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hema.runtime.engines.auto_choice import open_faster_sibling
from hema.runtime.engines.base import Engine, ModelError
from hema.runtime.manifest import ArtifactFiles, read_artifact, read_manifest

__all__ = ["BACKENDS", "artifact_backends", "installed_backends", "open_engine"]

BACKENDS = ("onnxruntime", "openvino", "tensorrt")
_BACKENDS_BY_SUFFIX = {  # fastest first
    ".onnx": ("openvino", "onnxruntime"),
    ".xml": ("openvino",),
    ".engine": ("tensorrt",),
    ".plan": ("tensorrt",),
}
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt"}


def artifact_backends(path: Path) -> tuple[str, ...]:
    """Engines that can run the artifact, fastest first.

    Raises:
        ModelError: If the suffix is not one of hema's artifact formats.
    """
    try:
        return _BACKENDS_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ModelError(
            f"{path}: unknown model format {path.suffix!r}; hema runs .onnx, OpenVINO .xml and TensorRT .engine files"
        ) from None


def installed_backends() -> tuple[str, ...]:
    """The engines whose Python packages are importable here."""
    return tuple(name for name in BACKENDS if importlib.util.find_spec(_MODULES[name]) is not None)


def _open(backend: str, path: Path, threads: int, artifact: ArtifactFiles) -> Engine:
    """Load ``artifact`` (the bytes read, and checked, once) on ``backend``."""
    if backend == "onnxruntime":
        from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, threads, artifact=artifact)
    if backend == "openvino":
        from hema.runtime.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(path, threads, artifact=artifact)
    from hema.runtime.engines.base import parse_card
    from hema.runtime.engines.tensorrt_engine import TensorRtEngine

    manifest = artifact.manifest or read_manifest(path)
    if manifest is None or manifest.card is None:
        raise ModelError(f"{path}: a TensorRT engine needs the manifest written beside it by hema-export tensorrt")
    return TensorRtEngine(path, parse_card(manifest.card, path), artifact=artifact)


def open_engine(path: str | Path, backend: str = "auto", threads: int = 0, verify: bool = True) -> Engine:
    """Load a model artifact on the requested engine, or the fastest one installed for ``auto``.

    Args:
        path: ``.onnx``, OpenVINO ``.xml`` or TensorRT ``.engine`` file.
        backend: ``auto`` (an INT8 artifact beside an ``.onnx`` model may run in its place:
            :mod:`hema.runtime.engines.auto_choice`) or one of :data:`BACKENDS`.
        threads: CPU inference threads (``0``: the engine decides).
        verify: Check the artifact's files against its manifest first (refuses a damaged or changed model). The
            files are read once: the engine loads the very bytes that were checked.

    Raises:
        ModelError: If the model fails its integrity check, keeps tensors in ONNX external data, its card does not
            fit its graph, or the engine cannot run this format, is not installed, or cannot load the model.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no such model file: {path}")
    candidates = artifact_backends(path)
    artifact = read_artifact(path, verify=verify)
    if backend != "auto":
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}")
        if backend not in candidates:
            raise ModelError(f"{backend} cannot run a {path.suffix} file; it runs on: {', '.join(candidates)}")
        return _open(backend, path, threads, artifact)
    installed = installed_backends()
    faster, passed_over = open_faster_sibling(
        path,
        artifact.sha256[artifact.path.suffix],
        installed,
        lambda sibling, name: _open(name, sibling, threads, read_artifact(sibling, verify=True)),
    )
    if faster is not None:
        return faster
    available = [name for name in candidates if name in installed] or [candidates[0]]  # says what to install
    failures = []
    for name in available:
        try:
            engine = _open(name, path, threads, artifact)
        except ModelError as error:
            failures.append(f"{name}: {error}")
            continue
        engine.passed_over = tuple(passed_over)
        return engine
    raise ModelError("; ".join(failures))
