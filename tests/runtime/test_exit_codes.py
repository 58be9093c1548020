"""``hema-infer classify`` exit codes: 0 every file classified, 1 some could not be read, 2 usage or model error.

Exit code 1 is held on a corpus of bad files in ``test_bad_input_corpus.py``; here the other two. ``hema-infer``
runs in a subprocess, as a lab runs it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import read_rows, run_infer
from PIL import Image


def test_0_when_every_file_is_classified_unusual_kinds_included(pbc_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "slide_7"
    folder.mkdir()
    cell = sorted((pbc_dir / "eosinophil").glob("*.jpg"))[0]
    shutil.copyfile(cell, folder / "a_cell.jpg")
    with Image.open(cell) as image:
        rgb = image.convert("RGB")
    rgb.convert("RGBA").save(folder / "b_rgba.png")
    rgb.convert("P").save(folder / "c_palette.png")
    Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257).save(folder / "d_grey16.png")
    process = run_infer("classify", folder, "--out", tmp_path / "report", "--no-html")
    assert process.returncode == 0, process.stderr
    assert [row["status"] for row in read_rows(tmp_path / "report")] == ["ok"] * 4


@pytest.mark.parametrize("case", ["empty folder", "no image files", "no such folder", "bad model"])
def test_2_for_usage_and_model_errors(pbc_dir: Path, tmp_path: Path, case: str) -> None:
    folder = tmp_path / "slide"
    out = tmp_path / "report"
    args: list[str | Path] = ["classify", folder, "--out", out, "--no-html"]
    if case != "no such folder":
        folder.mkdir()
    if case == "no image files":
        (folder / "notes.txt").write_text("no cells here\n")
    if case == "bad model":
        shutil.copyfile(sorted((pbc_dir / "basophil").glob("*.jpg"))[0], folder / "a_cell.jpg")
        (tmp_path / "model.onnx").write_text("not a model\n")
        args += ["--model", tmp_path / "model.onnx", "--unverified"]
    process = run_infer(*args)
    assert process.returncode == 2, process.stderr
    assert "Traceback" not in process.stderr and "error:" in process.stderr
    assert not (out / "cells.csv").exists()
