"""Decode a cell image, take the model's view of it and resize it exactly as the training eval transform does.

This is the only preprocessing that happens outside the model graph: normalisation is inside the graph. The
view (:func:`prepare_view`) is the card's stain and view rules: the whole image as it is, stain-standardised, or
the cell view (:mod:`hema.runtime.cell_view`).
``tests/export/test_preprocessing_parity.py`` holds it bit for bit against the training eval transform (RGB,
grey, palette and RGBA images). One kind differs on purpose (:func:`to_rgb`): 16-bit grey is scaled to 8 bits,
where the training side's plain ``convert("RGB")`` clips it to white.

A file whose header declares more pixels than any single-cell image has is refused before its pixels are
decoded (:class:`ImageTooLargeError`): a few kilobytes of PNG can declare gigabytes of pixels. Only the formats a
cell image can have are decoded (:data:`CELL_IMAGE_FORMATS`); any other file is refused by the format its first
bytes name (:class:`UnsupportedImageFormatError`) before any decoder sees it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hema.runtime.card import InputSpec
from hema.runtime.cell_view import cell_view, standardise_stain
from hema.runtime.jpeg_decoding import JPEG_MAGIC, colour_jpeg_size, decode_colour_jpeg, reduction_factor

__all__ = [
    "CELL_IMAGE_FORMATS",
    "INTERPOLATIONS",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "ImageTooLargeError",
    "UnsupportedImageFormatError",
    "check_image_size",
    "decode_cell_image",
    "detected_image_format",
    "STAIN_RULES",
    "VIEW_RULES",
    "load_cell_image",
    "open_cell_image",
    "prepare_view",
    "resize_cell_image",
    "to_eight_bit",
    "to_rgb",
]

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}

STAIN_RULES = ("as-is", "standardised")
VIEW_RULES = ("image", "cell")

MAX_IMAGE_PIXELS = 40_000_000
"""Most pixels a cell image may have: a single-cell crop has about 0.1 megapixels, a whole field a few.

