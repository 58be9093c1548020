"""Small JPEG thumbnails of cell images as ``data:`` URIs, for the self-contained review page.

Thumbnails are for a person's eyes only: they never feed the model, so JPEG draft mode (decoding at 1/2, 1/4
or 1/8 scale inside libjpeg) is used to make them several times faster. Files are opened as the model's path
opens them (:func:`~hema.runtime.preprocessing.open_cell_image`: cell image formats only, size checked first) and
made 8-bit by the model's own rule (:func:`~hema.runtime.preprocessing.to_eight_bit`, before the thumbnail is
shrunk, and :func:`~hema.runtime.preprocessing.to_rgb`), so a 16-bit grey cell looks as the model sees it. A
file that cannot be decoded gets no thumbnail (``None``) instead of an exception: such files are error rows of the
run anyway.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from hema.runtime.preprocessing import open_cell_image, to_eight_bit, to_rgb

__all__ = ["THUMBNAIL_QUALITY", "THUMBNAIL_SIZE", "thumbnail_data_uri", "thumbnail_data_uris"]

THUMBNAIL_SIZE = 96
THUMBNAIL_QUALITY = 80


def thumbnail_data_uri(path: Path, size: int = THUMBNAIL_SIZE, quality: int = THUMBNAIL_QUALITY) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail whose longer side is at most ``size`` pixels.

    Args:
        path: A cell image file.
        size: Longest side of the thumbnail in pixels.
        quality: JPEG quality (1-95).

    Returns:
        The data URI, or ``None`` when the file cannot be decoded (missing, empty, truncated, not an image, not a
        cell image format, too large).
    """
    try:
        with open_cell_image(path) as image:
            image.draft("RGB", (size, size))  # JPEG only: decode at the smallest scale still >= size
            small = to_eight_bit(image)  # Pillow cannot shrink 16-bit images, and would show them white
            small.thumbnail((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
            rgb = to_rgb(small)
            rgb.load()  # decoded while the file is open, also when it already fit and nothing was shrunk
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=quality, optimize=True)
    except Exception:  # any decoder failure: no thumbnail, never a crashed report
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def thumbnail_data_uris(
    paths: Sequence[Path],
    size: int = THUMBNAIL_SIZE,
    quality: int = THUMBNAIL_QUALITY,
    threads: int = 4,
    on_done: Callable[[int], None] | None = None,
) -> list[str | None]:
    """:func:`thumbnail_data_uri` for many files on a thread pool (Pillow releases the GIL while decoding).

    Args:
        paths: Image files.
        size: Longest side of each thumbnail in pixels.
        quality: JPEG quality (1-95).
        threads: Threads.
        on_done: Called with 1 after each thumbnail (for progress bars).

    Returns:
        One data URI or ``None`` per path, in the order of ``paths``.
    """

    uris: list[str | None] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for uri in pool.map(lambda path: thumbnail_data_uri(path, size, quality), paths):
            uris.append(uri)
            if on_done is not None:
                on_done(1)  # called from this thread, in order, so a progress bar needs no lock
    return uris
