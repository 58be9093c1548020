"""Pieces shared by the labelled training methods (supervised fine-tuning and MDD adaptation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from hema.train.backbones.cell_backbone import CellBackbone
from hema.train.data.sampling import GlobalBatchSampler

__all__ = ["LinearClassifier", "cycle_batches", "inverse_frequency_weights", "move"]


class LinearClassifier(nn.Module):
    """A backbone with one linear layer on its embedding: ``uint8`` NHWC images in, logits out."""

    def __init__(self, backbone: CellBackbone, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.info.embedding_dim, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(images))


def inverse_frequency_weights(labels: np.ndarray, classes: int) -> torch.Tensor:
    """Class weights ``n / (classes * count)``: each class contributes equally to a weighted loss."""
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    if (counts == 0).any():
        raise ValueError("every class needs at least one labelled example")
    return torch.tensor(len(labels) / (classes * counts), dtype=torch.float32)


def cycle_batches(loader: DataLoader, sampler: GlobalBatchSampler, start_step: int) -> Iterator[Any]:
    """Batches without end, from global step ``start_step``: the sampler's epochs follow one another.

    The position in the data is a function of the step alone, so a resumed run continues exactly.
    """
    steps = sampler.steps_per_epoch()
    epoch, offset = divmod(start_step, steps)
    while True:
        sampler.set_epoch(epoch, offset)
        yield from loader
        epoch, offset = epoch + 1, 0


def move(batch: Any, device: torch.device) -> Any:
    """Tensors (possibly in tuples and lists) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return type(batch)(move(item, device) for item in batch)
