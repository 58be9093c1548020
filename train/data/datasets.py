"""Cell image datasets whose augmentation is a pure function of ``(seed, epoch, index)``.

They are indexed by :data:`hema.train.data.sampling.SampleKey` pairs from
:class:`~hema.train.data.sampling.GlobalBatchSampler`. Each sample's augmentation runs under its own forked RNG
seeded from the key, so results do not depend on the number of loader workers or processes, and a resumed
run repeats exactly what an uninterrupted one would have done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from hema.runtime.preprocessing import decode_cell_image
from hema.train.data.sampling import SampleKey, sample_seed

__all__ = ["AugmentedCells"]


class AugmentedCells(Dataset):
    """Image files through an augmentation; optionally with labels.

    Args:
        paths: Image files.
        augment: PIL RGB image -> tensor (or list of tensors, for multi-crop).
        labels: Integer label per file, or ``None`` for unlabelled cells.
        seed: Run seed.
        decode_min_side: Reduced decoding, as the model's runtime will decode
            (:func:`hema.runtime.preprocessing.decode_cell_image`; 0: full size).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        augment: Callable[[Image.Image], Any],
        labels: Sequence[int] | None = None,
        seed: int = 0,
        *,
        decode_min_side: int = 0,
    ) -> None:
        self.paths = list(paths)
        self.augment = augment
        self.labels = None if labels is None else [int(label) for label in labels]
        self.seed = seed
        self.decode_min_side = decode_min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: SampleKey) -> Any:
        index, epoch = key
        rgb = decode_cell_image(self.paths[index], self.decode_min_side)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            views = self.augment(rgb)
        return views if self.labels is None else (views, self.labels[index])
