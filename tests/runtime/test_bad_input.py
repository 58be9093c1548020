"""Unreadable files among real cells: every file gets exactly one row, none is lost, whatever the batch size.

``hema-infer`` runs in a subprocess (the console entry point as a lab runs it), so that no Pillow setting made
by another test in this process (``ImageFile.LOAD_TRUNCATED_IMAGES``) can change what counts as unreadable.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import read_rows, run_infer

from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

GOOD = ("a_cell_1.jpg", "a_cell_2.jpg", "c_cell_3.jpg", "f_cell_4.JPG")
BAD = ("b_empty.jpg", "b_text.jpg", "d_random.png", "e_truncated.jpg")
ORDER = ("a_cell_1.jpg", "a_cell_2.jpg", "b_empty.jpg", "b_text.jpg", "c_cell_3.jpg", "d_random.png",
         "e_truncated.jpg", "f_cell_4.JPG")  # fmt: skip


@pytest.fixture(scope="module")
def slide(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One slide folder: four real cells of different classes and four unreadable image files."""
    folder = tmp_path_factory.mktemp("bad_input") / "slide_17"
    folder.mkdir()
    classes = ("basophil", "lymphocyte", "neutrophil", "platelet")
    sources = [sorted((pbc_dir / name).glob("*.jpg"))[0] for name in classes]
    for name, source in zip(GOOD, sources):
        (folder / name).symlink_to(source)
    real = sources[0].read_bytes()
    (folder / "b_empty.jpg").write_bytes(b"")
    (folder / "b_text.jpg").write_text("this is not a JPEG, just a note saved with the wrong name\n")
    (folder / "d_random.png").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "e_truncated.jpg").write_bytes(real[: len(real) // 3])
    (folder / "notes.txt").write_text("slide 17, stained 2024-03-02\n")
    return folder


@pytest.fixture(scope="module")
def runs(slide: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[subprocess.CompletedProcess, Path]]:
    """``hema-infer classify`` at batch sizes 32 (one batch), 2 (a batch of bad files only) and 1."""
    results = {}
    for batch_size in (32, 2, 1):
        out = tmp_path_factory.mktemp(f"report_b{batch_size}")
        results[batch_size] = (run_infer("classify", slide, "--out", out, "--batch-size", batch_size), out)
    return results


@pytest.mark.parametrize("batch_size", [32, 2, 1])
def test_every_image_file_has_exactly_one_row(runs, slide: Path, batch_size: int) -> None:
    process, out = runs[batch_size]
    rows = read_rows(out)
    counts = Counter(Path(row["path"]).name for row in rows)
    assert counts == Counter(ORDER), process.stderr
    assert "notes.txt" not in counts


@pytest.mark.parametrize("batch_size", [32, 2, 1])
def test_good_files_ok_bad_files_error_with_reason(runs, batch_size: int) -> None:
    process, out = runs[batch_size]
    by_name = {Path(row["path"]).name: row for row in read_rows(out)}
    for name in GOOD:
        row = by_name[name]
        assert row["status"] == "ok", row
        assert row["error"] == "" and row["label"] and 0.0 < float(row["confidence"]) <= 1.0
    for name in BAD:
        row = by_name[name]
        assert row["status"] == "error", row
        assert row["error"].strip(), f"{name}: error row without a reason"
        assert row["label"] == "" and row["confidence"] == ""
        assert name in process.stderr, f"{name} is not reported on stderr"
    assert "empty" in by_name["b_empty.jpg"]["error"]
    assert "truncated" in by_name["e_truncated.jpg"]["error"].lower()


@pytest.mark.parametrize("batch_size", [32, 2, 1])
def test_exit_code_is_1_when_some_files_cannot_be_read(runs, batch_size: int) -> None:
    process, _ = runs[batch_size]
    assert process.returncode == 1, process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.parametrize("batch_size", [32, 2, 1])
def test_summary_counts(runs, batch_size: int) -> None:
    _, out = runs[batch_size]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == len(ORDER)
    assert summary["classified"] == len(GOOD)
    assert summary["errors"] == len(BAD)
    assert summary["skipped_non_images"] == 1
    assert sum(entry["count"] for entry in summary["classes"].values()) == len(GOOD)
    assert summary["slides"]["slide_17"]["errors"] == len(BAD)
    assert summary["slides"]["slide_17"]["classified"] == len(GOOD)


def test_row_order_is_stable_and_independent_of_batch_size(runs) -> None:
    orders = {size: [Path(row["path"]).name for row in read_rows(out)] for size, (_, out) in runs.items()}
    assert orders[32] == list(ORDER)
    assert orders[2] == orders[32] and orders[1] == orders[32]


def test_batching_does_not_change_results(runs, slide: Path) -> None:
    tables = {size: read_rows(out) for size, (_, out) in runs.items()}
    reference = tables[32]
    names = [column for column in reference[0] if column.startswith("p_")]
    for size in (2, 1):
        for expected, row in zip(reference, tables[size]):
            assert (row["status"], row["label"]) == (expected["status"], expected["label"]), size
            if row["status"] == "ok":
                got = np.array([float(row[name]) for name in names])
                want = np.array([float(expected[name]) for name in names])
                np.testing.assert_allclose(got, want, atol=1e-5)


def test_good_cells_are_classified_as_the_engine_classifies_them_alone(runs, slide: Path) -> None:
    """The rows of the good cells equal what the model says for each cell on its own (no row shift)."""
    from hema.runtime.preprocessing import load_cell_image

    engine = OnnxRuntimeEngine(DEFAULT_MODEL_PATH)
    rows = {Path(row["path"]).name: row for row in read_rows(runs[2][1])}
    for name in GOOD:
        image = load_cell_image(slide / name, engine.card.input)
        probabilities = engine.run(image[None])["probabilities"][0]
        got = np.array([float(rows[name][f"p_{cls}"]) for cls in engine.card.class_names])
        np.testing.assert_allclose(got, probabilities, atol=1e-5)
        assert rows[name]["label"] == engine.card.class_names[int(np.argmax(probabilities))]
