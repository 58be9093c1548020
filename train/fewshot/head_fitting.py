"""scikit-learn fitting of each head kind and its conversion to arrays or ONNX.

Kept apart from :mod:`hema.train.fewshot.heads` so that loading and applying a stored head needs no scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hema.train.fewshot.heads import HeadConfig, l2_normalise, softmax

__all__ = ["fit_stored_head"]

StoredHead = tuple[dict[str, np.ndarray], "bytes | None", dict[str, Any], np.ndarray]

# Standardising divides by each feature's spread. A feature that barely varies in the training cells (a ReLU6
# channel that is almost always 0) would get a weight hundreds of times larger than the rest, so any tiny
# change in it (another lab's staining, INT8 rounding) would swing the prediction. Spreads are therefore floored
# at this fraction of the median spread.
SCALE_FLOOR = 0.1


def _robust_scale(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and spread, the spread floored at ``SCALE_FLOOR`` times its median."""
    mean, spread = features.mean(axis=0), features.std(axis=0)
    return mean, np.maximum(spread, SCALE_FLOOR * np.median(spread))


def _two_columns(scores: np.ndarray) -> np.ndarray:
    """SVMs score two classes with one column ``z``; like skl2onnx, hema scores them ``[-z, z]``."""
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def _linear(features: np.ndarray, labels: np.ndarray, config: HeadConfig) -> StoredHead:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    mean, scale = _robust_scale(features)
    scaled = (features - mean) / scale
    if config.kind == "lr":
        model = LogisticRegression(C=config.c, max_iter=5000).fit(scaled, labels)
        reference = model.predict_proba(scaled)
    else:
        # dual=True: scikit-learn's 'auto' picks the primal solver once cells outnumber features, which takes
        # ~13 min for all ~2,700 PBC train cells on 2 cores; the dual solves the same problem in ~9 s.
        model = LinearSVC(C=config.c, dual=True, max_iter=20000, random_state=config.seed).fit(scaled, labels)
        reference = softmax(_two_columns(model.decision_function(scaled)))
    coef = np.atleast_2d(model.coef_).astype(np.float64)
    intercept = np.atleast_1d(model.intercept_).astype(np.float64)
    if coef.shape[0] == 1:  # two classes: LR's sigmoid(z) is softmax([0, z]); SVM scores are [-z, z]
        other = np.zeros_like(coef) if config.kind == "lr" else -coef
        other_intercept = np.zeros(1) if config.kind == "lr" else -intercept
        coef, intercept = np.vstack([other, coef]), np.concatenate([other_intercept, intercept])
    # Fold the scaler: ((x - mean) / scale) @ coef.T + b == x @ (coef / scale).T + (b - (coef / scale) @ mean)
    weight = coef / scale
    bias = intercept - weight @ mean
    arrays = {"weight": weight.T.astype(np.float32), "bias": bias.astype(np.float32)}
    return arrays, None, {}, reference


def _knn(features: np.ndarray, labels: np.ndarray, counts: np.ndarray, config: HeadConfig) -> StoredHead:
    """Memory of float32 L2-normalised training embeddings, one-hot votes and scikit-learn's reference.

    scikit-learn ranks float64 Euclidean distances on the same float32 memory that the stored form ranks by
    float32 dot products; the two may order neighbours that are tied within rounding differently (one of ``k``
    votes then moves, 1/k). :func:`~hema.train.fewshot.heads.fit_head` therefore checks both against
    :meth:`~hema.train.fewshot.heads.FittedHead.vote_range` rather than against each other (see *kNN ties* in
    :mod:`hema.train.fewshot.heads`).
    """
    from sklearn.neighbors import KNeighborsClassifier

    k = int(min(config.k, counts.min()))
    memory = l2_normalise(features).astype(np.float32)
    model = KNeighborsClassifier(n_neighbors=k, metric="euclidean").fit(memory, labels)
    votes = np.eye(len(counts), dtype=np.float32)[labels]
    return {"memory": memory, "votes": votes}, None, {"k": k}, model.predict_proba(memory)


def _to_onnx(model: Any, dim: int, scores_to_softmax: bool, binary: bool = False) -> bytes:
    """An ONNX head with input ``embedding (n, dim)`` and output ``probabilities (n, classes)``.

    skl2onnx scores a two-class SVC ``[z, -z]``, the reverse of its class order: those scores are negated.
    """
    import onnx
    from onnx import helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    converted = to_onnx(
        model,
        initial_types=[("embedding", FloatTensorType([None, dim]))],
        options={id(estimator): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    graph = converted.graph
    produced = "scores" if scores_to_softmax else "probabilities"
    for node in graph.node:
        node.output[:] = [produced if name == "probabilities" else name for name in node.output]
    if scores_to_softmax:
        if binary:
            graph.node.append(helper.make_node("Neg", ["scores"], ["ordered_scores"], name="head_order_scores"))
        source = "ordered_scores" if binary else "scores"
        graph.node.append(helper.make_node("Softmax", [source], ["probabilities"], axis=1, name="head_softmax"))
    probabilities = next(output for output in graph.output if output.name == "probabilities")
    del graph.output[:]
    graph.output.append(probabilities)
    onnx.checker.check_model(converted)
    return converted.SerializeToString()


def _sklearn_onnx(features: np.ndarray, labels: np.ndarray, config: HeadConfig) -> StoredHead:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if config.kind == "svm":
        model = make_pipeline(StandardScaler(), SVC(kernel="rbf", C=config.c, decision_function_shape="ovr"))
        model.fit(features, labels)
        reference = softmax(_two_columns(model.decision_function(features)))
    else:
        model = RandomForestClassifier(n_estimators=config.trees, random_state=config.seed, n_jobs=-1)
        model.fit(features, labels)
        reference = model.predict_proba(features)
    onnx_bytes = _to_onnx(model, features.shape[1], config.kind == "svm", binary=len(np.unique(labels)) == 2)
    return {}, onnx_bytes, {}, reference


def fit_stored_head(features: np.ndarray, labels: np.ndarray, counts: np.ndarray, config: HeadConfig) -> StoredHead:
    """Fit ``config.kind`` and return ``(arrays, onnx_bytes, extra_params, reference_probabilities)``."""
    if config.kind in ("lr", "linear-svm"):
        arrays, onnx_bytes, params, reference = _linear(features, labels, config)
    elif config.kind == "knn":
        arrays, onnx_bytes, params, reference = _knn(features, labels, counts, config)
    else:
        arrays, onnx_bytes, params, reference = _sklearn_onnx(features, labels, config)
    return arrays, onnx_bytes, {**params, "embedding_dim": int(features.shape[1])}, reference
