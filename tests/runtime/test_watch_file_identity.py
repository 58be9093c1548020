"""``hema-infer watch`` follows each file's current content: re-read on change, a moved file stays one cell.

A lab's analyser writes into slide folders slowly (a file can be read while still incomplete), renames files
from a temporary name, moves them between slides and sometimes overwrites them. Each test runs watch on real
PBC cells (``--once``: classify what is there, then return), changes the folder as an analyser would, runs it
again on the same output folder and checks that the reports show the files as they are now, one row each.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import open_engine
from hema.runtime.engines.base import Engine
from hema.runtime.watch import WatchSettings, watch_folder

ONCE = WatchSettings(batch_size=4, decode_threads=1, poll_interval=0.01, settle=0.0, empty_timeout=0.0, once=True)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return open_engine(DEFAULT_MODEL_PATH, "onnxruntime", threads=1)


@pytest.fixture(scope="module")
def basophil(pbc_dir: Path) -> Path:
    """A real basophil the default model classifies as one."""
    return pbc_dir / "basophil" / "BA_10387.jpg"


@pytest.fixture(scope="module")
def platelet(pbc_dir: Path) -> Path:
    """A real platelet the default model classifies as one."""
    return pbc_dir / "platelet" / "PLATELET_100161.jpg"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The analyser's folder, with an empty ``slide_1``."""
    (tmp_path / "analyser" / "slide_1").mkdir(parents=True)
    return tmp_path / "analyser"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Watch's output folder."""
    return tmp_path / "report"


def rows_by_path(out: Path, root: Path) -> dict[str, dict[str, str]]:
    """``cells.csv`` keyed by path relative to ``root``; fails if a file has more than one row."""
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    keyed = {Path(row["path"]).relative_to(root).as_posix(): row for row in rows}
    assert len(keyed) == len(rows), f"a file has more than one row: {[row['path'] for row in rows]}"
    return keyed


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def test_an_incomplete_file_is_read_again_once_complete(
    engine: Engine, basophil: Path, platelet: Path, root: Path, out: Path
) -> None:
    half = root / "slide_1" / "cell_1.jpg"
    half.write_bytes(basophil.read_bytes()[: basophil.stat().st_size // 2])  # read while the analyser writes it
    empty = root / "slide_1" / "cell_2.jpg"
    empty.write_bytes(b"")  # created, not yet filled
    watch_folder(engine, root, out, ONCE)
    first = rows_by_path(out, root)
    assert first["slide_1/cell_1.jpg"]["status"] == first["slide_1/cell_2.jpg"]["status"] == "error", first

    shutil.copyfile(basophil, half)  # the analyser finishes both files
    shutil.copyfile(platelet, empty)
    watch_folder(engine, root, out, ONCE)
    rows = rows_by_path(out, root)
    assert {key: (row["status"], row["label"], row["error"]) for key, row in rows.items()} == {
        "slide_1/cell_1.jpg": ("ok", "basophil", ""),
        "slide_1/cell_2.jpg": ("ok", "platelet", ""),
    }
    assert summary(out)["files"] == summary(out)["classified"] == 2 and summary(out)["errors"] == 0


def test_an_overwritten_file_gets_its_new_label_even_at_the_same_size(
    engine: Engine, basophil: Path, platelet: Path, root: Path, out: Path
) -> None:
    cell = root / "slide_1" / "cell.jpg"
    shutil.copyfile(basophil, cell)
    watch_folder(engine, root, out, ONCE)
    assert rows_by_path(out, root)["slide_1/cell.jpg"]["label"] == "basophil"

    other = platelet.read_bytes()
    assert len(other) < cell.stat().st_size
    cell.write_bytes(other + b"\0" * (cell.stat().st_size - len(other)))  # bytes after the JPEG's end are ignored
    watch_folder(engine, root, out, ONCE)
    rows = rows_by_path(out, root)
    assert list(rows) == ["slide_1/cell.jpg"] and rows["slide_1/cell.jpg"]["label"] == "platelet", rows


def test_a_moved_or_renamed_file_is_one_cell_and_a_copy_is_two(
    engine: Engine, basophil: Path, platelet: Path, root: Path, out: Path
) -> None:
    for slide in ("slide_A", "slide_B"):
        (root / slide).mkdir()
    shutil.copyfile(basophil, root / "slide_A" / "cell_1.jpg")
    shutil.copyfile(platelet, root / "slide_A" / "incoming.jpg")  # the analyser's temporary name
    shutil.copyfile(basophil, root / "slide_A" / "cell_3.jpg")
    watch_folder(engine, root, out, ONCE)
    assert len(rows_by_path(out, root)) == 3

    os.rename(root / "slide_A" / "cell_1.jpg", root / "slide_B" / "cell_1.jpg")  # moved to the right slide
    os.rename(root / "slide_A" / "incoming.jpg", root / "slide_A" / "cell_2.jpg")  # renamed in place
    shutil.copyfile(root / "slide_A" / "cell_3.jpg", root / "slide_B" / "cell_3.jpg")  # copied: both exist
    watch_folder(engine, root, out, ONCE)
    rows = rows_by_path(out, root)
    assert {key: row["label"] for key, row in rows.items()} == {
        "slide_B/cell_1.jpg": "basophil",
        "slide_A/cell_2.jpg": "platelet",
        "slide_A/cell_3.jpg": "basophil",
        "slide_B/cell_3.jpg": "basophil",
    }
    assert rows["slide_B/cell_1.jpg"]["slide"] == "slide_B"
    assert summary(out)["files"] == 4


def test_each_journal_row_records_the_identity_of_the_file_it_classified(
    engine: Engine, basophil: Path, root: Path, out: Path
) -> None:
    cell = root / "slide_1" / "cell.jpg"
    shutil.copyfile(basophil, cell)
    watch_folder(engine, root, out, ONCE)
    rows = [json.loads(line) for line in (out / "journal.jsonl").read_text(encoding="utf-8").splitlines()]
    record = next(row for row in rows if row.get("path") == "slide_1/cell.jpg")
    stat = cell.stat()
    assert (record["size"], record["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    assert record["sha256"] == hashlib.sha256(cell.read_bytes()).hexdigest()


def test_two_patients_slides_of_the_same_name_stay_two_slides(
    engine: Engine, basophil: Path, platelet: Path, root: Path, out: Path
) -> None:
    for patient, cell in (("patientA", basophil), ("patientB", platelet)):
        (root / patient / "slide_01").mkdir(parents=True)
        shutil.copyfile(cell, root / patient / "slide_01" / "cell_1.jpg")
    watch_folder(engine, root, out, ONCE)
    rows = rows_by_path(out, root)
    assert {key: row["slide"] for key, row in rows.items()} == {
        "patientA/slide_01/cell_1.jpg": "patientA/slide_01",
        "patientB/slide_01/cell_1.jpg": "patientB/slide_01",
    }
    assert set(summary(out)["slides"]) == {"patientA/slide_01", "patientB/slide_01"}
