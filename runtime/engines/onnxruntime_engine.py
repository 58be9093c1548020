"""ONNX Runtime on the CPU: runs every hema ONNX model, including heads with ``ai.onnx.ml`` operators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from hema.runtime.card import CARD_METADATA_KEY
from hema.runtime.engines.base import IMAGE_INPUT, Engine, ModelError, parse_card
from hema.runtime.engines.card_contract import Shape, check_card_fits_graph
from hema.runtime.manifest import ArtifactFiles, read_artifact

__all__ = ["OnnxRuntimeEngine"]


def _shape(dimensions: list[int | str | None] | None) -> Shape:
    """An ONNX Runtime shape with symbolic dimensions (``"batch"``) as ``None``."""
    return None if dimensions is None else tuple(side if isinstance(side, int) else None for side in dimensions)


class OnnxRuntimeEngine(Engine):
    """Runs an exported hema ONNX model (FP32 or INT8 QDQ) with ONNX Runtime's CPU provider.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads; ``0`` lets ONNX Runtime choose (all physical cores).
        artifact: The file's bytes as :func:`hema.runtime.manifest.read_artifact` read (and checked) them; the
            session is made from these bytes. Default: the file is read here, unchecked.

    Raises:
        ModelError: If the file cannot be loaded, keeps tensors in external data, carries no model card, or its
            card does not fit its graph.
    """

    backend = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 0, *, artifact: ArtifactFiles | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        if artifact is None:
            artifact = read_artifact(self.path, verify=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(artifact.model, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own exception types for every kind of bad file
            raise ModelError(f"cannot load model {self.path}: {error}") from error
        self.loaded_sha256 = dict(artifact.sha256)
        self.card = parse_card(self.session.get_modelmeta().custom_metadata_map.get(CARD_METADATA_KEY), self.path)
        self.output_names = tuple(output.name for output in self.session.get_outputs())
        check_card_fits_graph(
            self.card,
            self.path,
            {node.name: _shape(node.shape) for node in self.session.get_inputs()},
            {node.name: _shape(node.shape) for node in self.session.get_outputs()},
        )

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(self.output_names), {IMAGE_INPUT: np.ascontiguousarray(images, dtype=np.uint8)})
        return dict(zip(self.output_names, outputs))

    def describe(self) -> str:
        return f"onnxruntime {ort.__version__} CPU, threads {self.threads or 'auto'}"
