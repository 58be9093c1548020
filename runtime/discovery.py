"""Find the cell images a user pointed at (files as given, folders searched recursively) and their slides.

A slide is identified by its folder's path relative to the input folder it was found in (``patientA/slide_01``
under ``exports/``), so that two patients' ``slide_01`` stay two slides. :func:`slide_name` is the one
definition of that identity: ``hema-infer classify`` and ``hema-infer watch`` both name slides with it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
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
        unreadable: What cannot be read at all, with the reason for its error row: folders that cannot be
            listed, named pipes, sockets, devices. None of them is opened.
        rows: Every path that gets a row in the reports, in order: ``images`` and ``unreadable`` interleaved as
            they were met.
        slides: The slide of every path in ``rows`` (:func:`slide_name`).
        clashes: One message per slide name that would stand for two folders, or folder that would be two
            slides (``hema-infer classify patientA/slide_01 patientB/slide_01``: both are ``slide_01``). A run
            with clashes must not go on: its differentials would mix two slides or split one.
    """

    images: tuple[Path, ...]
    skipped: tuple[Path, ...]
    missing: tuple[Path, ...]
    slides: dict[Path, str] = field(default_factory=dict)
    clashes: tuple[str, ...] = ()
    unreadable: dict[Path, str] = field(default_factory=dict)
    rows: tuple[Path, ...] = ()


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


_FOLDER = "folder"
_FILE = "file"
_LINKED_FOLDER = "link to a folder"
_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "named pipe (FIFO)"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
)


def _kind(mode: int) -> str:
    """``_FOLDER``, ``_FILE``, or the error row's reason for a special file (which is never opened)."""
    if stat.S_ISDIR(mode):
        return _FOLDER
    for is_kind, kind in _SPECIAL_KINDS:
        if is_kind(mode):
            return f"cannot read image: {kind}, not a file"
    return _FILE


def _entry_kind(path: Path) -> str:
    """What a path met while walking a folder is: :func:`_kind`, or ``_LINKED_FOLDER`` (not followed).

    A symbolic link is judged by its target; a link that leads nowhere (a loop, a target that is gone or that
    may not be looked at) is a file, so that it gets an error row from decoding instead of vanishing.
    """
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                return _LINKED_FOLDER
    except OSError:
        return _FILE
    return _kind(mode)


def _named_kind(path: Path) -> str | None:
    """What a path the user named is (links followed): :func:`_kind`, or ``None`` if nothing is there.

    A link that leads nowhere, and a path that may not be looked at (its folder is not searchable), are files:
    their error row says why.
    """
    try:
        return _kind(os.stat(path).st_mode)
    except FileNotFoundError:
        return _FILE if os.path.islink(path) else None
    except OSError:
        return _FILE


def _folder_reason(error: OSError) -> str:
    """The error row's reason for a folder that cannot be listed (``cannot read folder: permission denied``)."""
    detail = error.strerror or type(error).__name__
    return f"cannot read folder: {detail[:1].lower()}{detail[1:]}"


def _listing(folder: Path) -> list[Path]:
    """The visible entries of ``folder``, sorted by name (raises ``OSError`` if it cannot be listed)."""
    with os.scandir(folder) as entries:
        return sorted((folder / entry.name for entry in entries if not entry.name.startswith(".")), reverse=True)


def _walk(root: Path) -> Iterator[tuple[Path, str, Path]]:
    """Every visible path below ``root`` that gets a row or is skipped, depth first in name order (the order of
    ``sorted(root.rglob("*"))``).

    Yields ``(path, kind, folder)``: ``kind`` is ``_FILE`` or the reason the path cannot be read (a folder that
    cannot be listed, a special file), ``folder`` the folder whose slide the row belongs to (the unreadable
    folder itself, else the one the file lies in). Hidden entries and links to folders are left out. An
    explicit stack, not recursion, so that no nesting depth can exhaust Python's stack.
    """
    stack: list[Path] = [root]
    while stack:
        path = stack.pop()
        kind = _FOLDER if path == root else _entry_kind(path)
        if kind == _FOLDER:
            try:
                stack.extend(_listing(path))
            except OSError as error:
                yield path, _folder_reason(error), path
        elif kind != _LINKED_FOLDER:
            yield path, kind, path.parent


def find_cell_images(paths: list[Path] | tuple[Path, ...]) -> InputFiles:
    """Expand files and folders into the list of images to classify, and name the slide of each.

    A file named explicitly is always classified, whatever its suffix, so that a bad file gets an error row
    rather than disappearing. Inside folders, files with an image suffix (any case) are classified and every
    other file is reported as skipped. Hidden files and folders are ignored. A symbolic link that leads to no
    file (a loop such as ``a.jpg -> b.jpg -> a.jpg``, or a target that is gone) counts as a file: it is listed
    like one, so that it gets an error row instead of vanishing. Links to folders are not followed. A file
    reached twice (named, and inside a folder named) is listed once, under the first path that reached it.

    What cannot be read at all is listed in :attr:`InputFiles.unreadable` with the reason, whatever its suffix,
    and is never opened: a folder that cannot be listed (its permissions), a named pipe (opening one blocks until
    someone writes to it), a socket or a device.
    """
    images: list[Path] = []
    skipped: list[Path] = []
    missing: list[Path] = []
    unreadable: dict[Path, str] = {}
    rows: list[Path] = []
    slides: dict[Path, str] = {}
    register = _SlideRegister()
    seen: set[Path] = set()

    def add(path: Path, kind: str, folder: Path, root: Path | None) -> None:
        if path in seen:
            return
        seen.add(path)
        if kind == _FILE and root is not None and path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(path)
            return
        slides[path] = register.name(folder, root)
        rows.append(path)
        if kind == _FILE:
            images.append(path)
        else:
            unreadable[path] = kind

    for path in paths:
        kind = _named_kind(path)
        if kind is None:
            missing.append(path)
        elif kind == _FOLDER:
            for child, child_kind, folder in _walk(path):
                add(child, child_kind, folder, path)
        else:
            add(path, kind, path.parent, None)
    return InputFiles(
        tuple(images), tuple(skipped), tuple(missing), slides, tuple(register.clashes), unreadable, tuple(rows)
    )
