"""Embeddings from a torch :class:`~hema.train.backbones.cell_backbone.CellBackbone`, batched on any device."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from hema.runtime.card import InputSpec
from hema.train.backbones.cell_backbone import CellBackbone
from hema.train.data.eval_transform import load_eval_image
from hema.train.run.device import resolve_device

__all__ = ["EvalImages", "embed_with_torch", "run_on_images"]


class EvalImages(Dataset):
    """Image files through the eval transform: ``uint8`` HWC tensors."""

    def __init__(self, paths: Sequence[Path], spec: InputSpec) -> None:
        self.paths = list(paths)
        self.spec = spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        path = self.paths[index]
        try:
            return load_eval_image(path, self.spec)
        except OSError as error:
            raise OSError(f"{path}: cannot read image: {error}") from error


@torch.inference_mode()
def run_on_images(
    module: torch.nn.Module,
    paths: Sequence[Path],
    spec: InputSpec,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    workers: int = 2,
    desc: str = "inference",
) -> np.ndarray:
    """Outputs ``float32 (n, ...)`` of an eval-mode module that takes ``uint8`` NHWC batches, in path order.

    Always full precision: heads fitted on these outputs run in FP32 graphs, and export checks parity.
    """
    target = device if isinstance(device, torch.device) else resolve_device(device)
    was_training = module.training
    module = module.to(target).eval()
    loader = DataLoader(
        EvalImages(paths, spec),
        batch_size=batch_size,
        num_workers=min(workers, os.cpu_count() or 1),
        pin_memory=target.type == "cuda",
    )
    chunks = []
    with tqdm(total=len(paths), unit="cell", desc=desc, disable=None) as progress:
        for images in loader:
            chunks.append(module(images.to(target, non_blocking=True)).float().cpu().numpy())
            progress.update(len(images))
    module.train(was_training)
    return np.concatenate(chunks).astype(np.float32)


def embed_with_torch(
    model: CellBackbone, paths: Sequence[Path], batch_size: int, device: str, workers: int, desc: str
) -> np.ndarray:
    """Embeddings ``float32 (n, dim)`` of ``paths`` through the backbone's eval transform."""
    return run_on_images(model, paths, model.info.input_spec(), batch_size, device, workers, desc)
