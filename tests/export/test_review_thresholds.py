"""Review calibration at export: the threshold rules, the held-back folds, and the ``novelty`` graph output."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from hema.export.graph.novelty import attach_novelty, class_centroids, novelty_scores
from hema.export.review.non_cells import NON_CELL_KINDS, non_cell_images
from hema.export.review.out_of_fold import deal_folds, held_back_predictions
from hema.export.review.thresholds import ReviewSettings, confidence_threshold, review_entry
from hema.train.fewshot.heads import HeadConfig, fit_head

# --------------------------------------------------------------------------------------------------------------
# The confidence rule.


def test_a_head_right_on_every_cell_flags_nothing() -> None:
    confidence = np.linspace(0.3, 1.0, 50)
    threshold = confidence_threshold(confidence, np.ones(50, bool), target=0.95, max_share=0.2)
    assert not (confidence < threshold).any()


def test_a_minimum_share_is_flagged_however_accurate_the_rest() -> None:
    confidence = np.linspace(0.3, 1.0, 200)
    threshold = confidence_threshold(confidence, np.ones(200, bool), target=0.95, max_share=0.2, min_share=0.1)
    assert (confidence < threshold).mean() == pytest.approx(0.1)
    assert confidence[confidence < threshold].max() < confidence[confidence >= threshold].min()


def test_the_threshold_keeps_the_most_cells_that_reach_the_target() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 2000)
    correct = rng.uniform(size=2000) < confidence  # the less sure, the more often wrong
    threshold = confidence_threshold(confidence, correct, target=0.8, max_share=0.5)
    kept = confidence >= threshold
    assert correct[kept].mean() >= 0.8
    one_more = confidence >= confidence[confidence < threshold].max()  # the next lower threshold misses the target
    assert correct[one_more].mean() < 0.8
    assert 0.3 < (~kept).mean() <= 0.5  # about 43 %: uniform confidence, P(right) = confidence


def test_the_share_cap_binds_when_the_target_is_out_of_reach() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.3, 1.0, 1000)
    correct = rng.uniform(size=1000) < 0.5  # a coin: no threshold reaches 95 %
    threshold = confidence_threshold(confidence, correct, target=0.95, max_share=0.2)
    assert (confidence < threshold).mean() == pytest.approx(0.2, abs=0.002)


def test_tied_confidences_are_kept_or_flagged_together() -> None:
    confidence = np.array([0.9, 0.9, 0.9, 0.5, 0.5])
    correct = np.array([True, True, False, False, False])
    threshold = confidence_threshold(confidence, correct, target=0.6, max_share=0.5)
    assert threshold == 0.9  # keeps the three 0.9 cells (2/3 right); flags both 0.5 cells


# --------------------------------------------------------------------------------------------------------------
# Held-back folds on synthetic clusters.


def _clusters(per_class: int = 30, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 3, size=(3, dim))
    labels = np.repeat(np.arange(3), per_class)
    return (centres[labels] + rng.normal(0, 0.6, size=(len(labels), dim))).astype(np.float32), labels


def test_folds_are_dealt_round_robin_within_each_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 0, 1, 2, 2, 2, 2])
    folds = deal_folds(labels, 3)
    assert folds.tolist() == [0, 1, 2, 0, 1, 0, 2, 0, 1, 2, 0]


def test_held_back_predictions_and_the_card_entry() -> None:
    features, labels = _clusters()
    head = fit_head(features, labels, ("a", "b", "c"), HeadConfig("lr"))
    held = held_back_predictions(features, labels, head, folds=5)
    assert held.probabilities.shape == (90, 3) and held.novelty.shape == (90,) and held.folds == 5
    assert (held.probabilities.argmax(axis=1) == labels).mean() > 0.8
    entry = review_entry(held, labels, ReviewSettings(), {"folder": "x", "split": "train"})
    assert entry["held_back"]["cells"] == 90 and entry["held_back"]["split"] == "train"
    assert entry["novelty_threshold"] == pytest.approx(np.percentile(held.novelty, 90))
    assert 0.08 <= entry["held_back"]["flagged_unknown_cell_type"] <= 0.12
    settings = ReviewSettings()
    assert settings.min_flagged_share <= entry["held_back"]["flagged_low_confidence"] <= settings.max_flagged_share


def test_few_shot_heads_are_refitted_on_draws_and_tiny_classes_are_refused() -> None:
    features, labels = _clusters(per_class=12)
    head = fit_head(features, labels, ("a", "b", "c"), HeadConfig("knn", k=3))
    head.metadata["labels_per_class"] = 4
    assert held_back_predictions(features, labels, head).folds == 5
    with pytest.raises(ValueError, match="at least 2 cells"):
        held_back_predictions(features[:25], labels[:25], head)  # class c keeps one cell


# --------------------------------------------------------------------------------------------------------------
# The novelty output: graph == numpy, on ONNX Runtime and OpenVINO, for opsets before and after 18.


def _embedding_model(dim: int, opset: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["embedding"])],
        "embedding_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", dim])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


@pytest.mark.parametrize("opset", [17, 18])
def test_novelty_output_equals_the_numpy_definition(opset: int) -> None:
    features, labels = _clusters(dim=32)
    centroids = class_centroids(features, labels, 3)
    model = attach_novelty(_embedding_model(32, opset), centroids)
    probe = np.vstack([features[:10], np.abs(np.random.default_rng(2).normal(size=(5, 32))), np.zeros((1, 32))])
    probe = probe.astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    embedding, novelty = session.run(["embedding", "novelty"], {"x": probe})
    np.testing.assert_allclose(novelty, novelty_scores(embedding, centroids), atol=1e-5)
    assert novelty.shape == (16,) and novelty[-1] == pytest.approx(1.0)
    assert novelty[:10].max() < novelty[10:].min()  # cluster members are nearer their centroids than noise


def test_novelty_output_on_openvino() -> None:
    pytest.importorskip("openvino")
    from hema.runtime.engines.openvino_engine import openvino_core

    features, labels = _clusters(dim=32)
    centroids = class_centroids(features, labels, 3)
    model = attach_novelty(_embedding_model(32, 17), centroids)
    # the process's one Core: dropping Cores unloads plugins (see hema.runtime.engines.openvino_engine)
    core = openvino_core()
    compiled = core.compile_model(
        core.read_model(model.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    result = compiled.create_infer_request().infer({"x": features})
    novelty = next(value for output, value in result.items() if output.get_any_name() == "novelty")
    np.testing.assert_allclose(novelty, novelty_scores(np.maximum(features, 0), centroids), atol=1e-5)


def test_attach_novelty_refuses_a_second_output_or_other_sizes() -> None:
    centroids = class_centroids(*_clusters(dim=8), 3)
    model = attach_novelty(_embedding_model(8, 17), centroids)
    with pytest.raises(ValueError, match="no 'novelty'"):
        attach_novelty(model, centroids)
    with pytest.raises(ValueError, match="8-dimensional"):
        attach_novelty(_embedding_model(16, 17), centroids)


def test_non_cell_images_are_deterministic_and_cover_every_kind() -> None:
    first, second = non_cell_images(per_kind=2, size=64), non_cell_images(per_kind=2, size=64)
    assert [kind for kind, _ in first] == [kind for kind in NON_CELL_KINDS for _ in range(2)]
    for (_, a), (_, b) in zip(first, second):
        assert a.size == (64, 64) and a.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
