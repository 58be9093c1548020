"""ONNX Runtime on the CPU: runs every hema ONNX model, including heads with ``ai.onnx.ml`` operators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from hema.runtime.card import CARD_METADATA_KEY
from hema.runtime.engines.base import IMAGE_INPUT, Engine, ModelError, parse_card

__all__ = ["OnnxRuntimeEngine"]


class OnnxRuntimeEngine(Engine):
    """Runs an exported hema ONNX model (FP32 or INT8 QDQ) with ONNX Runtime's CPU provider.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; ``0`` lets ONNX Runtime choose (all physical cores).

    Raises:
        ModelError: If the file cannot be loaded or carries no model card.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own exception types for every kind of bad file
            raise ModelError(f"cannot load model {self.path}: {error}") from error
        self.card = parse_card(self.session.get_modelmeta().custom_metadata_map.get(CARD_METADATA_KEY), self.path)
        self.output_names = tuple(output.name for output in self.session.get_outputs())

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(self.output_names), {IMAGE_INPUT: np.ascontiguousarray(images, dtype=np.uint8)})
        return dict(zip(self.output_names, outputs))

    def describe(self) -> str:
        return f"onnxruntime {ort.__version__} CPU, threads {self.threads or 'auto'}"
