"""The run a technologist verifies: ``RUN_DIR/cells.csv`` as ``hema-infer classify`` or ``watch`` wrote it.

The file is checked before anything is served: its header must be the columns this version writes
(:data:`~hema.runtime.reports.tables.CELLS_COLUMNS`, then ``p_<class>`` per class of the model; a ``cells.csv``
of an earlier version, without the ``review`` column, is refused with a message saying so), every row must have
every column, a known status, and, when classified, one of the model's classes.

Text values are read back as :func:`~hema.runtime.reports.tables.spreadsheet_safe` wrote them: one leading ``'``
is dropped. A cell's ``path`` is the image as it was given to ``classify``; a relative one is looked up from the
current folder, then from the folder holding ``RUN_DIR`` (where ``classify ... --out RUN_DIR`` usually ran). An
image that is no longer there is kept as a cell without a file (:attr:`Cell.image` is ``None``): the page shows it
as missing, with the thumbnail ``report.html`` saved of it when there is one.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path, PurePath

from hema.runtime.reports.run_output import CELLS_NAME, PARTIAL_SUFFIX
from hema.runtime.reports.tables import CELLS_COLUMNS
from hema.runtime.verification.settings import ReviewError

__all__ = ["Cell", "RunTable", "load_run", "unquote"]

_STATUSES = ("ok", "error")


@dataclass(frozen=True)
class Cell:
    """One row of ``cells.csv``.

    Attributes:
        id: Row number (0 for the first row after the header): how the page and the server name the cell.
        path: The image's path as ``cells.csv`` names it: the cell's identity in the decision journal.
        slide: The slide the cell belongs to.
        label: The model's class (``""`` on an error row).
        confidence: The model's top-class probability (``None`` on an error row).
        status: ``"ok"`` (classified) or ``"error"`` (the file could not be read).
        review: Why the model flagged the cell for review (``""``: not flagged).
        error: Why the file could not be read (error rows).
        image: The image file, or ``None`` when it is no longer there.
        row: The row's fields exactly as written, for ``verified.csv``.
    """

    id: int
    path: str
    slide: str
    label: str
    confidence: float | None
    status: str
    review: str
    error: str
    image: Path | None
    row: tuple[str, ...]

    @property
    def classified(self) -> bool:
        """Whether the model classified the cell (an ``ok`` row): only such cells are verified."""
        return self.status == "ok"

    @property
    def name(self) -> str:
        """The image's file name, for captions."""
        return PurePath(self.path).name or self.path


@dataclass(frozen=True)
class RunTable:
    """A run's cells, its model's classes and its slides.

    Attributes:
        run_dir: The run folder.
        header: The columns of ``cells.csv``, as written.
        class_names: The model's classes, in output order (from the ``p_<class>`` columns).
        cells: Every row, in file order (``cells[i].id == i``).
        slides: The slides, sorted by name.
    """

    run_dir: Path
    header: tuple[str, ...]
    class_names: tuple[str, ...]
    cells: tuple[Cell, ...]
    slides: tuple[str, ...]

    def cells_of(self, slide: str) -> list[Cell]:
        """The cells of ``slide``, in file order."""
        return [cell for cell in self.cells if cell.slide == slide]

    @property
    def missing(self) -> list[Cell]:
        """Classified cells whose image is no longer there."""
        return [cell for cell in self.cells if cell.classified and cell.image is None]


def unquote(value: str) -> str:
    """A text value of ``cells.csv`` as it was before :func:`~hema.runtime.reports.tables.spreadsheet_safe`."""
    return value[1:] if value.startswith("'") else value


def _locate(path: str, run_dir: Path) -> Path | None:
    """The image file ``path`` names (relative: from the current folder, then from ``run_dir``'s parent)."""
    given = Path(path)
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, run_dir.absolute().parent / given]
    for candidate in candidates:
        try:
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):  # a name too long, or with a NUL: no such file
            return None
    return None


