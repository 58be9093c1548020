"""Review flags: the policy on synthetic outputs, the reports, and the default model on real cells and non-cells."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hema.runtime import DEFAULT_MODEL_PATH, classify_files
from hema.runtime.card import InputSpec, ModelCard
from hema.runtime.classify import CellResult
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.reports.tables import CELLS_COLUMNS, CsvCellWriter, format_summary, summarise
from hema.runtime.review import LOW_CONFIDENCE, UNKNOWN_CELL_TYPE, ReviewPolicy

CLASSES = ("a", "b", "c")
OUTPUTS = ("probabilities", "embedding", "novelty")


def card(review: dict | None = None) -> ModelCard:
    base = ModelCard(class_names=CLASSES, input=InputSpec(height=8, width=8))
    return base if review is None else replace(base, review=review)


def probabilities(top: float) -> np.ndarray:
    rest = (1.0 - top) / 2
    return np.array([top, rest, rest], dtype=np.float32)


POLICY = ReviewPolicy.from_card(card({"confidence_threshold": 0.8, "novelty_threshold": 0.3}), OUTPUTS)


# --------------------------------------------------------------------------------------------------------------
# The policy on synthetic probabilities and novelty.


@pytest.mark.parametrize(
    ("top", "novelty", "expected"),
    [
        (0.95, 0.10, ""),
        (0.80, 0.30, ""),  # exactly at both thresholds: not flagged
        (0.7999, 0.10, LOW_CONFIDENCE),
        (0.95, 0.3001, UNKNOWN_CELL_TYPE),
        (0.50, 0.90, f"{UNKNOWN_CELL_TYPE}; {LOW_CONFIDENCE}"),
        (0.95, float("nan"), UNKNOWN_CELL_TYPE),
    ],
)
def test_flags_exactly_below_the_confidence_and_above_the_novelty_threshold(
    top: float, novelty: float, expected: str
) -> None:
    assert POLICY.reason(probabilities(top), novelty) == expected


def test_reasons_of_a_batch_follow_the_rows() -> None:
    outputs = {
        "probabilities": np.stack([probabilities(0.9), probabilities(0.6), probabilities(0.99)]),
        "embedding": np.zeros((3, 4), np.float32),
        "novelty": np.array([0.1, 0.1, 0.8], np.float32),
    }
    assert POLICY.reasons(outputs) == ["", LOW_CONFIDENCE, UNKNOWN_CELL_TYPE]


def test_a_card_without_review_flags_nothing() -> None:
    document = json.loads(card().to_json())
    del document["review"]
    old = ModelCard.from_json(json.dumps(document))
    assert old.review == {}
    policy = ReviewPolicy.from_card(old, OUTPUTS)
    assert not policy.active
    assert policy.reason(probabilities(0.34), 5.0) == ""
    assert policy.reasons({"probabilities": np.stack([probabilities(0.34)]), "novelty": np.ones(1)}) == [""]


def test_a_graph_without_novelty_gets_confidence_flags_only() -> None:
    policy = ReviewPolicy.from_card(card({"confidence_threshold": 0.8, "novelty_threshold": 0.3}), OUTPUTS[:2])
    assert policy.novelty_threshold is None and policy.active
    assert policy.reasons({"probabilities": np.stack([probabilities(0.5), probabilities(0.9)])}) == [LOW_CONFIDENCE, ""]


@pytest.mark.parametrize("value", [None, "0.8", True, float("nan"), [0.8]])
def test_thresholds_that_are_not_numbers_are_off(value: object) -> None:
    policy = ReviewPolicy.from_card(card({"confidence_threshold": value, "novelty_threshold": value}), OUTPUTS)
    assert policy == ReviewPolicy()


def test_review_survives_the_card_round_trip() -> None:
    review = {"confidence_threshold": 0.8, "novelty_threshold": 0.3, "held_back": {"cells": 10}}
    assert ModelCard.from_json(card(review).to_json()).review == review


# --------------------------------------------------------------------------------------------------------------
# cells.csv and summary.json.


def _results() -> list[CellResult]:
    p = probabilities(0.9)
    return [
        CellResult(Path("s1/a.jpg"), "s1", "ok", "a", 0.9, p),
        CellResult(Path("s1/b.jpg"), "s1", "ok", "a", 0.5, p, review=LOW_CONFIDENCE),
        CellResult(Path("s2/c.jpg"), "s2", "ok", "b", 0.9, p, review=UNKNOWN_CELL_TYPE),
        CellResult(Path("s2/d.jpg"), "s2", "error", error="cannot read image"),
    ]


def test_cells_csv_has_the_review_column_after_status() -> None:
    buffer = io.StringIO(newline="")
    with CsvCellWriter(buffer, CLASSES) as writer:
        for result in _results():
            writer.write(result)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert CELLS_COLUMNS.index("review") == CELLS_COLUMNS.index("status") + 1
    assert [row["review"] for row in rows] == ["", LOW_CONFIDENCE, UNKNOWN_CELL_TYPE, ""]


def test_summary_counts_and_lists_flagged_cells_per_slide() -> None:
    summary = summarise(_results(), CLASSES, "model.onnx")
    assert summary["flagged"] == 2
    assert summary["slides"]["s1"]["flagged"] == 1 and summary["slides"]["s2"]["flagged"] == 1
    assert summary["slides"]["s1"]["flagged_cells"] == [{"path": "s1/b.jpg", "label": "a", "reason": LOW_CONFIDENCE}]
    assert summary["slides"]["s2"]["flagged_cells"][0]["reason"] == UNKNOWN_CELL_TYPE
    assert "2 of 3 cells flagged for review" in format_summary(summary)


# --------------------------------------------------------------------------------------------------------------
# The embedded default model on real cells and on images that are not cells. Bounds come from
# benchmarks/results/review-flags.md (PBC test split 16.7 % flagged, unflagged accuracy 0.953 against 0.710
# for the flagged; BCCD and non-cells 100 %), with margin.


@pytest.fixture(scope="module")
def engine() -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="module")
def pbc_test_results(engine: OnnxRuntimeEngine, pbc_test_split) -> tuple[list[CellResult], np.ndarray]:
    results = list(classify_files(engine, pbc_test_split.paths, batch_size=64))
    truth = np.array([pbc_test_split.class_names[label] for label in pbc_test_split.labels])
    return results, truth


@pytest.mark.slow
def test_default_model_card_carries_calibrated_review(engine: OnnxRuntimeEngine) -> None:
    review = engine.card.review
    assert 0.0 < review["confidence_threshold"] < 1.0
    assert 0.0 < review["novelty_threshold"] < 1.0
    assert review["held_back"]["split"] == "train" and review["held_back"]["cells"] > 2000
    assert "novelty" in engine.output_names
    assert ReviewPolicy.from_card(engine.card, engine.output_names).active


@pytest.mark.slow
def test_few_pbc_test_cells_are_flagged_and_they_carry_the_errors(engine: OnnxRuntimeEngine, pbc_test_results) -> None:
    """Unseen cells: the unflagged reach the card's target accuracy, and the flagged are wrong far more often.

    How many are flagged depends on the model: the default model is right on 96 % of test cells unflagged, so its
    threshold flags almost none (4 of 639); an ImageNet-feature model right on 91 % flagged 17 %.
    """
    results, truth = pbc_test_results
    flagged = np.array([bool(result.review) for result in results])
    correct = np.array([result.label for result in results]) == truth
    assert 0 < flagged.mean() < 0.25, flagged.mean()
    assert correct[~flagged].mean() >= engine.card.review["target_unflagged_accuracy"]
    assert correct[~flagged].mean() > correct[flagged].mean() + 0.1


@pytest.mark.slow
def test_images_that_are_not_cells_are_flagged_unknown(engine: OnnxRuntimeEngine, tmp_path: Path) -> None:
    from hema.export.review.non_cells import write_non_cell_images

    paths = write_non_cell_images(tmp_path / "not-cells", per_kind=6)
    reviews = [result.review for result in classify_files(engine, paths, batch_size=64)]
    out_of_distribution = np.mean([UNKNOWN_CELL_TYPE in review for review in reviews])
    assert out_of_distribution > 0.9, list(zip([path.name for path in paths], reviews))


@pytest.mark.slow
def test_most_cells_of_another_lab_are_flagged(engine: OnnxRuntimeEngine, bccd_dir: Path) -> None:
    from hema.runtime import find_cell_images

    paths = list(find_cell_images([bccd_dir]).images)[::3]
    flagged = np.mean([bool(result.review) for result in classify_files(engine, paths, batch_size=64)])
    assert flagged > 0.8, flagged


@pytest.mark.slow
def test_openvino_flags_the_same_cells_as_onnx_runtime(engine: OnnxRuntimeEngine, pbc_test_split, tmp_path) -> None:
    pytest.importorskip("openvino")
    from hema.export.review.non_cells import write_non_cell_images
    from hema.runtime.engines.openvino_engine import OpenVinoEngine

    paths = [*pbc_test_split.paths[::10], *write_non_cell_images(tmp_path / "not-cells", per_kind=2)]
    expected = [result.review for result in classify_files(engine, paths)]
    got = [result.review for result in classify_files(OpenVinoEngine(DEFAULT_MODEL_PATH), paths)]
    assert got == expected
    assert any(expected) and not all(expected)
