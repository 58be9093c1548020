"""The ``novelty`` score of a cell: how far its embedding is from every training class.

``novelty = 1 - max_c cos(embedding, centroid_c)``, where ``centroid_c`` is the L2-normalised mean of the
L2-normalised training embeddings of class ``c``. It is 0 for an embedding pointing exactly at a class centroid
and grows towards 1 (or beyond, for embeddings with negative components) for images unlike any training class.

The score is defined twice, in numpy (:func:`novelty_scores`, used to calibrate the threshold at export) and as
plain ONNX operators appended to the fused model (:func:`attach_novelty`: ReduceL2, Max, Div, MatMul,
ReduceMax, Sub), so ONNX Runtime, OpenVINO and TensorRT all compute it. ``tests/export/test_novelty_graph.py``
holds the two against each other. Why the graph and not the card: see :mod:`hema.runtime.review`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hema.runtime.engines.base import EMBEDDING_OUTPUT, NOVELTY_OUTPUT
from hema.train.fewshot.heads import l2_normalise

__all__ = ["attach_novelty", "class_centroids", "novelty_scores"]

_EPSILON = 1e-12  # as l2_normalise: a zero embedding stays zero and gets novelty 1


def class_centroids(features: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """``float32 (classes, dim)``: per class, the unit-length mean of the unit-length embeddings.

    Raises:
        ValueError: If a class has no embedding.
    """
    unit = l2_normalise(np.asarray(features, dtype=np.float64))
    counts = np.bincount(labels, minlength=classes)
    if (counts == 0).any():
        raise ValueError(f"class centroids need an embedding of every class; missing: {np.flatnonzero(counts == 0)}")
    means = np.stack([unit[labels == index].mean(axis=0) for index in range(classes)])
    return l2_normalise(means).astype(np.float32)


def novelty_scores(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``float32 (n,)``: ``1 -`` the highest cosine similarity of each embedding to a centroid."""
    similarity = l2_normalise(np.asarray(features, dtype=np.float32)) @ np.asarray(centroids, dtype=np.float32).T
    return (1.0 - similarity.max(axis=1)).astype(np.float32)


def _opset(model: onnx.ModelProto) -> int:
    return next((opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")), 1)


def _reduce(op: str, source: str, target: str, opset: int, keepdims: int) -> tuple[onnx.NodeProto, list]:
    """A reduction over axis 1: ``axes`` is an attribute before opset 18 and an input from opset 18 on."""
    name = f"novelty/{op.lower()}"
    if opset < 18:
        return helper.make_node(op, [source], [target], axes=[1], keepdims=keepdims, name=name), []
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), name=f"{name}_axes")
    return helper.make_node(op, [source, axes.name], [target], keepdims=keepdims, name=name), [axes]


def attach_novelty(model: onnx.ModelProto, centroids: np.ndarray) -> onnx.ModelProto:
    """Append the ``novelty`` output ``float32 (batch,)`` computed from the ``embedding`` output.

    Args:
        model: A fused classifier with an ``embedding`` output (changed in place and returned).
        centroids: ``(classes, dim)`` unit-length class centroids (:func:`class_centroids`).

    Raises:
        ValueError: If the model has no ``embedding`` output, already has ``novelty``, or the sizes differ.
    """
    graph = model.graph
    names = [output.name for output in graph.output]
    if EMBEDDING_OUTPUT not in names or NOVELTY_OUTPUT in names:
        raise ValueError(f"expected a model with an {EMBEDDING_OUTPUT!r} output and no {NOVELTY_OUTPUT!r}: {names}")
    embedding = next(output for output in graph.output if output.name == EMBEDDING_OUTPUT)
    dim = embedding.type.tensor_type.shape.dim[-1]
    if dim.HasField("dim_value") and dim.dim_value != centroids.shape[1]:
        raise ValueError(f"centroids are {centroids.shape[1]}-dimensional, the embedding {dim.dim_value}")
    opset = _opset(model)
    norm, norm_extra = _reduce("ReduceL2", EMBEDDING_OUTPUT, "novelty/norm", opset, keepdims=1)
    nearest, nearest_extra = _reduce("ReduceMax", "novelty/similarity", "novelty/nearest", opset, keepdims=0)
    graph.node.extend(
        [
            norm,
            helper.make_node("Max", ["novelty/norm", "novelty/epsilon"], ["novelty/safe_norm"], name="novelty/clamp"),
            helper.make_node("Div", [EMBEDDING_OUTPUT, "novelty/safe_norm"], ["novelty/unit"], name="novelty/unit"),
            helper.make_node(
                "MatMul", ["novelty/unit", "novelty/centroids_t"], ["novelty/similarity"], name="novelty/similarity"
            ),
            nearest,
            helper.make_node("Sub", ["novelty/one", "novelty/nearest"], [NOVELTY_OUTPUT], name="novelty/score"),
        ]
    )
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(_EPSILON, dtype=np.float32), name="novelty/epsilon"),
            numpy_helper.from_array(np.ascontiguousarray(centroids.T, dtype=np.float32), name="novelty/centroids_t"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), name="novelty/one"),
            *norm_extra,
            *nearest_extra,
        ]
    )
    batch = embedding.type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or (batch.dim_value if batch.HasField("dim_value") else "batch")
    graph.output.append(helper.make_tensor_value_info(NOVELTY_OUTPUT, TensorProto.FLOAT, [batch_dim]))
    onnx.checker.check_model(model)
    return model
