"""A slide is its folder's path relative to the input folder given, so two patients' ``slide_01`` never merge.

Issue 13 item 2: ``patientA/slide_01`` and ``patientB/slide_01`` were one slide in ``summary.json`` and
``report.html``, because a slide was named by its folder's name alone. Real PBC cells are copied into the
folders the tests build; ``hema-infer classify`` runs in-process.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import pytest
from helpers import invoke, read_rows

from hema.runtime.cli import app
from hema.runtime.discovery import find_cell_images, slide_name

CELLS = {"patientA/slide_01": ("basophil", "eosinophil"), "patientB/slide_01": ("lymphocyte",)}


def _cells(pbc_dir: Path, folder: Path, classes: tuple[str, ...]) -> list[Path]:
    """Copies of the first real cell of each class into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for number, name in enumerate(classes):
        copies.append(Path(shutil.copyfile(sorted((pbc_dir / name).glob("*.jpg"))[0], folder / f"cell_{number}.jpg")))
    return copies


@pytest.fixture
def exports(pbc_dir: Path, tmp_path: Path) -> Path:
    """An analyser's export folder with one ``slide_01`` for each of two patients."""
    root = tmp_path / "exports"
    for slide, classes in CELLS.items():
        _cells(pbc_dir, root / slide, classes)
    return root


def test_two_patients_slides_of_the_same_name_stay_apart_in_every_report(exports: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke(app, "classify", exports, "--out", out)
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert {row["slide"] for row in rows} == set(CELLS)
    for row in rows:
        assert row["slide"] == Path(row["path"]).parent.relative_to(exports).as_posix()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["slides"]) == set(CELLS)
    for slide, classes in CELLS.items():
        assert summary["slides"][slide]["classified"] == len(classes)
    page = (out / "report.html").read_text()
    for slide in CELLS:
        assert f'<span class="kicker">Slide</span>{html.escape(slide)}</h2>' in page
    assert "cells classified on 2 slide(s)" in result.output


def test_files_in_the_folder_given_belong_to_the_slide_named_like_that_folder(pbc_dir: Path, tmp_path: Path) -> None:
    slide = tmp_path / "slide_07"
    top = _cells(pbc_dir, slide, ("monocyte",))
    deeper = _cells(pbc_dir, slide / "second_field", ("neutrophil",))
    found = find_cell_images([slide])
    assert [found.slides[path] for path in found.images] == ["slide_07", "second_field"]
    assert found.images == (*top, *deeper)


def test_a_file_named_directly_belongs_to_the_slide_named_like_its_folder(pbc_dir: Path, tmp_path: Path) -> None:
    (cell,) = _cells(pbc_dir, tmp_path / "patientC" / "slide_09", ("platelet",))
    found = find_cell_images([cell])
    assert found.slides == {cell: "slide_09"}
    out = tmp_path / "report"
    assert invoke(app, "classify", cell, "--out", out, "--no-html").exit_code == 0
    assert [row["slide"] for row in read_rows(out)] == ["slide_09"]


def test_the_current_folder_given_as_dot_is_named_by_its_real_name(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "slide_11").mkdir()
    monkeypatch.chdir(tmp_path / "slide_11")
    assert slide_name(Path(".")) == slide_name(Path("..") / "slide_11") == "slide_11"
    assert slide_name(Path("deeper/still"), Path("deeper")) == "still"
    assert slide_name(Path("deeper"), Path("deeper")) == "deeper"


@pytest.mark.parametrize("given", ["two slide folders", "two cells"])
def test_two_folders_that_would_share_a_slide_name_are_refused(exports: Path, tmp_path: Path, given: str) -> None:
    """Given as two inputs, both patients' folders would be slide ``slide_01``: refused, nothing classified."""
    folders = [exports / slide for slide in CELLS]
    paths = folders if given == "two slide folders" else [folder / "cell_0.jpg" for folder in folders]
    out = tmp_path / "report"
    result = invoke(app, "classify", *paths, "--out", out)
    assert result.exit_code == 2, result.output
    assert "slide_01" in result.output and all(str(folder) in result.output for folder in folders)
    assert not (out / "cells.csv").exists()


def test_one_folder_reached_under_two_names_is_refused(exports: Path, tmp_path: Path) -> None:
    """A cell named directly (slide ``slide_01``) and then its folder's parent (slide ``patientA/slide_01``)."""
    cell = exports / "patientA" / "slide_01" / "cell_0.jpg"
    found = find_cell_images([cell, exports])
    assert len(found.clashes) == 1 and "patientA/slide_01" in found.clashes[0]
    assert find_cell_images([exports, cell]).clashes == ()  # the cell is already listed under its folder's slide
