"""The exported model rebuilt as a PyTorch eager module: the baseline every engine is measured against.

The backbone comes from :func:`hema.train.evaluate.saliency.torch_module_for` (timm's EfficientNet-Lite0 rebuilt
from the model card: ImageNet weights, or the checkpoint the card names when it is on this machine; it takes
``uint8`` NHWC and normalises inside, as the ONNX graph does). The linear head's weights are read from the
fused ONNX file (initializers ``head/head_weight`` and ``head/head_bias``), then softmax. Label agreement with
ONNX Runtime FP32 in the benchmark shows the two match.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hema.runtime.engines.base import EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT, Engine, ModelError

__all__ = ["HEAD_BIAS", "HEAD_WEIGHT", "TorchEagerEngine"]

HEAD_WEIGHT = "head/head_weight"
HEAD_BIAS = "head/head_bias"


class TorchEagerEngine(Engine):
    """A hema ONNX classifier run as PyTorch eager FP32 on the CPU (``torch.inference_mode``).

    Args:
        path: The fused FP32 ``.onnx`` whose card names the backbone and whose head weights are read.
        threads: ``torch.set_num_threads`` value; ``0`` keeps torch's default.

    Raises:
        ModelError: If torch is missing, the backbone cannot be rebuilt in torch, or the head is not linear.
    """

    backend = "torch"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        try:
            import onnx
            import torch
            from onnx import numpy_helper

            from hema.export.graph.fuse import read_card
            from hema.train.evaluate.saliency import torch_module_for
            from hema.train.fewshot.features import FeatureExtractor
        except ImportError as error:
            raise ModelError(f"PyTorch eager needs hema[train]: {error}") from error
        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.path = Path(path)
        model = onnx.load(str(self.path))
        self.card = read_card(model)
        module, origin = torch_module_for(FeatureExtractor(dict(self.card.backbone)))
        if module is None:
            raise ModelError(origin)
        weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
        if HEAD_WEIGHT not in weights or HEAD_BIAS not in weights:
            raise ModelError(f"{self.path}: the head is not linear ({self.card.head.get('kind')}); no torch head")
        self.backbone = module.eval()
        self.weight = torch.from_numpy(weights[HEAD_WEIGHT].copy())
        self.bias = torch.from_numpy(weights[HEAD_BIAS].copy())
        self.output_names = (PROBABILITIES_OUTPUT, EMBEDDING_OUTPUT)
        self.origin = origin

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            embedding = self.backbone(torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)))
            probabilities = torch.softmax(embedding @ self.weight + self.bias, dim=1)
        return {PROBABILITIES_OUTPUT: probabilities.numpy(), EMBEDDING_OUTPUT: embedding.numpy()}

    def describe(self) -> str:
        return f"torch {self.torch.__version__} eager CPU fp32, threads {self.torch.get_num_threads()}"
