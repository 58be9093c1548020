"""Labelled cell images in ImageFolder layout, and the fixed train/test split hema uses everywhere.

Layout: ``DIR/<class name>/**/<image>``: the class is the name of the first-level folder, images are found
recursively beneath it (so ``DIR/neutrophil/slide_07/cell_001.jpg`` is a neutrophil).

Split: a file belongs to the test split when the first 8 hex digits of the SHA-256 of its *content*, read as an
integer, are below 20 % of 2**32; otherwise to the train split. The rule needs no list to be kept, survives
renames and copies, and gives every lab's folder a reproducible split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from hema.runtime.discovery import find_cell_images

__all__ = [
    "SPLITS",
    "TEST_FRACTION",
    "Split",
    "LabelledImages",
    "find_labelled_images",
    "find_unlabelled_images",
    "join_labelled",
    "split_of",
]

TEST_FRACTION = 0.2
Split = Literal["all", "train", "test"]
"""The parts of a cell folder: all of it, or one side of hema's content-hash split (:func:`split_of`)."""
SPLITS = get_args(Split)


def split_of(path: Path) -> str:
    """``"test"`` or ``"train"`` by the SHA-256 of the file's bytes (see the module docstring)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return "test" if int(digest[:8], 16) < TEST_FRACTION * 2**32 else "train"


@dataclass(frozen=True)
class LabelledImages:
    """Image files with integer labels.

    Attributes:
        paths: Image files.
        labels: ``int64`` array, index into ``class_names`` for each file.
        class_names: Sorted class (folder) names.
    """

    paths: tuple[Path, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def counts(self) -> dict[str, int]:
        """Images per class."""
        return {name: int((self.labels == index).sum()) for index, name in enumerate(self.class_names)}


def find_labelled_images(root: str | Path, split: str = "all") -> LabelledImages:
    """Collect the labelled images under ``root``.

    Args:
        root: ImageFolder-style directory.
        split: ``"all"``, ``"train"`` or ``"test"`` (see the module docstring).

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        ValueError: If the split name is unknown or no labelled image is found.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of class folders")
    class_dirs = sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    names: list[str] = []
    for class_dir in class_dirs:
        images = [path for path in find_cell_images([class_dir]).images if split == "all" or split_of(path) == split]
        if not images:
            continue
        names.append(class_dir.name)
        paths.extend(images)
        labels.extend([len(names) - 1] * len(images))
    if not paths:
        raise ValueError(f"no labelled images found under {root} (split {split!r}); expected {root}/<class>/<image>")
    return LabelledImages(tuple(paths), np.asarray(labels, dtype=np.int64), tuple(names))


def join_labelled(parts: list[LabelledImages] | tuple[LabelledImages, ...]) -> LabelledImages:
    """Labelled images of several labs as one set, classes joined by name (sorted union of the names).

    A lab may have fewer classes than another (BCCD has five of PBC's eight): its cells keep their own names.
    """
    names = tuple(sorted({name for part in parts for name in part.class_names}))
    paths = [path for part in parts for path in part.paths]
    labels = [names.index(part.class_names[label]) for part in parts for label in part.labels]
    return LabelledImages(tuple(paths), np.asarray(labels, dtype=np.int64), names)


def find_unlabelled_images(roots: list[Path] | tuple[Path, ...], split: str = "all") -> tuple[Path, ...]:
    """Every image under ``roots`` (recursively, labels ignored), restricted to a split.

    Raises:
        ValueError: If the split name is unknown or no image is found.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    images = [path for path in find_cell_images(list(roots)).images if split == "all" or split_of(path) == split]
    if not images:
        raise ValueError(f"no images found under {', '.join(map(str, roots))} (split {split!r})")
    return tuple(images)