def _class_names(header: list[str], where: Path) -> tuple[str, ...]:
    fixed, rest = tuple(header[: len(CELLS_COLUMNS)]), header[len(CELLS_COLUMNS) :]
    if fixed != CELLS_COLUMNS or len(rest) < 2 or not all(name.startswith("p_") and len(name) > 2 for name in rest):
        older = "review" not in header and tuple(header[:6]) == tuple(c for c in CELLS_COLUMNS if c != "review")
        raise ReviewError(
            f"{where} has the columns {', '.join(header[:10]) or '(none)'}{', ...' if len(header) > 10 else ''}, "
            f"not those this hema-infer writes ({', '.join(CELLS_COLUMNS)}, p_<class>...): it was written by "
            f"{'an earlier version of hema-infer (before review flags)' if older else 'another program or version'}"
            ". Classify the images again with this version (hema-infer classify IMAGES --out RUN_DIR)"
        )
    return tuple(name[2:] for name in rest)


def _cell(number: int, row: list[str], header: list[str], classes: tuple[str, ...], run_dir: Path) -> Cell:
    where = f"{run_dir / CELLS_NAME} row {number + 2}"  # +1 for the header, +1 to count from 1
    if len(row) != len(header):
        raise ReviewError(f"{where} has {len(row)} fields, not {len(header)}: the file is damaged")
    values = dict(zip(CELLS_COLUMNS, row))
    status, label, path = unquote(values["status"]), unquote(values["label"]), unquote(values["path"])
    if status not in _STATUSES or not path:
        raise ReviewError(f"{where}: status {status!r} or empty path; this is not a row hema-infer wrote")
    confidence = None
    if status == "ok":
        try:
            confidence = float(values["confidence"])
        except ValueError:
            confidence = math.nan
        if label not in classes or not 0.0 <= confidence <= 1.0:
            raise ReviewError(f"{where}: label {label!r} or confidence {values['confidence']!r} is not the model's")
    return Cell(
        id=number,
        path=path,
        slide=unquote(values["slide"]),
        label=label,
        confidence=confidence,
        status=status,
        review=unquote(values["review"]),
        error=unquote(values["error"]),
        image=_locate(path, run_dir),
        row=tuple(row),
    )


def load_run(run_dir: Path) -> RunTable:
    """Read and check ``RUN_DIR/cells.csv``.

    Raises:
        ReviewError: If ``run_dir`` is no run folder, or its ``cells.csv`` is missing, unreadable, of another
            version, damaged, empty, or names one image twice.
    """
    path = run_dir / CELLS_NAME
    if not run_dir.is_dir():
        raise ReviewError(f"{run_dir} is not a folder: give the --out folder of hema-infer classify or watch")
    if not path.is_file():
        if (run_dir / f"{CELLS_NAME}{PARTIAL_SUFFIX}").is_file():
            hint = f"its classify run was stopped before the end ({CELLS_NAME}{PARTIAL_SUFFIX}); run it again"
        else:
            hint = "it is not the --out folder of hema-infer classify or watch (hema-infer classify IMAGES --out DIR)"
        raise ReviewError(f"{run_dir} has no {CELLS_NAME}: {hint}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ReviewError(f"cannot read {path}: {error}") from error
    header = rows[0] if rows else []
    classes = _class_names(header, path)
    cells = tuple(_cell(number, row, header, classes, run_dir) for number, row in enumerate(rows[1:]))
    if not cells:
        raise ReviewError(f"{path} lists no cells: there is nothing to verify")
    first: dict[str, int] = {}
    for cell in cells:
        if (earlier := first.setdefault(cell.path, cell.id)) != cell.id:
            raise ReviewError(f"{path} lists {cell.path!r} twice (rows {earlier + 2} and {cell.id + 2})")
    return RunTable(run_dir, tuple(header), classes, cells, tuple(sorted({cell.slide for cell in cells})))
