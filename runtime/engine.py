"""ONNX Runtime inference on an exported hema model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from hema.runtime.card import CARD_METADATA_KEY, ModelCard

__all__ = ["IMAGE_INPUT", "PROBABILITIES_OUTPUT", "EMBEDDING_OUTPUT", "ModelError", "OnnxRuntimeEngine"]

IMAGE_INPUT = "image"
PROBABILITIES_OUTPUT = "probabilities"
EMBEDDING_OUTPUT = "embedding"


class ModelError(RuntimeError):
    """The model file cannot be used: missing, not ONNX, or without a hema model card."""


class OnnxRuntimeEngine:
    """Runs an exported hema ONNX model with ONNX Runtime on the CPU.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; ``0`` lets ONNX Runtime choose (all physical cores).

    Raises:
        ModelError: If the file cannot be loaded or carries no model card.
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own exception types for every kind of bad file
            raise ModelError(f"cannot load model {self.path}: {error}") from error
        metadata = self.session.get_modelmeta().custom_metadata_map
        if CARD_METADATA_KEY not in metadata:
            raise ModelError(f"{self.path} is an ONNX file without a hema model card ({CARD_METADATA_KEY!r})")
        try:
            self.card = ModelCard.from_json(metadata[CARD_METADATA_KEY])
        except ValueError as error:
            raise ModelError(f"{self.path}: {error}") from error
        self.output_names = [output.name for output in self.session.get_outputs()]

    def require_classifier(self) -> None:
        """Raise :class:`ModelError` unless the model outputs class probabilities (not a backbone-only export)."""
        if PROBABILITIES_OUTPUT not in self.output_names:
            raise ModelError(f"{self.path} is a backbone-only model (no class probabilities): export a classifier")

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run a batch.

        Args:
            images: ``uint8`` array ``(batch, height, width, 3)``, RGB, resized as the card says.

        Returns:
            Every graph output by name: ``probabilities`` ``(batch, classes)`` and ``embedding``
            ``(batch, dim)`` for a classifier, only ``embedding`` for a backbone-only export.
        """
        outputs = self.session.run(self.output_names, {IMAGE_INPUT: np.ascontiguousarray(images, dtype=np.uint8)})
        return dict(zip(self.output_names, outputs))