It also bounds the memory of each decoding thread: an image at this limit raised peak resident memory by 158-314
MiB while :func:`load_cell_image` decoded it (8-bit RGB JPEG 158, 8-bit and 16-bit grey PNG or TIFF 199-200,
8-bit RGBA PNG 314; ``benchmarks/decode_memory.py``): a 16-bit image costs no more than an 8-bit one.
"""

MAX_IMAGE_SIDE = 16_384
"""Most pixels either side of a cell image may have (``1 x 100000`` is no cell, whatever its pixel count)."""

CELL_IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "TIFF")
"""The only formats decoded (Pillow's names), wherever a cell image is opened: classification, thumbnails, training.

Microscope cameras and analysers (CellaVision included) write JPEG, PNG, BMP or TIFF; nothing else is needed, and
every other format Pillow knows is attack surface: EPS is decoded by Ghostscript, an external program with a
history of sandbox escapes (CVE-2023-36664, CVE-2024-29510), and dozens of rarely used parsers (FLI, PCX, SGI,
XPM, ...) see little scrutiny. A camera JPEG that carries extra pictures (MPO) is a JPEG: Pillow's JPEG opener
reads its first picture. TIFF's compressions (LZW, Deflate, JPEG, PackBits) are decoded inside Pillow's own
libraries, never by another program.
"""

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_SIXTEEN_TO_EIGHT_BIT = [(value * 255 + 32767) // 65535 for value in range(65536)]  # v / 257, rounded
_STRIP_PIXELS = 1 << 20  # pixels of a 16-bit image made 32-bit at a time (4 MiB)
_FORMAT_PREFIX_BYTES = 16  # what Pillow's format checks look at
_PILLOW_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


class ImageTooLargeError(ValueError):
    """The image declares more pixels than :data:`MAX_IMAGE_PIXELS` or a side longer than :data:`MAX_IMAGE_SIDE`."""


class UnsupportedImageFormatError(ValueError):
    """The file is an image in a format that is not a cell image format (:data:`CELL_IMAGE_FORMATS`)."""


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


def to_eight_bit(image: Image.Image) -> Image.Image:
    """The image with 8-bit samples: 16-bit (and 32-bit integer) grey scaled to 8-bit grey, anything else as it is.

    Grey is scaled from 0-65535 to 0-255 with rounding (``v / 257``; values outside 0-65535 are clipped), so that a
    16-bit copy of an 8-bit image gives back the same 8-bit pixels; Pillow's own ``convert`` would clip it to white.
    The scaling is a lookup table applied in strips of :data:`_STRIP_PIXELS`, so it needs 1 byte per pixel for the
    result and little else (scaling with numpy all at once, in int64, took 730 MiB more at 40 megapixels).
    The model's path (:func:`to_rgb`) and the thumbnails of ``report.html`` both scale 16-bit images by this rule.

    Args:
        image: Any decoded Pillow image.

    Returns:
        An ``L`` image of the same size for 16-bit and 32-bit integer grey; ``image`` itself otherwise.
    """
    if image.mode not in _SIXTEEN_BIT_MODES:
        return image
    if image.mode == "I":
        return image.point(_SIXTEEN_TO_EIGHT_BIT, "L")
    grey = Image.new("L", image.size)
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // max(1, width))
    for top in range(0, height, rows):
        box = (0, top, width, min(height, top + rows))
        grey.paste(image.crop(box).convert("I").point(_SIXTEEN_TO_EIGHT_BIT, "L"), box)
    return grey


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB.

    RGB comes back as it is; grey, palette, RGBA (the alpha channel is dropped), CMYK and YCbCr images as
    Pillow's ``convert("RGB")`` makes them, which is what the training eval transform does. 16-bit (and 32-bit
    integer) grey is scaled to 8 bits first (:func:`to_eight_bit`); a plain ``convert("RGB")`` would clip it to
    white.

    Args:
        image: Any decoded Pillow image.

    Returns:
        An ``RGB`` image of the same size.
    """
    eight_bit = to_eight_bit(image)
    return eight_bit if eight_bit.mode == "RGB" else eight_bit.convert("RGB")


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
    resized = prepare_view(to_rgb(image), spec).resize(
        (spec.width, spec.height), resample=INTERPOLATIONS[spec.interpolation]
    )
    return np.asarray(resized, dtype=np.uint8)


def prepare_view(rgb: Image.Image, spec: InputSpec) -> Image.Image:
    """The part of an RGB image the model sees, before the resize: the spec's stain and view rules.

    Training calls this too (:mod:`hema.train.data.eval_transform`, :mod:`hema.train.data.augmentations`), so the
    cell view is one computation wherever it happens.

    Raises:
        ValueError: If the spec asks for a stain or view rule this runtime does not know.
    """
    if spec.stain not in STAIN_RULES:
        raise ValueError(f"unknown stain rule {spec.stain!r}; this runtime knows {', '.join(STAIN_RULES)}")
    if spec.view not in VIEW_RULES:
        raise ValueError(f"unknown view rule {spec.view!r}; this runtime knows {', '.join(VIEW_RULES)}")
    if spec.view == "cell":
        return Image.fromarray(cell_view(np.asarray(rgb), spec.cell_context))
    if spec.stain == "standardised":
        return Image.fromarray(standardise_stain(np.asarray(rgb)))
    return rgb


def detected_image_format(path: str | Path) -> str | None:
    """The image format the first bytes of a file name, or ``None`` when they name none Pillow knows.

    Only the magic-byte checks of Pillow's format plugins run, on the first 16 bytes, as ``Image.open`` runs them
    before choosing a decoder: no decoder, and no external program, ever sees the file.

    Returns:
        Pillow's name and description of the format, e.g. ``"EPS (Encapsulated Postscript)"``.
    """
    with open(path, "rb") as stream:
        prefix = stream.read(_FORMAT_PREFIX_BYTES)
    Image.init()
    for name in Image.ID:
        opener, accepts = Image.OPEN[name]
        if accepts is not None and accepts(prefix):
            description = getattr(opener, "format_description", None)
            return f"{name} ({description})" if description else name
    return None


def open_cell_image(path: str | Path) -> Image.Image:
    """Open a cell image (its header only) in one of :data:`CELL_IMAGE_FORMATS`, refusing it if too large.

    Pillow's own decompression-bomb refusal is reported as ours. Use it as a context manager.

    Raises:
        UnsupportedImageFormatError: If the file is an image of another format (named in the message).
        ImageTooLargeError: If the header declares more pixels than a cell image can have (:func:`check_image_size`).
        OSError: If the file cannot be read, or is no image (``PIL.UnidentifiedImageError``).
    """
    try:
        image = Image.open(path, formats=CELL_IMAGE_FORMATS)
    except Image.DecompressionBombError as error:
        match = _PILLOW_BOMB_PIXELS.search(str(error))
        declared = f"{int(match.group(1)) / 1e6:.0f} megapixels" if match else "a possible decompression bomb"
        raise ImageTooLargeError(f"image too large: {declared} ({_limits()}); not decoded") from error
    except UnidentifiedImageError as error:
        detected = detected_image_format(path)
        if detected is None or detected.split()[0] in CELL_IMAGE_FORMATS:
            raise  # no image at all, or a damaged header of a cell image format
        raise UnsupportedImageFormatError(
            f"{detected} is not a cell image format (decoded: {', '.join(CELL_IMAGE_FORMATS)}); not decoded"
        ) from error
    try:
        check_image_size(image.size)
    except ImageTooLargeError:
        image.close()
        raise
    return image


def decode_cell_image(path: str | Path, min_side: int = 0) -> Image.Image:
    """Decode an image file to 8-bit RGB, at half size when its shorter side halved is still ``min_side`` pixels.

    The one decoder of cell images: classification, export parity checks and training all decode through it, so a
    model always sees a file's pixels as it was trained on them. A three-channel colour JPEG is decoded by
    libjpeg-turbo (:mod:`hema.runtime.jpeg_decoding`; halved in the DCT domain); any other file by Pillow
    (:func:`to_rgb`; halved by averaging each 2x2 block, ``Image.reduce(2)``). The header is read first, and the
    size it declares checked (:func:`check_image_size`; :func:`open_cell_image` for the files Pillow decodes).
    A 16-bit image's own pixels are freed as soon as it is scaled to 8 bits, before
    its RGB copy is made, so that it needs little more memory than an 8-bit image of its size
    (``benchmarks/decode_memory.py``).

    Args:
        path: The image file.
        min_side: The model's :attr:`~hema.runtime.card.InputSpec.decode_min_side` (0: always in full).

    Raises:
        UnsupportedImageFormatError: If the file is an image in a format that is not a cell image format.
        ImageTooLargeError: If the header declares too many pixels (a decompression bomb, a nonsense size).
        OSError: If the file cannot be read or is not a complete image (zero-byte, truncated, not an image,
            permission denied, a symlink loop).
    """
    with open(path, "rb") as stream:
        data = stream.read(len(JPEG_MAGIC))
        if data == JPEG_MAGIC:
            data += stream.read()
    if size := colour_jpeg_size(data):
        check_image_size(size)
        return Image.fromarray(decode_colour_jpeg(data, size, reduction_factor(size, min_side)), "RGB")
    with open_cell_image(path) as image:
        factor = reduction_factor(image.size, min_side)
        image.load()
        if image.mode in _SIXTEEN_BIT_MODES:
            eight_bit = to_eight_bit(image)
            image.close()  # frees the 16-bit pixels (leaving the with block only closes the file)
            rgb = to_rgb(eight_bit)
        else:
            rgb = to_rgb(image)
    return rgb.reduce(factor) if factor > 1 else rgb


def load_cell_image(path: str | Path, spec: InputSpec) -> np.ndarray:
    """Decode an image file (:func:`decode_cell_image`) and resize it for the model (:func:`resize_cell_image`).

    Raises:
        UnsupportedImageFormatError, ImageTooLargeError, OSError: As :func:`decode_cell_image`.
        ValueError: As :func:`resize_cell_image`.
    """
    return resize_cell_image(decode_cell_image(path, spec.decode_min_side), spec)
