"""Embeddings from a torch :class:`~hema.train.backbones.CellBackbone`, batched on any device."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hema.train.backbones import CellBackbone
from hema.train.device import resolve_device
from hema.train.transforms import load_eval_image

__all__ = ["EvalImages", "embed_with_torch"]


class EvalImages(Dataset):
    """Image files through the eval transform: ``uint8`` HWC tensors."""

    def __init__(self, paths: Sequence[Path], image_size: int) -> None:
        self.paths = list(paths)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            return load_eval_image(path, self.image_size)
        except OSError as error:
            raise OSError(f"{path}: cannot read image: {error}") from error


@torch.inference_mode()
def embed_with_torch(
    model: CellBackbone, paths: Sequence[Path], batch_size: int, device: str, workers: int, desc: str
) -> np.ndarray:
    """Embeddings ``float32 (n, dim)`` of ``paths`` in order.

    Always full precision: the heads fitted on these features run in FP32 graphs, and export checks parity.
    """
    target = resolve_device(device)
    model = model.to(target).eval()
    loader = DataLoader(
        EvalImages(paths, model.info.image_size),
        batch_size=batch_size,
        num_workers=min(workers, os.cpu_count() or 1),
        pin_memory=target.type == "cuda",
    )
    chunks = []
    with tqdm(total=len(paths), unit="cell", desc=desc, disable=None) as progress:
        for images in loader:
            chunks.append(model(images.to(target, non_blocking=True)).float().cpu().numpy())
            progress.update(len(images))
    return np.concatenate(chunks).astype(np.float32)
