"""Decode and resize image files in batches on a thread pool, one batch ahead of the consumer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import load_cell_image

__all__ = ["DecodedBatch", "decode_or_reason", "decoded_batches"]

DecodedBatch = tuple[Sequence[Path], list["np.ndarray | str"]]


def decode_or_reason(path: Path, spec: InputSpec) -> np.ndarray | str:
    """The resized image, or a one-line reason why the file cannot be decoded."""
    try:
        if path.stat().st_size == 0:
            return "cannot read image: empty file (0 bytes)"
        return load_cell_image(path, spec)
    except Exception as error:  # any decoder failure must become a reason, never a crashed batch
        return f"cannot read image: {type(error).__name__}: {str(error) or 'no detail'}"


def decoded_batches(
    files: Sequence[Path], spec: InputSpec, batch_size: int = 32, workers: int = 4
) -> Iterator[DecodedBatch]:
    """Yield ``(paths, images)`` per batch; each image is a ``uint8`` array or the reason it is missing.

    Pillow releases the GIL while decoding, so ``workers`` threads decode the next batch while the caller runs
    the model on this one. At most two batches are held in memory, however many files there are.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    batches = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:

        def submit(batch: Sequence[Path]) -> list[Future[np.ndarray | str]]:
            return [pool.submit(decode_or_reason, path, spec) for path in batch]

        pending = submit(batches[0]) if batches else []
        for number, batch in enumerate(batches):
            images = [future.result() for future in pending]
            pending = submit(batches[number + 1]) if number + 1 < len(batches) else []
            yield batch, images
