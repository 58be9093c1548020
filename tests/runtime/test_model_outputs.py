"""Model outputs hema cannot trust (issue 13 item 7).

A model that answers NaN or infinity for a cell must not give that cell a class: the cell gets an error row with the
reason ``model output not finite`` and the rest of the batch is classified as usual, by ``classify`` and by
``watch`` (whose journal cannot hold NaN). A model whose card does not fit its graph (another class count than the
probabilities it outputs, another input size than the graph takes, or an input size no image can have) is refused
when it is loaded, so ``hema-infer`` exits 2 before reading a cell; outputs of another shape than the card's at run
time (a graph whose class count is only known then) give error rows, never ragged ones.

The broken models are the default model edited with the ``onnx`` package, each with a fresh manifest so that the
check under test, not the integrity check, is the one that refuses it.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import default_model_proto, edit_card, invoke, read_rows, run_infer, save_with_manifest
from PIL import Image

from hema.runtime.classify import classify_files
from hema.runtime.cli import app
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import installed_backends, open_engine
from hema.runtime.engines.base import Engine, ModelError

ENGINES = [name for name in ("onnxruntime", "openvino") if name in installed_backends()]
NOT_FINITE = "model output not finite"
CELLS = ("basophil/BA_10387.jpg", "platelet/PLATELET_100161.jpg", "lymphocyte/LY_102859.jpg")
BLACK = "black.png"
FAST_WATCH = ("--once", "--settle", "0", "--poll-interval", "0.01", "--threads", "1", "--decode-threads", "1")


def poison_black_images(model: Any, output: str, value: float) -> Any:
    """Make the graph output ``output`` equal ``value`` for every image uniform in each channel, unchanged for
    other images.

    The all-black image of the slide reaches the graph uniform whatever the model's view does to it (a uniform
    image stays uniform through stain standardisation, the cell view and the resize).

    The tensor is renamed where it is made and read, so outputs computed from it (novelty from the embedding)
    stay as they were: only ``output`` itself turns non-finite.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph, raw = model.graph, f"{output}_before_poison"
    for node in graph.node:
        for names in (node.input, node.output):
            renamed = [raw if name == output else name for name in names]
            del names[:]
            names.extend(renamed)
    [declared] = [entry for entry in graph.output if entry.name == output]
    rank = len(declared.type.tensor_type.shape.dim)
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([1], dtype=np.int64), "poison_column_axis"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "poison_zero"),
            numpy_helper.from_array(np.array(value, dtype=np.float32), "poison_value"),
        ]
    )
    offset = "poison_per_image" if rank == 1 else "poison_per_row"
    graph.node.extend(
        [
            helper.make_node("Cast", ["image"], ["poison_pixels"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMax", ["poison_pixels"], ["poison_brightest"], axes=[1, 2], keepdims=0),
            helper.make_node("ReduceMin", ["poison_pixels"], ["poison_darkest"], axes=[1, 2], keepdims=0),
            helper.make_node("Sub", ["poison_brightest", "poison_darkest"], ["poison_channel_ranges"]),
            helper.make_node("ReduceMax", ["poison_channel_ranges"], ["poison_range"], axes=[1], keepdims=0),
            helper.make_node("Equal", ["poison_range", "poison_zero"], ["poison_black"]),
            helper.make_node("Where", ["poison_black", "poison_value", "poison_zero"], ["poison_per_image"]),
            *(
                [helper.make_node("Unsqueeze", ["poison_per_image", "poison_column_axis"], ["poison_per_row"])]
                * (rank == 2)
            ),
            helper.make_node("Add", [raw, offset], [output]),
        ]
    )
    return model


@pytest.fixture(scope="module")
def slide(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three real cells and one all-black image in one slide folder."""
    folder = tmp_path_factory.mktemp("analyser") / "slide_1"
    folder.mkdir()
    for cell in CELLS:
        shutil.copyfile(pbc_dir / cell, folder / Path(cell).name)
    Image.new("RGB", (360, 363)).save(folder / BLACK)
    return folder


@pytest.fixture(scope="module")
def expected_labels(slide: Path) -> dict[str, str]:
    """What the unbroken default model says about the real cells."""
    engine = open_engine(DEFAULT_MODEL_PATH, "onnxruntime")
    cells = sorted(path for path in slide.iterdir() if path.name != BLACK)
    return {result.path.name: result.label for result in classify_files(engine, cells)}


@pytest.mark.parametrize(
    ("output", "value"), [("probabilities", math.nan), ("novelty", math.inf), ("embedding", math.nan)]
)
def test_a_non_finite_output_gives_that_cell_an_error_row_and_the_others_are_classified(
    output: str, value: float, slide: Path, expected_labels: dict[str, str], tmp_path: Path
) -> None:
    model = save_with_manifest(poison_black_images(default_model_proto(), output, value), tmp_path / "poisoned.onnx")
    for backend in ENGINES:
        results = {
            result.path.name: result for result in classify_files(open_engine(model, backend), sorted(slide.iterdir()))
        }
        black = results.pop(BLACK)
        assert (black.status, black.error, black.label, black.probabilities) == ("error", NOT_FINITE, "", None), backend
        assert {name: result.label for name, result in results.items()} == expected_labels, backend
        assert all(result.status == "ok" and math.isfinite(result.confidence) for result in results.values())


def test_classify_and_watch_report_a_nan_cell_as_an_error_and_go_on(
    slide: Path, expected_labels: dict[str, str], tmp_path: Path
) -> None:
    model = save_with_manifest(
        poison_black_images(default_model_proto(), "probabilities", math.nan), tmp_path / "nan.onnx"
    )
    runs = {
        "classify": run_infer("classify", slide, "--model", model, "--out", tmp_path / "classify"),
        "watch": run_infer("watch", slide.parent, "--model", model, "--out", tmp_path / "watch", *FAST_WATCH),
        "watch restarted": run_infer("watch", slide.parent, "--model", model, "--out", tmp_path / "watch", *FAST_WATCH),
    }
    for name, process in runs.items():
        assert process.returncode == 1, f"{name}: {process.stderr}"  # 1: some files could not be classified
        assert "Traceback" not in process.stderr, f"{name}: {process.stderr}"
        reported = "resuming: 4 cell(s) already in" if name == "watch restarted" else f"{BLACK}: {NOT_FINITE}"
        assert reported in process.stderr, f"{name}: {process.stderr}"
    for out in (tmp_path / "classify", tmp_path / "watch"):
        rows = {Path(row["path"]).name: row for row in read_rows(out)}
        black = rows.pop(BLACK)
        assert (black["status"], black["error"], black["confidence"], black["label"]) == ("error", NOT_FINITE, "", "")
        assert {name: row["label"] for name, row in rows.items()} == expected_labels
        assert all(row["status"] == "ok" and math.isfinite(float(row["confidence"])) for row in rows.values())
        assert all("nan" not in value.lower() for row in read_rows(out) for value in row.values() if value)


def _keep_seven_classes(card: dict) -> None:
    card["class_names"] = card["class_names"][:7]


CARD_EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    "class count": (_keep_seven_classes, r"names 7 classes.*outputs 8 class probabilities"),
    "input size": (lambda card: card["input"].update(height=112, width=112), r"112x112.*graph.*224x224"),
    "zero height": (lambda card: card["input"].update(height=0), r"from 1 to 4096 pixels"),
    "huge width": (lambda card: card["input"].update(width=5000), r"from 1 to 4096 pixels"),
    "text height": (lambda card: card["input"].update(height="224"), r"from 1 to 4096 pixels"),
}


@pytest.mark.parametrize("broken", list(CARD_EDITS))
def test_a_card_that_does_not_fit_its_graph_is_refused_at_load(broken: str, slide: Path, tmp_path: Path) -> None:
    edit, message = CARD_EDITS[broken]
    model = save_with_manifest(edit_card(default_model_proto(), edit), tmp_path / "mismatched.onnx")
    for backend in ENGINES:
        with pytest.raises(ModelError, match=message):
            open_engine(model, backend)
    result = invoke(app, "classify", slide, "--model", model, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "model card" in result.output
    assert not (tmp_path / "out").exists()


def test_hema_infer_exits_2_with_the_reason_for_a_card_of_another_graph(slide: Path, tmp_path: Path) -> None:
    model = save_with_manifest(edit_card(default_model_proto(), _keep_seven_classes), tmp_path / "seven.onnx")
    process = run_infer("classify", slide, "--model", model, "--out", tmp_path / "out")
    assert process.returncode == 2, process.stderr
    assert "Traceback" not in process.stderr
    assert "names 7 classes" in process.stderr and "8 class probabilities" in process.stderr
    assert not (tmp_path / "out").exists()


class SevenColumnEngine(Engine):
    """The default model, with one probability column cut off at run time: what no load-time check can see."""

    backend = "onnxruntime"

    def __init__(self) -> None:
        self.reference = open_engine(DEFAULT_MODEL_PATH, "onnxruntime")
        self.path, self.card, self.output_names = self.reference.path, self.reference.card, self.reference.output_names

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.reference.run(images)
        return {**outputs, "probabilities": outputs["probabilities"][:, :7]}


def test_probabilities_of_another_width_at_run_time_give_error_rows_not_ragged_ones(slide: Path) -> None:
    results = list(classify_files(SevenColumnEngine(), sorted(slide.iterdir())))
    assert [result.status for result in results] == ["error"] * 4
    assert all(result.error.startswith("model output has the wrong shape") for result in results)
    assert all("for 4 images of 8 classes" in result.error for result in results)
