"""Embedding statistics of a model's training cells, and the per-lab alignment of embeddings onto them.

A model exported by hema records the per-feature mean and standard deviation of its training cells' embeddings
in its ONNX metadata (:data:`STATISTICS_METADATA_KEY`, not in the card: 2 x 1,280 numbers would bury what a
person reads with ``hema-infer info``). At a new lab whose cells' embeddings have mean ``m`` and spread ``s``,
the aligned embedding ``(e - m) / s * spread + mean`` puts them where the training lab's were: the lab's
constant offsets (stain, camera, magnification that the view did not remove) are taken out before the head and
the novelty score see the embedding. :func:`insert_alignment` adds it to a graph as plain operators (Sub, Mul,
Add with folded constants), so every engine runs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from hema.runtime.engines.base import EMBEDDING_OUTPUT

__all__ = ["STATISTICS_METADATA_KEY", "EmbeddingStatistics", "insert_alignment", "read_statistics", "write_statistics"]

STATISTICS_METADATA_KEY = "hema.embedding_statistics"
_SPREAD_FLOOR = 0.1  # a feature's spread is floored at this share of the median spread (as the heads' scaler)


@dataclass(frozen=True)
class EmbeddingStatistics:
    """Per-feature mean and spread of a set of embeddings.

    Attributes:
        mean: ``float64 (dim,)``.
        spread: ``float64 (dim,)`` standard deviation, floored at a tenth of its median (a near-constant feature
            must not be stretched without bound).
        cells: How many embeddings they were computed on.
    """

    mean: np.ndarray
    spread: np.ndarray
    cells: int

    @classmethod
    def of(cls, embeddings: np.ndarray) -> EmbeddingStatistics:
        values = np.asarray(embeddings, dtype=np.float64)
        spread = values.std(axis=0)
        return cls(values.mean(axis=0), np.maximum(spread, _SPREAD_FLOOR * np.median(spread)), len(values))

    def to_json(self) -> str:
        return json.dumps({"mean": self.mean.tolist(), "spread": self.spread.tolist(), "cells": self.cells})

    @classmethod
    def from_json(cls, text: str) -> EmbeddingStatistics:
        raw = json.loads(text)
        return cls(np.asarray(raw["mean"], dtype=np.float64), np.asarray(raw["spread"], dtype=np.float64), raw["cells"])

    def aligned(self, embeddings: np.ndarray, onto: EmbeddingStatistics) -> np.ndarray:
        """``embeddings`` of this lab moved onto the statistics ``onto`` (in float32, as the graph computes)."""
        scale, shift = _affine(self, onto)
        return (np.asarray(embeddings, dtype=np.float32) * scale + shift).astype(np.float32)


def _affine(lab: EmbeddingStatistics, onto: EmbeddingStatistics) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` with ``e * scale + shift == (e - lab.mean) / lab.spread * onto.spread + onto.mean``."""
    scale = onto.spread / lab.spread
    return scale.astype(np.float32), (onto.mean - lab.mean * scale).astype(np.float32)


def write_statistics(model: onnx.ModelProto, statistics: EmbeddingStatistics) -> onnx.ModelProto:
    """Record ``statistics`` in the model's metadata (replacing earlier ones)."""
    kept = [prop for prop in model.metadata_props if prop.key != STATISTICS_METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=STATISTICS_METADATA_KEY, value=statistics.to_json())
    return model


def read_statistics(model: onnx.ModelProto) -> EmbeddingStatistics | None:
    """The training cells' embedding statistics a model records, or ``None`` (models exported before them)."""
    for prop in model.metadata_props:
        if prop.key == STATISTICS_METADATA_KEY:
            return EmbeddingStatistics.from_json(prop.value)
    return None


def insert_alignment(model: onnx.ModelProto, lab: EmbeddingStatistics, onto: EmbeddingStatistics) -> onnx.ModelProto:
    """Make the graph's ``embedding`` the aligned one (:meth:`EmbeddingStatistics.aligned`), for every consumer.

    The node that produced ``embedding`` now produces ``alignment/raw``; a Mul and an Add turn it into
    ``embedding`` (``alignment_2/...`` and so on when a model is onboarded again), so the head, the novelty
    score and the ``embedding`` output all see aligned embeddings.
    Changed in place and returned.
    """
    graph = model.graph
    producer = next((node for node in graph.node if EMBEDDING_OUTPUT in node.output), None)
    if producer is None:
        raise ValueError(f"the graph computes no {EMBEDDING_OUTPUT!r}")
    scale, shift = _affine(lab, onto)
    earlier = sum(node.name.endswith("/shift") and node.name.startswith("alignment") for node in graph.node)
    prefix = "alignment" if earlier == 0 else f"alignment_{earlier + 1}"  # a model onboarded again
    raw = f"{prefix}/raw"
    producer.output[list(producer.output).index(EMBEDDING_OUTPUT)] = raw
    position = list(graph.node).index(producer) + 1
    nodes = [
        helper.make_node("Mul", [raw, f"{prefix}/scale"], [f"{prefix}/scaled"], name=f"{prefix}/scale"),
        helper.make_node("Add", [f"{prefix}/scaled", f"{prefix}/shift"], [EMBEDDING_OUTPUT], name=f"{prefix}/shift"),
    ]
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)
    graph.initializer.extend(
        [numpy_helper.from_array(scale, name=f"{prefix}/scale"), numpy_helper.from_array(shift, name=f"{prefix}/shift")]
    )
    onnx.checker.check_model(model)
    return model
