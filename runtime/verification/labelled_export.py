"""Verified cells as a labelled folder: ``DIR/<class>/<slide>/<image>``, for the model to learn from.

The layout is the one both training commands read: ``hema-train onboard --labelled DIR`` (class folders that
must be classes of the model) and ``hema-train fewshot --data DIR`` (ImageFolder: the first-level folder is the
class, images are found beneath it). So by default only the model's classes are written; ``include_extra``
writes the lab's extra classes too (``blast``, ``smudge cell``, ...), which ``fewshot`` can learn as new classes
but ``onboard`` refuses. Every judged cell is copied (its verified class, :mod:`~hema.runtime.verification.tally`);
a cell whose image has gone cannot be and is counted. Images are copied byte for byte, so hema's content-hash
train/test split (:func:`hema.train.data.folders.split_of`) puts each where it was.

``DIR/verified_cells.csv`` says where each copy came from (source path, slide, model class, who, when); the
training commands read folders only and ignore it. The folder is built under a temporary name beside ``DIR`` and
renamed into place when complete; an existing ``DIR`` that is not empty is refused, never added to.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from hema.runtime.reports.atomic_files import fsync_folder
from hema.runtime.reports.tables import spreadsheet_safe
from hema.runtime.verification.run_table import Cell, RunTable
from hema.runtime.verification.settings import ReviewError, check_class_name
from hema.runtime.verification.tally import Verdict

__all__ = ["MANIFEST_NAME", "LabelledExport", "export_labelled"]

MANIFEST_NAME = "verified_cells.csv"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ +()-]")


@dataclass(frozen=True)
class LabelledExport:
    """What :func:`export_labelled` wrote and left out.

    Attributes:
        folder: The labelled folder.
        written: Images written per class.
        missing: Judged cells whose image has gone (not written).
        extra_left_out: Judged cells of the lab's extra classes, left out per class (without ``include_extra``).
    """

    folder: Path
    written: dict[str, int]
    missing: int
    extra_left_out: dict[str, int]


def _folder_name(text: str) -> str:
    """``text`` as one safe folder name: unusual characters become ``_``, no leading dot, never empty."""
    name = _UNSAFE.sub("_", text).lstrip(". ")
    return name[:100] or "_"


def _target(root: Path, label: str, slide: str, name: str, taken: set[Path]) -> Path:
    """A free path ``root/<label>/<slide parts>/<name>`` (``-2``, ``-3`` ... before the suffix if taken)."""
    parts = [_folder_name(part) for part in slide.split("/") if part not in ("", ".", "..")] or ["slide"]
    folder = root.joinpath(label, *parts)
    stem, suffix = PurePath(name).stem or "cell", PurePath(name).suffix
    path, number = folder / f"{_folder_name(stem)}{suffix}", 1
    while path in taken:
        number += 1
        path = folder / f"{_folder_name(stem)}-{number}{suffix}"
    taken.add(path)
    return path


def _prepare(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ReviewError(f"--export-labelled {folder} exists and is not a folder")
    if folder.is_dir():
        if any(folder.iterdir()):
            raise ReviewError(f"--export-labelled {folder} is not empty: give a new folder (nothing is added to one)")
        folder.rmdir()


def export_labelled(
    table: RunTable, judged: dict[int, Verdict], folder: Path, *, include_extra: bool = False
) -> LabelledExport:
    """Copy every judged cell's image into ``folder/<verified class>/<slide>/`` (see the module docstring).

    Args:
        table: The run.
        judged: The verdict of each judged cell (:func:`~hema.runtime.verification.tally.verdicts`).
        folder: The labelled folder to make.
        include_extra: Also write cells of classes the model does not have.

    Raises:
        ReviewError: If ``folder`` exists and is not an empty folder, or no judged cell can be written.
        OSError: If copying fails (the temporary folder is removed).
    """
    _prepare(folder)
    chosen: list[tuple[Cell, Verdict]] = []
    missing, left_out = 0, Counter[str]()
    for cell in table.cells:
        verdict = judged.get(cell.id)
        if verdict is None:
            continue
        if verdict.label not in table.class_names and not include_extra:
            left_out[verdict.label] += 1
        elif cell.image is None:
            missing += 1
        else:
            chosen.append((cell, verdict))
    if not chosen:
        raise ReviewError(
            f"no verified cell to write to {folder}: verify cells first (a slide marked verified, or cells put "
            f"into a class){f'; {missing} verified cells have no image any more' if missing else ''}"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        taken: set[Path] = set()
        rows: list[Sequence[str]] = []
        for cell, verdict in chosen:
            target = _target(building, check_class_name(verdict.label), cell.slide, cell.name, taken)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cell.image, target)
            source = [cell.path, cell.slide, cell.label, verdict.by, verdict.at]
            rows.append([target.relative_to(building).as_posix(), verdict.label, *source])
        with (building / MANIFEST_NAME).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["file", "class", "source", "slide", "model_label", "verified_by", "verified_at"])
            writer.writerows([[spreadsheet_safe(value) for value in row] for row in rows])
        os.rename(building, folder)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    fsync_folder(folder.parent)
    written = Counter(verdict.label for _, verdict in chosen)
    return LabelledExport(folder, dict(sorted(written.items())), missing, dict(sorted(left_out.items())))
