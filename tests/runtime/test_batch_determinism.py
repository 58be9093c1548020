"""The same cells give byte-identical reports whatever the batch size, on each engine (issue 5 item 6).

A lab re-running a slide with other settings must get the same ``cells.csv``: batch size changes how many
cells share an engine call, never a probability. ``hema-infer`` runs in this process (``CliRunner``): the cells
are all readable, so no process-wide Pillow setting can matter, and each run costs the model load alone.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hema.runtime.cli import app

BATCH_SIZES = (1, 7, 32)
PER_CLASS = 5


@pytest.fixture(scope="module")
def cells(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real cells, 5 of every class, in one slide folder (40 = 5 x 7 + 5 = 32 + 8: partial last batches)."""
    folder = tmp_path_factory.mktemp("determinism") / "slide_3"
    folder.mkdir()
    for class_dir in sorted(path for path in pbc_dir.iterdir() if path.is_dir()):
        for path in sorted(class_dir.glob("*.jpg"))[:PER_CLASS]:
            (folder / f"{class_dir.name}_{path.name}").symlink_to(path)
    return folder


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_reports_are_byte_identical_across_batch_sizes(cells: Path, tmp_path: Path, backend: str) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (an optional engine)")
    reports = {}
    for batch_size in BATCH_SIZES:
        out = tmp_path / f"b{batch_size}"
        args = ["classify", str(cells), "--out", str(out), "--backend", backend, "--batch-size", str(batch_size)]
        result = CliRunner().invoke(app, [*args, "--no-html"])
        assert result.exit_code == 0, result.output
        assert f"on {backend}" in result.output, result.output  # the engine asked for, not a fallback
        reports[batch_size] = ((out / "cells.csv").read_bytes(), (out / "summary.json").read_bytes())
    assert reports[1][0].count(b"\n") == 8 * PER_CLASS + 1
    for batch_size in BATCH_SIZES[1:]:
        assert reports[batch_size][0] == reports[1][0], f"cells.csv differs between batch size 1 and {batch_size}"
        assert reports[batch_size][1] == reports[1][1], f"summary.json differs between batch size 1 and {batch_size}"
