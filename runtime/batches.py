"""Decode and resize image files in batches on a thread pool, one batch ahead of the consumer.

A file that cannot be decoded becomes a one-line reason (:func:`decode_or_reason`), never an exception, so one
bad file cannot stop a batch: an empty or truncated file, a note saved as ``.jpg``, a PostScript file saved as
``.jpg`` (refused by its format, never decoded), a decompression bomb, a symlink loop, a file the user may not read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import ImageTooLargeError, UnsupportedImageFormatError, load_cell_image

__all__ = ["DecodedBatch", "decode_or_reason", "decoded_batches", "read_error_reason"]

DecodedBatch = tuple[Sequence[Path], list["np.ndarray | str"]]

_PREFIX = "cannot read image: "
_OS_ERRORS = {
    errno.ELOOP: "symlink loop (too many levels of symbolic links)",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "file not found (moved or deleted, or a broken link)",
    errno.EISDIR: "is a folder, not a file",
}


def _one_line(text: str) -> str:
    """``text`` on one line, with characters UTF-8 cannot hold (undecodable file-name bytes) escaped."""
    return " ".join(text.split()).encode("utf-8", "backslashreplace").decode("utf-8")


def read_error_reason(error: BaseException) -> str:
    """A one-line reason, for a person, why a file could not be decoded; it never repeats the file's path.

    Args:
        error: What reading or decoding the file raised.

    Returns:
        ``"cannot read image: ..."``: ``truncated file``, ``damaged image data``, ``not an image``, the format
        of an image that is not a cell image format, ``image too large``, ``symlink loop``, ``permission denied``,
        ``file not found``, or the error's type and message.
    """
    if isinstance(error, ImageTooLargeError | UnsupportedImageFormatError):
        detail = str(error)
    elif isinstance(error, UnidentifiedImageError):
        detail = "not an image (no image format recognised in the file)"
    elif isinstance(error, OSError) and error.errno in _OS_ERRORS:
        detail = _OS_ERRORS[error.errno]
    elif isinstance(error, OSError) and "truncated" in str(error):
        detail = "truncated file (the image data ends early)"
    elif isinstance(error, OSError) and "broken data stream" in str(error):
        detail = "damaged image data (broken data stream)"
    else:
        detail = f"{type(error).__name__}: {str(error) or 'no detail'}"
    return _PREFIX + _one_line(detail)


def decode_or_reason(path: Path, spec: InputSpec) -> np.ndarray | str:
    """The resized image, or a one-line reason why the file cannot be decoded (:func:`read_error_reason`)."""
    try:
        status = os.stat(path)
        if not stat.S_ISREG(status.st_mode):
            return _PREFIX + ("is a folder, not a file" if stat.S_ISDIR(status.st_mode) else "not a regular file")
        if status.st_size == 0:
            return _PREFIX + "empty file (0 bytes)"
        return load_cell_image(path, spec)
    except Exception as error:  # any decoder failure must become a reason, never a crashed batch
        return read_error_reason(error)


def decoded_batches(
    files: Sequence[Path], spec: InputSpec, *, batch_size: int = 32, decode_threads: int = 1
) -> Iterator[DecodedBatch]:
    """Yield ``(paths, images)`` per batch; each image is a ``uint8`` array or the reason it is missing.

    ``decode_threads`` threads decode the next batch while the caller runs
    the model on this one. At most two batches are held in memory, however many files there are.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, decode_threads)) as pool:

        def submit(batch: Sequence[Path]) -> list[Future[np.ndarray | str]]:
            return [pool.submit(decode_or_reason, path, spec) for path in batch]

        pending = submit(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            images = [future.result() for future in pending]
            pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
            yield batch, images
