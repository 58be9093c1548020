"""Frozen-backbone features for the few-shot heads, from a torch backbone or an exported ONNX model.

``backbone="default"`` or a path to an ``.onnx`` file extracts with ONNX Runtime through the lean runtime's
own preprocessing: torch is not imported (the workstation path). Anything else is built with
:func:`hema.train.backbones.cell_backbone.create_backbone` and run with torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hema.runtime.batches import decoded_batches
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.base import EMBEDDING_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

__all__ = ["DEFAULT_BACKBONE", "FeatureExtractor", "is_onnx_backbone", "open_feature_extractor"]

DEFAULT_BACKBONE = "default"


def is_onnx_backbone(spec: str) -> bool:
    """Whether ``spec`` names an ONNX model (the embedded default or an ``.onnx`` file)."""
    return spec == DEFAULT_BACKBONE or spec.endswith(".onnx")


@dataclass
class FeatureExtractor:
    """Turns image files into embeddings.

    Attributes:
        description: The backbone as recorded in metrics and model cards.
        onnx_engine: The exported model run by ONNX Runtime, for ONNX backbones.
        torch_backbone: The :class:`~hema.train.backbones.cell_backbone.CellBackbone`, for torch backbones.
        batch_size: Images per forward pass.
        device: Torch device (``auto``, ``cpu``, ``cuda``).
        workers: Image-decoding workers.

    Calling it with image files returns their ``float32 (n, dim)`` embeddings; an unreadable file raises
    ``OSError`` naming it (training data must be clean).
    """

    description: dict[str, Any]
    onnx_engine: OnnxRuntimeEngine | None = None
    torch_backbone: Any = None
    batch_size: int = 64
    device: str = "auto"
    workers: int = 4

    def __call__(self, paths: Sequence[Path], desc: str = "features") -> np.ndarray:
        """Embeddings of ``paths`` in order."""
        if self.onnx_engine is not None:
            return self._embed_onnx(paths, desc)
        from hema.train.backbones.embeddings import embed_with_torch

        return embed_with_torch(self.torch_backbone, paths, self.batch_size, self.device, self.workers, desc)

    def _embed_onnx(self, paths: Sequence[Path], desc: str) -> np.ndarray:
        engine = self.onnx_engine
        chunks = []
        with tqdm(total=len(paths), unit="cell", desc=desc, disable=None) as progress:
            batches = decoded_batches(paths, engine.card.input, batch_size=self.batch_size, decode_threads=self.workers)
            for batch, images in batches:
                for path, image in zip(batch, images):
                    if isinstance(image, str):
                        raise OSError(f"{path}: {image}")
                chunks.append(engine.run(np.stack(images))[EMBEDDING_OUTPUT])
                progress.update(len(batch))
        return np.concatenate(chunks).astype(np.float32)


def open_feature_extractor(
    backbone: str = DEFAULT_BACKBONE,
    *,
    arch: str | None = None,
    image_size: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
    workers: int = 4,
) -> FeatureExtractor:
    """A :class:`FeatureExtractor` for a backbone spec.

    Args:
        backbone: ``"default"`` (the embedded model's backbone), an exported ``.onnx`` file, a timm name or a
            checkpoint file.
        arch: timm architecture for checkpoints that do not name it.
        image_size: Input side for torch backbones (default: a checkpoint's own, else 224; ONNX models declare
            their own).
        batch_size: Images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda`` for torch backbones.
        workers: Image-decoding workers.
    """
    if is_onnx_backbone(backbone):
        engine = OnnxRuntimeEngine(DEFAULT_MODEL_PATH if backbone == DEFAULT_BACKBONE else backbone)
        description = {**engine.card.backbone, "onnx": str(engine.path)}
        return FeatureExtractor(description, onnx_engine=engine, batch_size=batch_size, workers=workers)
    from hema.train.backbones.cell_backbone import create_backbone

    model = create_backbone(backbone, arch=arch, image_size=image_size)
    return FeatureExtractor(
        model.info.to_dict(), torch_backbone=model, batch_size=batch_size, device=device, workers=workers
    )
