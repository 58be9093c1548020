"""The benchmark's cells: a labelled split decoded once, stored raw, and read back a batch at a time.

Every engine worker reads the same ``uint8`` pixels (decoded and resized by the runtime's own
:func:`~hema.runtime.preprocessing.load_cell_image`), so engines are compared on identical input and no worker
pays for JPEG decoding. Batches are read with plain file reads into fresh arrays (not memory-mapped), so a
worker's resident memory holds one batch of cells, not the whole split.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["CellSet", "decode_cells", "read_cells"]


@dataclass(frozen=True)
class CellSet:
    """Where the decoded cells are and what they are.

    Attributes:
        pixels: Raw ``uint8`` file of ``count`` images ``(height, width, 3)`` one after another.
        count: Number of cells.
        height: Image height in pixels.
        width: Image width in pixels.
        labels: Class index of every cell in the model's class order.
        paths: The image files, in the same order.
    """

    pixels: str
    count: int
    height: int
    width: int
    labels: list[int]
    paths: list[str]

    @property
    def cell_bytes(self) -> int:
        return self.height * self.width * 3

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> CellSet:
        return cls(**json.loads(text))


def decode_cells(data: Path, split: str, class_names: tuple[str, ...], spec: object, folder: Path) -> CellSet:
    """Decode the labelled ``split`` of ``data`` for a model and write it to ``folder/cells.u8``.

    Args:
        data: Labelled cells, one folder per class.
        split: hema's split (``test``, ``train`` or ``all``).
        class_names: The model's classes (labels are indices into them).
        spec: The model card's :class:`~hema.runtime.card.InputSpec`.
        folder: Where to write the raw pixels.

    Raises:
        ValueError: If a class folder is not a class of the model or a cell cannot be decoded.
    """
    from hema.runtime.batches import decoded_batches
    from hema.train.data.folders import find_labelled_images

    labelled = find_labelled_images(data, split)
    unknown = sorted(set(labelled.class_names) - set(class_names))
    if unknown:
        raise ValueError(f"class folders {unknown} under {data} are not classes of the model")
    labels = [class_names.index(labelled.class_names[label]) for label in labelled.labels]
    pixels = folder / "cells.u8"
    with pixels.open("wb") as out:
        for batch, images in decoded_batches(labelled.paths, spec, batch_size=64, decode_threads=2):
            for path, image in zip(batch, images):
                if isinstance(image, str):
                    raise ValueError(f"{path}: {image}")
                out.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
    return CellSet(str(pixels), len(labels), spec.height, spec.width, labels, [str(p) for p in labelled.paths])


def read_cells(cells: CellSet, start: int, count: int) -> np.ndarray:
    """``count`` cells from index ``start`` (wrapping around the end) as a fresh ``(count, h, w, 3)`` array."""
    indices = [(start + offset) % cells.count for offset in range(count)]
    out = np.empty((count, cells.height, cells.width, 3), dtype=np.uint8)
    with open(cells.pixels, "rb") as source:
        for row, index in enumerate(indices):
            source.seek(index * cells.cell_bytes)
            out[row] = np.frombuffer(source.read(cells.cell_bytes), dtype=np.uint8).reshape(out.shape[1:])
    return out
