"""Real cell images for post-training quantisation, taken from hema's train split so the test split stays unseen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hema.runtime.batches import decoded_batches
from hema.runtime.card import InputSpec
from hema.train.data.folders import find_unlabelled_images

__all__ = ["calibration_cells"]


def _decode(paths: list[Path], spec: InputSpec) -> np.ndarray:
    """Decode and resize exactly as the runtime does; unreadable files are left out."""
    images = [image for _, batch in decoded_batches(paths, spec) for image in batch if isinstance(image, np.ndarray)]
    if not images:
        raise ValueError("none of the calibration images could be read")
    return np.stack(images)


def calibration_cells(folder: Path, spec: InputSpec, count: int) -> np.ndarray:
    """``count`` train-split cells of ``folder``, decoded and resized as the runtime does.

    They are spread evenly over the sorted file list, so every class folder contributes in proportion to its
    size and the choice is the same on every run.

    Returns:
        ``uint8`` array ``(n, height, width, 3)``.

    Raises:
        ValueError: If the folder has no readable image in its train split.
    """
    paths = find_unlabelled_images([folder], "train")
    ranks = np.linspace(0, len(paths) - 1, min(count, len(paths))).round().astype(int)
    return _decode([paths[rank] for rank in dict.fromkeys(ranks.tolist())], spec)
