"""OpenVINO on the CPU: runs hema's OpenVINO IR (FP32, FP16 weights or INT8) and plain-op ONNX models.

OpenVINO picks the inference precision itself unless told: on CPUs with AMX or AVX-512 BF16 it runs bf16 and
answers differ from the exported model. This engine always sets ``INFERENCE_PRECISION_HINT`` (``f32`` unless
the caller asks for ``bf16`` or ``f16`` on purpose).

``import openvino`` also imports its model converter (``openvino.tools.ovc``), whose import sends a usage event to
Intel's telemetry service unless the user opted out (a consent file under ``~/intel``; opt-out, not opt-in) and
starts a thread to send it. A workstation beside the microscope must not do that, and the runtime never converts a
model: :func:`import_openvino` imports OpenVINO without the converter (``tests/runtime/test_politeness.py``).

Threads are not pinned to cores (``ENABLE_CPU_PINNING`` off): decoding runs beside inference, and a pinned
worker would wait for its core instead of taking the free one (measured in ``make bench``).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hema.runtime.card import CARD_METADATA_KEY
from hema.runtime.engines.base import IMAGE_INPUT, Engine, ModelError, parse_card
from hema.runtime.engines.card_contract import Shape, check_card_fits_graph
from hema.runtime.manifest import ArtifactFiles, read_artifact

__all__ = ["OPENVINO_CARD_KEY", "INFERENCE_PRECISIONS", "OpenVinoEngine", "openvino_core"]

OPENVINO_CARD_KEY = ("hema", "model_card")  # rt_info path of the card inside an OpenVINO IR
INFERENCE_PRECISIONS = ("f32", "bf16", "f16")


_CONVERTER = "openvino.tools.ovc"


def import_openvino() -> Any:
    """The ``openvino`` package, imported without its model converter and the telemetry event its import sends.

    Raises:
        ImportError: If OpenVINO is not installed.
    """
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = _CONVERTER not in sys.modules
    if blocked:
        sys.modules[_CONVERTER] = None  # type: ignore[assignment]  # openvino/__init__ skips what it cannot import
    try:
        import openvino
    finally:
        if blocked:
            del sys.modules[_CONVERTER]  # hema-export imports the converter itself, when it converts
    return openvino


@functools.cache
def openvino_core() -> Any:
    """One OpenVINO ``Core`` for the whole process, as OpenVINO recommends.

    Each ``Core`` that is released takes its CPU plugin with it, and plugins released out of order leave the
    thread with an unmapped signal stack (:mod:`hema.runtime.engines.signal_stack`); one ``Core`` is never released.
    """
    return import_openvino().Core()


def _card_text(model: object, path: Path) -> str | None:
    """The card of an IR (its rt_info) or of an ONNX file (OpenVINO keeps ONNX metadata under ``framework``)."""
    for key in ([*OPENVINO_CARD_KEY], ["framework", CARD_METADATA_KEY]):
        if model.has_rt_info(key):
            return model.get_rt_info(key).astype(str)
    return None


def _shapes(ports: list[Any]) -> dict[str, Shape]:
    """The declared shape of each input or output by each of its names; dynamic dimensions as ``None``."""
    shapes: dict[str, Shape] = {}
    for port in ports:
        shape = port.get_partial_shape()
        sides = (
            None if shape.rank.is_dynamic else tuple(side.get_length() if side.is_static else None for side in shape)
        )
        shapes.update(dict.fromkeys(port.get_names(), sides))
    return shapes


class OpenVinoEngine(Engine):
    """Runs a hema model with OpenVINO on the CPU.

    Args:
        path: An OpenVINO IR ``.xml`` (its ``.bin`` beside it) or an ``.onnx`` file.
        threads: Inference threads; ``0`` lets OpenVINO choose.
        inference_precision: ``f32`` (default; answers match the exported model), ``bf16`` or ``f16``.
        artifact: The files' bytes as :func:`hema.runtime.manifest.read_artifact` read (and checked) them; the
            model is read from these bytes. Default: the files are read here, unchecked.

    Raises:
        ModelError: If OpenVINO is not installed, cannot read or compile the model, an ONNX model keeps tensors in
            external data, the model has no card, or its card does not fit its graph.
    """

    backend = "openvino"

    def __init__(
        self,
        path: str | Path,
        threads: int = 0,
        inference_precision: str = "f32",
        *,
        artifact: ArtifactFiles | None = None,
    ) -> None:
        if inference_precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"inference_precision must be one of {INFERENCE_PRECISIONS}, not {inference_precision!r}")
        try:
            ov = import_openvino()
        except ImportError as error:
            raise ModelError("OpenVINO is not installed: pip install 'hema[openvino]'") from error
        self.path = Path(path)
        self.threads = threads
        self.inference_precision = inference_precision
        if artifact is None:
            artifact = read_artifact(self.path, verify=False)
        core = openvino_core()
        try:  # from the bytes read (and checked) once: an IR's .xml with its .bin, or an .onnx file
            ir = self.path.suffix.lower() == ".xml"
            model = core.read_model(artifact.model, artifact.weights) if ir else core.read_model(artifact.model)
        except Exception as error:  # OpenVINO raises RuntimeError subclasses for unreadable or unsupported graphs
            raise ModelError(f"OpenVINO cannot read {self.path}: {error}") from error
        self.loaded_sha256 = dict(artifact.sha256)
        self.card = parse_card(_card_text(model, self.path), self.path)
        check_card_fits_graph(self.card, self.path, _shapes(model.inputs), _shapes(model.outputs))
        config = {
            "INFERENCE_PRECISION_HINT": inference_precision,
            "PERFORMANCE_HINT": "LATENCY",
            "ENABLE_CPU_PINNING": False,
            "NUM_STREAMS": 1,  # one stream: without it OpenVINO starts two threads more than INFERENCE_NUM_THREADS
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as error:
            raise ModelError(f"OpenVINO cannot compile {self.path}: {error}") from error
        self.output_names = tuple(output.get_any_name() for output in self.compiled.outputs)
        self.request = self.compiled.create_infer_request()
        self.version = ov.get_version()

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        results = self.request.infer({IMAGE_INPUT: np.ascontiguousarray(images, dtype=np.uint8)})
        by_name = {output.get_any_name(): value for output, value in results.items()}
        return {name: np.asarray(by_name[name], dtype=np.float32) for name in self.output_names}

    def describe(self) -> str:
        return f"openvino {self.version} CPU, {self.inference_precision}, threads {self.threads or 'auto'}"
