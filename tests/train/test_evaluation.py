"""Metrics for imbalanced cell classes, held against scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from hema.train.evaluate.metrics import classification_metrics, plot_confusion_matrix, summarise_repeats


def _predictions(classes: int, n: int, seed: int, skill: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.choice(classes, size=n, p=np.linspace(1, 3, classes) / np.linspace(1, 3, classes).sum())
    noise = rng.integers(0, classes, n)
    predicted = np.where(rng.random(n) < skill, truth, noise)
    return truth, predicted


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("classes", [2, 5, 8])
def test_metrics_equal_scikit_learn(classes: int, seed: int) -> None:
    truth, predicted = _predictions(classes, 200, seed)
    metrics = classification_metrics(truth, predicted, classes)
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, predicted), abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, average="macro"), abs=1e-12)
    assert metrics["accuracy"] == pytest.approx(float((truth == predicted).mean()), abs=1e-12)
    np.testing.assert_allclose(metrics["recall"], recall_score(truth, predicted, average=None, labels=range(classes)))
    expected_confusion = confusion_matrix(truth, predicted, labels=range(classes))
    np.testing.assert_array_equal(metrics["confusion_matrix"], expected_confusion)


def test_eval_set_missing_a_class_is_scored_on_the_classes_it_has() -> None:
    classes = 5
    truth, predicted = _predictions(classes, 300, seed=3)
    truth = np.where(truth == 2, 4, truth)  # no class 2 in the evaluation set (but the model still predicts it)
    assert 2 in predicted and 2 not in truth
    present = np.unique(truth)
    metrics = classification_metrics(truth, predicted, classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected_balanced = balanced_accuracy_score(truth, predicted)
    assert metrics["balanced_accuracy"] == pytest.approx(expected_balanced, abs=1e-12)
    assert metrics["macro_f1"] == pytest.approx(f1_score(truth, predicted, labels=present, average="macro"), abs=1e-12)
    recall = metrics["recall"]
    assert np.isnan(recall[2])
    np.testing.assert_allclose(recall[present], recall_score(truth, predicted, labels=present, average=None))
    assert metrics["confusion_matrix"].shape == (classes, classes)
    assert metrics["confusion_matrix"][2].sum() == 0 and metrics["confusion_matrix"][:, 2].sum() > 0


def test_perfect_and_constant_predictions() -> None:
    truth = np.array([0, 0, 0, 0, 1, 2, 2])
    perfect = classification_metrics(truth, truth, 3)
    assert perfect["balanced_accuracy"] == 1.0 and perfect["macro_f1"] == 1.0
    majority = classification_metrics(truth, np.zeros_like(truth), 3)
    assert majority["accuracy"] == pytest.approx(4 / 7)
    assert majority["balanced_accuracy"] == pytest.approx(1 / 3)  # what plain accuracy hides


def _result(balanced: float, f1: float, recall: list[float], confusion: list[list[int]]) -> dict:
    return {
        "balanced_accuracy": balanced,
        "macro_f1": f1,
        "accuracy": balanced,
        "recall": np.array(recall),
        "confusion_matrix": np.array(confusion),
    }


def test_summarise_repeats_mean_std_and_sums() -> None:
    names = ("a", "b", "c")
    per_repeat = [
        _result(0.5, 0.4, [0.5, 1.0, np.nan], [[1, 1, 0], [0, 2, 0], [0, 0, 0]]),
        _result(0.7, 0.6, [1.0, 0.5, np.nan], [[2, 0, 0], [1, 1, 0], [0, 0, 0]]),
        _result(0.9, 0.8, [0.75, 0.5, np.nan], [[3, 1, 0], [1, 1, 0], [0, 0, 0]]),
    ]
    summary = summarise_repeats(per_repeat, names)
    assert summary["class_names"] == ["a", "b", "c"]
    assert summary["balanced_accuracy"]["mean"] == pytest.approx(0.7)
    assert summary["balanced_accuracy"]["std"] == pytest.approx(np.std([0.5, 0.7, 0.9]))
    assert summary["balanced_accuracy"]["std"] == pytest.approx(0.163299, abs=1e-6)
    assert summary["balanced_accuracy"]["per_repeat"] == [0.5, 0.7, 0.9]
    assert summary["macro_f1"]["mean"] == pytest.approx(0.6)
    assert summary["per_class_recall"] == {"a": pytest.approx(0.75), "b": pytest.approx(2 / 3, abs=1e-6), "c": None}
    assert summary["confusion_matrix"] == [[6, 2, 0], [2, 4, 0], [0, 0, 0]]


def test_summarise_a_single_repeat_has_zero_std() -> None:
    summary = summarise_repeats([_result(0.8, 0.7, [0.8], [[4]])], ("a",))
    assert summary["balanced_accuracy"] == {"mean": 0.8, "std": 0.0, "per_repeat": [0.8]}


def test_confusion_matrix_plot_is_a_png(tmp_path) -> None:
    path = tmp_path / "plots" / "confusion_matrix.png"
    plot_confusion_matrix(np.array([[5, 1], [0, 3]]), ("lymphocyte", "neutrophil"), "test", path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
