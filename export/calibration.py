"""Real cell images for post-training quantisation, taken from hema's train split so the test split stays unseen."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hema.runtime.batches import decoded_batches
from hema.runtime.card import InputSpec
from hema.train.data import find_unlabelled_images

__all__ = ["calibration_cells"]


def _decode(paths: list[Path], spec: InputSpec) -> np.ndarray:
    """Decode and resize exactly as the runtime does; unreadable files are left out."""
    images = [image for _, batch in decoded_batches(paths, spec) for image in batch if isinstance(image, np.ndarray)]
    if not images:
        raise ValueError("none of the calibration images could be read")
    return np.stack(images)


def calibration_cells(folder: Path, spec: InputSpec, count: int, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Train-split cells of ``folder``: ``count`` to calibrate with, and up to ``pool`` others to validate on.

    Both are spread evenly over the sorted file list, so every class folder contributes in proportion to its
    size and the choice is the same on every run.

    Returns:
        ``(calibration, others)``, ``uint8`` arrays ``(n, height, width, 3)``.

    Raises:
        ValueError: If the folder has no readable image in its train split.
    """
    paths = find_unlabelled_images([folder], "train")
    ranks = np.linspace(0, len(paths) - 1, min(count + pool, len(paths))).round().astype(int)
    chosen = [paths[rank] for rank in dict.fromkeys(ranks.tolist())]
    calibrate = set(np.linspace(0, len(chosen) - 1, min(count, len(chosen))).round().astype(int).tolist())
    first = [path for index, path in enumerate(chosen) if index in calibrate]
    rest = [path for index, path in enumerate(chosen) if index not in calibrate]
    return _decode(first, spec), _decode(rest, spec) if rest else np.empty((0, spec.height, spec.width, 3), np.uint8)
