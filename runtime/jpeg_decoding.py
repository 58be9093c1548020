"""libjpeg-turbo decoding of colour JPEGs, at full or half size, and the rule that says which size.

JPEG, what analysers export, is decoded by libjpeg-turbo through ``simplejpeg``, which ships the library in its
wheel: about 4x faster than Pillow's decoder and, at full size, the same pixels (both are libjpeg-turbo's accurate
integer IDCT with fancy upsampling; ``tests/runtime/test_decoding.py`` holds them equal on real cells). Halving
happens inside the IDCT (DCT-domain scaling): it never computes the pixels it would throw away.

:func:`hema.runtime.preprocessing.decode_cell_image` uses this for three-channel colour JPEGs and Pillow for the
rest. Only the header is parsed before the size check, as Pillow's opener does for the other formats.
"""

from __future__ import annotations

import numpy as np
import simplejpeg

__all__ = ["JPEG_MAGIC", "TURBO_COLOURSPACES", "colour_jpeg_size", "decode_colour_jpeg", "reduction_factor"]

JPEG_MAGIC = b"\xff\xd8\xff"
"""The first bytes of every JPEG file (start-of-image marker, then the next marker)."""
TURBO_COLOURSPACES = frozenset({"YCbCr", "RGB"})
"""JPEG colour spaces decoded here: three-channel colour, decoded to the same pixels as Pillow's."""


def reduction_factor(size: tuple[int, int], min_side: int) -> int:
    """2 when an image of ``size`` is decoded at half size under a ``min_side`` rule, else 1.

    Args:
        size: The stored image's ``(width, height)``.
        min_side: The model's :attr:`~hema.runtime.card.InputSpec.decode_min_side`: an image whose shorter side,
            halved (rounded up), still has at least this many pixels is halved; 0 decodes every image in full.
    """
    return 2 if min_side > 0 and -(-min(size) // 2) >= min_side else 1


def colour_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a three-channel colour JPEG whose header libjpeg-turbo reads, else ``None``.

    ``None`` sends the file to Pillow, which decodes the other JPEGs (grey, CMYK) and words the errors of a
    damaged header as for any other image.
    """
    if not data.startswith(JPEG_MAGIC):
        return None
    try:
        height, width, colourspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (width, height) if colourspace in TURBO_COLOURSPACES else None


def decode_colour_jpeg(data: bytes, size: tuple[int, int], factor: int) -> np.ndarray:
    """``uint8 (H, W, 3)``: a three-channel colour JPEG decoded by libjpeg-turbo, scaled by ``1 / factor`` in the
    DCT domain.

    Args:
        data: The JPEG file's bytes.
        size: Its ``(width, height)`` (:func:`colour_jpeg_size`).
        factor: 1 or 2 (:func:`reduction_factor`).

    Raises:
        OSError: If the data is damaged or truncated.
    """
    width, height = size
    expected = (-(-height // factor), -(-width // factor))
    try:
        pixels = simplejpeg.decode_jpeg(
            data, colorspace="RGB", min_height=expected[0], min_width=expected[1], strict=True
        )
    except ValueError as error:  # libjpeg's own words, in the terms Pillow's decoder uses for the same faults
        kind = "image file is truncated" if "Premature end" in str(error) else "broken data stream"
        raise OSError(f"{kind} (libjpeg-turbo: {error})") from error
    if pixels.shape[:2] != expected:
        raise OSError(f"JPEG decoded to {pixels.shape[1]}x{pixels.shape[0]}, its header says {width}x{height}")
    return pixels
