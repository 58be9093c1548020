"""The training side's eval transform: the view and resize every backbone sees at evaluation and export time.

It must equal :func:`hema.runtime.preprocessing.load_cell_image` bit for bit; ``tests/export`` holds the two
against each other on real cells. The view before the resize (stain standardisation, the cell view) is the
runtime's own function (:func:`hema.runtime.preprocessing.prepare_view`), called here too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import decode_cell_image, prepare_view

__all__ = ["INTERPOLATION_MODES", "eval_transform", "load_eval_image"]

INTERPOLATION_MODES = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
}


def eval_transform(spec: InputSpec) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image to ``uint8`` HWC tensor: RGB, the spec's view, stretched to its size (no crop)."""
    resize = T.Compose(
        [
            T.Resize((spec.height, spec.width), interpolation=INTERPOLATION_MODES[spec.interpolation]),
            T.PILToTensor(),
        ]
    )
    return lambda image: resize(prepare_view(image.convert("RGB"), spec)).permute(1, 2, 0).contiguous()


def load_eval_image(path: str | Path, spec: InputSpec) -> torch.Tensor:
    """Decode ``path`` and apply :func:`eval_transform`."""
    return eval_transform(spec)(decode_cell_image(path, spec.decode_min_side))  # the runtime's own decoder
