"""``hema-infer classify`` and ``hema-infer info`` on real cells from two slides."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import invoke, read_rows
from onnx import TensorProto, helper

from hema.runtime.card import ModelCard
from hema.runtime.cli import app
from hema.runtime.default_model import DEFAULT_MODEL_PATH

SLIDES = {"slide_A": ("basophil", "eosinophil", "lymphocyte", "neutrophil", "platelet", "neutrophil"),
          "slide_B": ("monocyte", "erythroblast", "ig", "neutrophil")}  # fmt: skip


@pytest.fixture(scope="module")
def slides(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two slide folders of real PBC cells (symlinks), plus the slides' non-image clutter."""
    root = tmp_path_factory.mktemp("slides")
    for slide, classes in SLIDES.items():
        folder = root / slide
        folder.mkdir()
        used: dict[str, int] = {}
        for number, name in enumerate(classes):
            source = sorted((pbc_dir / name).glob("*.jpg"))[used.get(name, 0)]
            used[name] = used.get(name, 0) + 1
            (folder / f"cell_{number:03d}.jpg").symlink_to(source)
    return root


@pytest.fixture(scope="module")
def report(slides: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    out = tmp_path_factory.mktemp("report")
    result = invoke(app, "classify", slides / "slide_A", slides / "slide_B", "--out", out, "--batch-size", "4")
    return result, out


def test_classify_succeeds_with_exit_code_0(report) -> None:
    result, out = report
    assert result.exit_code == 0, result.output
    assert (out / "cells.csv").is_file() and (out / "summary.json").is_file()


def test_cells_csv_columns(report) -> None:
    _, out = report
    card = ModelCard.from_json(_card_json())
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header[:7] == ["path", "slide", "label", "confidence", "status", "review", "error"]
    assert header[7:] == [f"p_{name}" for name in card.class_names]


def test_one_ok_row_per_cell_with_slide_from_parent_folder(report, slides: Path) -> None:
    _, out = report
    rows = read_rows(out)
    assert len(rows) == sum(len(classes) for classes in SLIDES.values())
    for row in rows:
        assert row["status"] == "ok" and row["error"] == ""
        assert row["slide"] == Path(row["path"]).parent.name
        assert row["slide"] in SLIDES
    assert sorted(row["slide"] for row in rows).count("slide_B") == len(SLIDES["slide_B"])


def test_probabilities_sum_to_one_and_label_is_the_argmax(report) -> None:
    _, out = report
    rows = read_rows(out)
    columns = [name for name in rows[0] if name.startswith("p_")]
    for row in rows:
        p = np.array([float(row[column]) for column in columns])
        assert np.all(p >= 0.0)
        assert abs(p.sum() - 1.0) < 1e-4
        assert row["label"] == columns[int(np.argmax(p))][2:]
        assert float(row["confidence"]) == pytest.approx(p.max(), abs=1e-6)


def test_real_cells_are_mostly_recognised(report) -> None:
    """Not a quality benchmark: a model that shuffles columns or labels would get most of these wrong."""
    _, out = report
    rows = read_rows(out)
    truth = [cls for slide in SLIDES for cls in SLIDES[slide]]
    predicted = [row["label"] for row in sorted(rows, key=lambda row: (row["slide"], row["path"]))]
    assert sum(t == p for t, p in zip(truth, predicted)) >= 0.7 * len(truth)


def test_summary_counts_and_percentages_per_slide(report) -> None:
    _, out = report
    rows = read_rows(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == len(rows) and summary["classified"] == len(rows) and summary["errors"] == 0
    assert set(summary["slides"]) == set(SLIDES)
    for slide, entry in summary["slides"].items():
        labels = [row["label"] for row in rows if row["slide"] == slide]
        assert entry["classified"] == len(labels)
        for name, counts in entry["classes"].items():
            assert counts["count"] == labels.count(name), (slide, name)
            assert counts["percent"] == pytest.approx(100.0 * labels.count(name) / len(labels), abs=0.01)
        assert sum(counts["percent"] for counts in entry["classes"].values()) == pytest.approx(100.0, abs=0.1)
    overall = summary["classes"]
    assert sum(counts["count"] for counts in overall.values()) == len(rows)
    assert sum(counts["percent"] for counts in overall.values()) == pytest.approx(100.0, abs=0.1)
    assert Path(summary["model"]) == DEFAULT_MODEL_PATH


def test_terminal_output_shows_the_per_class_table(report) -> None:
    result, _ = report
    assert "cells classified on 2 slide(s)" in result.output
    assert "neutrophil" in result.output
    assert "cells flagged for review" in result.output


def test_review_column_and_summary_name_the_same_cells(report) -> None:
    _, out = report
    rows = read_rows(out)
    summary = json.loads((out / "summary.json").read_text())
    reasons = {"", "low confidence", "unknown cell type", "unknown cell type; low confidence"}
    assert {row["review"] for row in rows} <= reasons
    flagged = {row["path"]: row["review"] for row in rows if row["review"]}
    listed = {cell["path"]: cell["reason"] for entry in summary["slides"].values() for cell in entry["flagged_cells"]}
    assert listed == flagged and summary["flagged"] == len(flagged)
    assert sum(entry["flagged"] for entry in summary["slides"].values()) == len(flagged)


def _card_json() -> str:
    result = invoke(app, "info")
    assert result.exit_code == 0, result.output
    return result.output[result.output.index("{") :]


def test_info_prints_model_path_and_card(pbc_dir: Path) -> None:
    result = invoke(app, "info")
    assert result.exit_code == 0, result.output
    first_line = result.output.splitlines()[0]
    assert str(DEFAULT_MODEL_PATH) in first_line
    card = ModelCard.from_json(_card_json())
    folders = sorted(path.name for path in pbc_dir.iterdir() if path.is_dir())
    assert list(card.class_names) == folders
    assert card.input.height == card.input.width == 224


def test_missing_model_file_exits_2(slides: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    result = invoke(app, "classify", slides, "--model", missing, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert str(missing) in result.output and "error" in result.output
    assert not (tmp_path / "out" / "cells.csv").exists()


def test_non_onnx_model_file_exits_2(slides: Path, tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("definitely not a protobuf\n" * 10)
    result = invoke(app, "classify", slides, "--model", fake, "--out", tmp_path / "out", "--unverified")
    assert result.exit_code == 2, result.output
    assert "cannot load model" in result.output
    result = invoke(app, "info", "--model", fake, "--unverified")
    assert result.exit_code == 2, result.output


def test_onnx_model_without_card_exits_2(slides: Path, tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["probabilities"])],
        "plain",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [None, 224, 224, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.UINT8, [None, 224, 224, 3])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    result = invoke(app, "classify", slides, "--model", path, "--out", tmp_path / "out", "--unverified")
    assert result.exit_code == 2, result.output
    assert "model card" in result.output


def test_no_images_found_exits_2(tmp_path: Path) -> None:
    folder = tmp_path / "empty_slide"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing here\n")
    result = invoke(app, "classify", folder, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "no image files" in result.output


def test_only_missing_paths_exits_2(tmp_path: Path) -> None:
    result = invoke(app, "classify", tmp_path / "no_such_folder", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "no such file or folder" in result.output


def test_a_missing_path_beside_real_cells_exits_1_and_classifies_the_rest(slides: Path, tmp_path: Path) -> None:
    result = invoke(app, "classify", slides / "slide_B", tmp_path / "gone", "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert len(read_rows(tmp_path / "out")) == len(SLIDES["slide_B"])
