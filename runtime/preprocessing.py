"""Decode a cell image and resize it exactly as the training eval transform does.

This is the only preprocessing that happens outside the model graph: normalisation is inside the graph.
``tests/export/test_preprocessing_parity.py`` holds it bit for bit against the training eval transform (RGB,
grey, palette and RGBA images). One kind differs on purpose (:func:`to_rgb`): 16-bit grey is scaled to 8 bits,
where the training side's plain ``convert("RGB")`` clips it to white.

A file whose header declares more pixels than any single-cell image has is refused before its pixels are
decoded (:class:`ImageTooLargeError`): a few kilobytes of PNG can declare gigabytes of pixels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from hema.runtime.card import InputSpec

__all__ = [
    "INTERPOLATIONS",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "ImageTooLargeError",
    "check_image_size",
    "load_cell_image",
    "resize_cell_image",
    "to_rgb",
]

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

MAX_IMAGE_PIXELS = 40_000_000
"""Most pixels a cell image may have: a single-cell crop has about 0.1 megapixels, a whole field a few."""

MAX_IMAGE_SIDE = 16_384
"""Most pixels either side of a cell image may have (``1 x 100000`` is no cell, whatever its pixel count)."""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_PILLOW_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageTooLargeError(ValueError):
    """The image declares more pixels than :data:`MAX_IMAGE_PIXELS` or a side longer than :data:`MAX_IMAGE_SIDE`."""


def _limits() -> str:
    return f"limit {MAX_IMAGE_PIXELS / 1e6:g} megapixels and {MAX_IMAGE_SIDE} pixels per side"


def check_image_size(size: tuple[int, int]) -> None:
    """Refuse an image by the size its header declares, before any pixel is decoded.

    Args:
        size: ``(width, height)`` as Pillow reports it after opening (which reads the header only).

    Raises:
        ImageTooLargeError: If the image is larger than a cell image can be.
    """
    width, height = size
    if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
        raise ImageTooLargeError(f"image too large: {width}x{height} pixels ({_limits()}); not decoded")


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB.

    RGB comes back as it is; grey, palette, RGBA (the alpha channel is dropped), CMYK and YCbCr images as
    Pillow's ``convert("RGB")`` makes them, which is what the training eval transform does. 16-bit (and 32-bit
    integer) grey is scaled from 0-65535 to 0-255 with rounding (``v / 257``), so that a 16-bit copy of an 8-bit
    image gives back the same 8-bit pixels; a plain ``convert("RGB")`` would clip it to white.

    Args:
        image: Any decoded Pillow image.

    Returns:
        An ``RGB`` image of the same size.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES:
        samples = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        grey = ((samples * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    return image.convert("RGB")


def resize_cell_image(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """Resize a decoded image to the model's input size.

    Args:
        image: Any Pillow image; it is made 8-bit RGB first (:func:`to_rgb`).
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
    resized = to_rgb(image).resize((spec.width, spec.height), resample=INTERPOLATIONS[spec.interpolation])
    return np.asarray(resized, dtype=np.uint8)


def _open(path: str | Path) -> Image.Image:
    """``Image.open`` (the header only), with Pillow's own decompression-bomb refusal as ours."""
    try:
        return Image.open(path)
    except Image.DecompressionBombError as error:
        match = _PILLOW_BOMB_PIXELS.search(str(error))
        declared = f"{int(match.group(1)) / 1e6:.0f} megapixels" if match else "a possible decompression bomb"
        raise ImageTooLargeError(f"image too large: {declared} ({_limits()}); not decoded") from error


def load_cell_image(path: str | Path, spec: InputSpec) -> np.ndarray:
    """Decode an image file fully and resize it for the model.

    The header is read first and an image larger than a cell image can be is refused before its pixels are
    decoded (:func:`check_image_size`).

    Raises:
        ImageTooLargeError: If the header declares too many pixels (a decompression bomb, a nonsense size).
        OSError: If the file cannot be read or is not a complete image (zero-byte, truncated, not an image,
            permission denied, a symlink loop).
        ValueError: As :func:`resize_cell_image`.
    """
    with _open(path) as image:
        check_image_size(image.size)
        image.load()
        return resize_cell_image(image, spec)
