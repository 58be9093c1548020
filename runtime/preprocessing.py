"""Decode a cell image and resize it exactly as the training eval transform does.

This is the only preprocessing that happens outside the model graph: normalisation is inside the graph.
``tests/export/test_preprocessing_parity.py`` holds it bit for bit against the training eval transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hema.runtime.card import InputSpec

__all__ = ["INTERPOLATIONS", "load_cell_image", "resize_cell_image"]

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


def resize_cell_image(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """Resize a decoded image to the model's input size.

    Args:
        image: Any Pillow image; it is converted to RGB first (grey, palette and RGBA images included).
        spec: The model's input specification.

    Returns:
        ``uint8`` array of shape ``(height, width, 3)``.

    Raises:
        ValueError: If the spec asks for a resize rule this runtime does not know.
    """
    if spec.resize != "stretch":
        raise ValueError(f"unknown resize rule {spec.resize!r}; this runtime knows 'stretch'")
    if spec.interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {spec.interpolation!r}; known: {sorted(INTERPOLATIONS)}")
    rgb = image.convert("RGB")
    resized = rgb.resize((spec.width, spec.height), resample=INTERPOLATIONS[spec.interpolation])
    return np.asarray(resized, dtype=np.uint8)


def load_cell_image(path: str | Path, spec: InputSpec) -> np.ndarray:
    """Decode an image file fully and resize it for the model.

    Raises:
        OSError: If the file cannot be read or is not a complete image (zero-byte, truncated, not an image).
        ValueError: As :func:`resize_cell_image`.
    """
    with Image.open(path) as image:
        image.load()
        return resize_cell_image(image, spec)
