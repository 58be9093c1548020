"""Find the cell images a user pointed at: files as given, folders searched recursively."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "InputFiles", "find_cell_images"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})


@dataclass(frozen=True)
class InputFiles:
    """The result of expanding the user's paths.

    Attributes:
        images: Files to classify, in a stable order (folders sorted, then files as given).
        skipped: Files inside folders that do not have an image suffix (``manifest.csv``, notes, ...).
        missing: Paths the user named that do not exist.
    """

    images: tuple[Path, ...]
    skipped: tuple[Path, ...]
    missing: tuple[Path, ...]


def _is_file_or_broken_link(path: Path) -> bool:
    """A file, or a symbolic link that resolves to nothing (``exists`` is false for a loop, never an error)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def find_cell_images(paths: list[Path] | tuple[Path, ...]) -> InputFiles:
    """Expand files and folders into the list of images to classify.

    A file named explicitly is always classified, whatever its suffix, so that a bad file gets an error row
    rather than disappearing. Inside folders, files with an image suffix (any case) are classified and every
    other file is reported as skipped. Hidden files and folders are ignored. A symbolic link that leads to no
    file (a loop such as ``a.jpg -> b.jpg -> a.jpg``, or a target that is gone) counts as a file: it is listed
    like one, so that it gets an error row instead of vanishing. Links to folders are not followed.
    """
    images: list[Path] = []
    skipped: list[Path] = []
    missing: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path, bucket: list[Path]) -> None:
        if path not in seen:
            seen.add(path)
            bucket.append(path)

    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if any(part.startswith(".") for part in relative.parts) or not _is_file_or_broken_link(child):
                    continue
                add(child, images if child.suffix.lower() in IMAGE_SUFFIXES else skipped)
        elif path.exists() or path.is_symlink():
            add(path, images)
        else:
            missing.append(path)
    return InputFiles(tuple(images), tuple(skipped), tuple(missing))
