"""A fitted few-shot head as an ONNX graph: input ``embedding (batch, dim)``, output ``probabilities``.

Linear heads become MatMul + Add + Softmax and kNN becomes L2-normalise + MatMul + TopK + Gather + ReduceMean:
plain operators every engine (ONNX Runtime, OpenVINO, TensorRT) runs. RBF-SVM and random-forest heads are
already stored as ONNX with ``ai.onnx.ml`` operators, which only ONNX Runtime runs.

The kNN graph ranks float32 similarities with TopK; which of two neighbours tied within rounding it keeps
depends on the engine's summation order and TopK's tie rule, so its votes are defined only up to such ties
(:meth:`hema.train.fewshot.heads.FittedHead.vote_range`, *kNN ties* in :mod:`hema.train.fewshot.heads`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hema.export.graph.backbone import IR_VERSION, OPSET
from hema.runtime.engines.base import EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT
from hema.train.fewshot.heads import PLAIN_HEADS, FittedHead

__all__ = ["head_engines", "head_to_onnx"]

ML_OPSET = 3


def head_engines(head: FittedHead) -> tuple[str, ...]:
    """Engines that can run the head's graph."""
    return ("onnxruntime", "openvino", "tensorrt") if head.kind in PLAIN_HEADS else ("onnxruntime",)


def _constant(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value), name=name)


def _linear_nodes(head: FittedHead) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    nodes = [
        helper.make_node("MatMul", [EMBEDDING_OUTPUT, "head_weight"], ["head_product"], name="head_matmul"),
        helper.make_node("Add", ["head_product", "head_bias"], ["head_scores"], name="head_add"),
        helper.make_node("Softmax", ["head_scores"], [PROBABILITIES_OUTPUT], axis=1, name="head_softmax"),
    ]
    weights = [_constant("head_weight", head.arrays["weight"]), _constant("head_bias", head.arrays["bias"])]
    return nodes, weights


def _knn_nodes(head: FittedHead) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    nodes = [
        helper.make_node("ReduceL2", [EMBEDDING_OUTPUT], ["knn_norm"], axes=[1], keepdims=1, name="knn_norm"),
        helper.make_node("Max", ["knn_norm", "knn_epsilon"], ["knn_safe_norm"], name="knn_clamp"),
        helper.make_node("Div", [EMBEDDING_OUTPUT, "knn_safe_norm"], ["knn_unit"], name="knn_normalise"),
        helper.make_node("MatMul", ["knn_unit", "knn_memory_t"], ["knn_similarity"], name="knn_similarity"),
        helper.make_node(
            "TopK", ["knn_similarity", "knn_k"], ["knn_top", "knn_index"], axis=1, largest=1, sorted=1, name="knn_topk"
        ),
        helper.make_node("Gather", ["knn_votes", "knn_index"], ["knn_neighbour_votes"], axis=0, name="knn_gather"),
        helper.make_node(
            "ReduceMean", ["knn_neighbour_votes"], [PROBABILITIES_OUTPUT], axes=[1], keepdims=0, name="knn_vote"
        ),
    ]
    weights = [
        _constant("knn_epsilon", np.array(1e-12, dtype=np.float32)),
        _constant("knn_memory_t", head.arrays["memory"].T),
        _constant("knn_k", np.array([int(head.params["k"])], dtype=np.int64)),
        _constant("knn_votes", head.arrays["votes"]),
    ]
    return nodes, weights


def head_to_onnx(head: FittedHead) -> onnx.ModelProto:
    """The head as a standalone ONNX model (input ``embedding``, output ``probabilities``)."""
    if head.onnx is not None:
        model = onnx.load_from_string(head.onnx)
        onnx.checker.check_model(model)
        return model
    nodes, weights = _knn_nodes(head) if head.kind == "knn" else _linear_nodes(head)
    graph = helper.make_graph(
        nodes,
        f"hema_{head.kind.replace('-', '_')}_head",
        [helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, ["batch", head.embedding_dim])],
        [helper.make_tensor_value_info(PROBABILITIES_OUTPUT, TensorProto.FLOAT, ["batch", len(head.class_names)])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model
