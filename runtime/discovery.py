"""Find the cell images a user pointed at (files as given, folders searched recursively) and their slides.

A slide is identified by its folder's path relative to the input folder it was found in (``patientA/slide_01``
under ``exports/``), so that two patients' ``slide_01`` stay two slides. :func:`slide_name` is the one
definition of that identity: ``hema-infer classify`` and ``hema-infer watch`` both name slides with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["IMAGE_SUFFIXES", "InputFiles", "find_cell_images", "slide_name"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})


@dataclass(frozen=True)
class InputFiles:
    """The result of expanding the user's paths.

    Attributes:
        images: Files to classify, in a stable order (each folder sorted, in the order the paths were given).
        skipped: Files inside folders that do not have an image suffix (``manifest.csv``, notes, ...).
        missing: Paths the user named that do not exist.
        slides: The slide of every file in ``images`` (:func:`slide_name`).
        clashes: One message per slide name that would stand for two folders, or folder that would be two
            slides (``hema-infer classify patientA/slide_01 patientB/slide_01``: both are ``slide_01``). A run
            with clashes must not go on: its differentials would mix two slides or split one.
    """

    images: tuple[Path, ...]
    skipped: tuple[Path, ...]
    missing: tuple[Path, ...]
    slides: dict[Path, str] = field(default_factory=dict)
    clashes: tuple[str, ...] = ()


def slide_name(folder: Path, root: Path | None = None) -> str:
    """The slide that the cells lying in ``folder`` belong to.

    A folder below the input folder ``root`` is named by its path relative to ``root``, ``/``-separated
    (``patientA/slide_01``), so that slides of the same name under different patients stay apart. Cells lying
    in ``root`` itself, and files named directly (``root`` is ``None``), belong to the slide named like their
    folder (``hema-infer classify slide_07/`` or ``slide_07/cell_1.jpg``: ``slide_07``), the folder a user
    points at being one slide. ``.`` and ``..`` are named by the folder they stand for.

    Args:
        folder: The folder a cell file lies in.
        root: The input folder the file was found in; ``None`` for a file named directly.
    """
    if root is not None and folder != root:
        return folder.relative_to(root).as_posix()
    return folder.name if folder.name not in ("", "..") else Path(os.path.abspath(folder)).name or os.sep


class _SlideRegister:
    """Remembers which folder each slide name stands for, to find names shared by two folders."""

    def __init__(self) -> None:
        self._folder_of: dict[str, tuple[str, Path]] = {}
        self._name_of: dict[str, str] = {}
        self.clashes: list[str] = []

    def name(self, folder: Path, root: Path | None) -> str:
        """:func:`slide_name` of ``folder``, noting a clash with an earlier folder or name."""
        name = slide_name(folder, root)
        real = os.path.realpath(folder)
        known_real, known_folder = self._folder_of.setdefault(name, (real, folder))
        if known_real != real:
            self.clashes.append(
                f"slide {name!r} would hold the cells of two folders, {known_folder} and {folder}: classify them "
                "in separate runs, or give the folder above both"
            )
        known_name = self._name_of.setdefault(real, name)
        if known_name != name:
            self.clashes.append(
                f"folder {folder} would be two slides, {known_name!r} and {name!r}: name it once, or only the "
                "folder above it"
            )
        return name


def _is_file_or_broken_link(path: Path) -> bool:
    """A file, or a symbolic link that resolves to nothing (``exists`` is false for a loop, never an error)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def find_cell_images(paths: list[Path] | tuple[Path, ...]) -> InputFiles:
    """Expand files and folders into the list of images to classify, and name the slide of each.

    A file named explicitly is always classified, whatever its suffix, so that a bad file gets an error row
    rather than disappearing. Inside folders, files with an image suffix (any case) are classified and every
    other file is reported as skipped. Hidden files and folders are ignored. A symbolic link that leads to no
    file (a loop such as ``a.jpg -> b.jpg -> a.jpg``, or a target that is gone) counts as a file: it is listed
    like one, so that it gets an error row instead of vanishing. Links to folders are not followed. A file
    reached twice (named, and inside a folder named) is listed once, under the first path that reached it.
    """
    images: list[Path] = []
    skipped: list[Path] = []
    missing: list[Path] = []
    slides: dict[Path, str] = {}
    register = _SlideRegister()
    seen: set[Path] = set()

    def add(path: Path, root: Path | None) -> None:
        if path in seen:
            return
        seen.add(path)
        if root is None or path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
            slides[path] = register.name(path.parent, root)
        else:
            skipped.append(path)

    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if any(part.startswith(".") for part in relative.parts) or not _is_file_or_broken_link(child):
                    continue
                add(child, path)
        elif path.exists() or path.is_symlink():
            add(path, None)
        else:
            missing.append(path)
    return InputFiles(tuple(images), tuple(skipped), tuple(missing), slides, tuple(register.clashes))
