"""The model embedded in hema: what its card says, and how well it classifies PBC's test split."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import balanced_accuracy_score

from hema.runtime import DEFAULT_MODEL_PATH, classify_files
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

pytestmark = pytest.mark.slow

MAX_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def engine() -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="module")
def measured(engine: OnnxRuntimeEngine, pbc_test_split) -> float:
    """Balanced accuracy of the embedded model on every PBC test-split cell, through the runtime."""
    results = list(classify_files(engine, pbc_test_split.paths, batch_size=64))
    assert [result.path for result in results] == list(pbc_test_split.paths)
    assert all(result.status == "ok" for result in results)
    names = engine.card.class_names
    truth = [pbc_test_split.class_names[label] for label in pbc_test_split.labels]
    predicted = [result.label for result in results]
    assert set(predicted) <= set(names)
    return float(balanced_accuracy_score(truth, predicted))


def test_default_model_file_is_at_most_20_mb() -> None:
    assert DEFAULT_MODEL_PATH.is_file()
    assert DEFAULT_MODEL_PATH.stat().st_size <= MAX_BYTES


def test_card_class_names_are_the_pbc_folders(engine: OnnxRuntimeEngine, pbc_dir: Path) -> None:
    folders = sorted(path.name for path in pbc_dir.iterdir() if path.is_dir())
    assert list(engine.card.class_names) == folders


def test_card_records_backbone_head_and_metrics(engine: OnnxRuntimeEngine) -> None:
    card = engine.card
    assert card.backbone["arch"] == "efficientnet_lite0"
    assert card.backbone["source"] == "runs/default-backbone/best.pt"  # make default-model's fine-tuned Lite0
    assert card.head["kind"] == "lr"
    assert (card.input.height, card.input.width) == (224, 224)
    accuracy = card.metrics["balanced_accuracy"]
    value = accuracy["mean"] if isinstance(accuracy, dict) else accuracy
    assert 0.0 < float(value) <= 1.0
    assert "probabilities" in engine.output_names


def _card_accuracy(engine: OnnxRuntimeEngine) -> float:
    accuracy = engine.card.metrics["balanced_accuracy"]
    return float(accuracy["mean"] if isinstance(accuracy, dict) else accuracy)


def test_balanced_accuracy_on_the_pbc_test_split_is_at_least_095(measured: float) -> None:
    assert measured >= 0.95


def test_measured_accuracy_agrees_with_the_card(engine: OnnxRuntimeEngine, measured: float) -> None:
    assert abs(measured - _card_accuracy(engine)) <= 0.01, (measured, _card_accuracy(engine))


def test_card_says_it_was_evaluated_on_the_test_split(engine: OnnxRuntimeEngine, pbc_test_split) -> None:
    evaluated = engine.card.metrics["evaluated_on"]
    assert evaluated["split"] == "test"
    assert evaluated["cells"] == pbc_test_split.counts()
    assert engine.card.training_data["split"] == "train"
