"""The training side's eval transform: the resize every backbone sees at evaluation and export time.

It must equal :func:`hema.runtime.preprocessing.load_cell_image` bit for bit; ``tests/export`` holds the two
against each other on real cells.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2 as T

__all__ = ["INTERPOLATION_MODES", "eval_transform", "load_eval_image"]

INTERPOLATION_MODES = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
}


def eval_transform(image_size: int, interpolation: str = "bilinear") -> Callable[[Image.Image], torch.Tensor]:
    """PIL image to ``uint8`` HWC tensor: RGB, stretched to ``image_size`` square (no crop)."""
    resize = T.Compose(
        [T.Resize((image_size, image_size), interpolation=INTERPOLATION_MODES[interpolation]), T.PILToTensor()]
    )
    return lambda image: resize(image.convert("RGB")).permute(1, 2, 0).contiguous()


def load_eval_image(path: str | Path, image_size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Decode ``path`` and apply :func:`eval_transform`."""
    with Image.open(path) as image:
        return eval_transform(image_size, interpolation)(image)
