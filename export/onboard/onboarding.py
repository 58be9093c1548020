"""Onboard a hema model to a lab: embed its cells, adapt (:mod:`.adaptation`), write and check the new model.

The onboarded model is one self-contained ONNX file like every hema model: the base model's preprocessing and
backbone, the lab's alignment of the embedding (:func:`hema.export.graph.alignment.insert_alignment`), the
head (refitted on the lab's labelled cells, or the base model's), the novelty score with the lab's centroids
and a card whose review thresholds are the lab's. Before it is written, its outputs on the lab's cells are held
against the numpy computation of the same decisions (:func:`_check_parity`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from onnx.utils import Extractor

import hema
from hema.cli_support import command_line
from hema.export.fused_model import backbone_graph, save_fused_model
from hema.export.graph.alignment import EmbeddingStatistics, insert_alignment, read_statistics, write_statistics
from hema.export.graph.fuse import attach_card, fuse_backbone_and_head, read_card
from hema.export.graph.head import head_engines, head_to_onnx
from hema.export.graph.novelty import attach_novelty
from hema.export.onboard.adaptation import Adaptation, LabEmbeddings, OnboardSettings, adapt_to_lab
from hema.export.onboard.lab_cells import EmbeddedCells, embed_cells, read_labelled_folder
from hema.runtime.card import ModelCard
from hema.runtime.engines.base import EMBEDDING_OUTPUT, NOVELTY_OUTPUT, PROBABILITIES_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.manifest import read_artifact
from hema.runtime.preprocessing import load_cell_image
from hema.runtime.review import ReviewPolicy
from hema.train.fewshot.features import FeatureExtractor

__all__ = ["Onboarded", "base_centroids", "decision_outputs", "onboard", "onboarded_graph"]

_PARITY_CELLS = 64
_PARITY_TOLERANCE = 1e-4
_CENTROIDS = "novelty/centroids_t"


@dataclass(frozen=True)
class Onboarded:
    """An onboarding: the model written and the figures of its report (:mod:`.report`)."""

    model_path: Path
    card: ModelCard
    report: dict[str, Any]


def base_centroids(model: onnx.ModelProto) -> np.ndarray | None:
    for tensor in model.graph.initializer:
        if tensor.name == _CENTROIDS:
            return numpy_helper.to_array(tensor).T.copy()
    return None


def decision_outputs(model: onnx.ModelProto, embeddings: np.ndarray) -> dict[str, np.ndarray]:
    """Probabilities and novelty the model's graph gives for ``embeddings`` (the part after ``embedding``)."""
    outputs = [output.name for output in model.graph.output if output.name != EMBEDDING_OUTPUT]
    tail = Extractor(model).extract_model([EMBEDDING_OUTPUT], outputs)
    session = ort.InferenceSession(tail.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run(outputs, {EMBEDDING_OUTPUT: np.ascontiguousarray(embeddings, dtype=np.float32)})
    return dict(zip(outputs, values))


def _flag_shares(outputs: dict[str, np.ndarray], review: dict[str, Any], card: ModelCard) -> dict[str, Any]:
    """What the review flags and the labels say of a lab's cells under a model's thresholds."""
    policy = ReviewPolicy.from_card(replace(card, review=review), tuple(outputs))
    probabilities = outputs[PROBABILITIES_OUTPUT]
    novelty = outputs.get(NOVELTY_OUTPUT)
    unknown = (novelty > policy.novelty_threshold) if novelty is not None and policy.novelty_threshold else None
    low = probabilities.max(axis=1) < (policy.confidence_threshold or 0.0)
    predicted = np.bincount(probabilities.argmax(axis=1), minlength=len(card.class_names)) / len(probabilities)
    return {
        "cells": len(probabilities),
        "flagged_unknown_cell_type": None if unknown is None else round(float(unknown.mean()), 4),
        "flagged_low_confidence": round(float(low.mean()), 4),
        "mean_novelty": None if novelty is None else round(float(np.mean(novelty)), 4),
        "novelty_threshold": policy.novelty_threshold,
        "predicted_share": {name: round(float(share), 4) for name, share in zip(card.class_names, predicted)},
    }


def _head_origin(adaptation: Adaptation, lab: LabEmbeddings) -> str:
    if adaptation.head is None:
        return "the base model's"
    if lab.labels:
        return "logistic regression refitted on the lab's labelled cells"
    return "logistic regression refitted on the base model's surest predictions of the lab's cells (pseudo-labels)"


def onboarded_graph(base: onnx.ModelProto, engine: OnnxRuntimeEngine, adaptation: Adaptation) -> onnx.ModelProto:
    statistics = read_statistics(base)
    if adaptation.head is None:
        model = onnx.ModelProto()
        model.CopyFrom(base)
    else:
        backbone, _ = backbone_graph(FeatureExtractor({}, onnx_engine=engine))
        model = fuse_backbone_and_head(backbone, head_to_onnx(adaptation.head))
    if adaptation.lab_statistics is not None and statistics is not None:
        model = insert_alignment(model, adaptation.lab_statistics, statistics)
    if adaptation.head is not None:
        model = attach_novelty(model, adaptation.centroids)
    return write_statistics(model, statistics) if statistics is not None else model


def _check_parity(
    path: Path, base_cells: EmbeddedCells, adaptation: Adaptation, onto: EmbeddingStatistics | None
) -> float:
    """Largest difference between the written model and numpy (alignment, then the head) on the lab's cells."""
    engine = OnnxRuntimeEngine(path)
    paths = base_cells.paths[:_PARITY_CELLS]
    outputs = engine.run(np.stack([load_cell_image(p, engine.card.input) for p in paths]))
    expected = adaptation.align(base_cells.embeddings[: len(paths)], onto)
    worst = float(np.abs(outputs[EMBEDDING_OUTPUT] - expected).max() / max(1.0, np.abs(expected).max()))
    if adaptation.head is not None:
        worst = max(worst, float(np.abs(outputs[PROBABILITIES_OUTPUT] - adaptation.head.predict_proba(expected)).max()))
    if worst > _PARITY_TOLERANCE:
        raise RuntimeError(f"the onboarded model differs from its computation by {worst:.2e}: not written")
    return worst


def onboard(
    *,
    cells: list[Path],
    out: Path,
    model: Path,
    labelled: Path | None = None,
    settings: OnboardSettings | None = None,
    batch_size: int = 32,
) -> Onboarded:
    """Onboard ``model`` to a lab from its unlabelled ``cells`` and optional ``labelled`` cells into ``out``.

    Raises:
        ValueError: Bad input the user can fix (an unknown class folder, too few cells), with the reason.
        hema.runtime.engines.base.ModelError: If the base model cannot be loaded or fails its manifest check.
    """
    from hema.runtime.discovery import find_cell_images

    started = time.monotonic()
    settings = settings or OnboardSettings()
    checked = read_artifact(model)  # the bytes verified are the bytes used
    base = onnx.load_from_string(checked.files[".onnx"])
    base_card = read_card(base)
    engine = OnnxRuntimeEngine(model, artifact=checked)
    engine.require_classifier()
    folder = read_labelled_folder(labelled, base_card.class_names) if labelled is not None else None
    found = find_cell_images(cells)
    if not found.rows:
        raise ValueError(f"no cell images found in {', '.join(map(str, cells))}")
    unlabelled = embed_cells(
        engine, found.images, "unlabelled cells", unreadable=found.unreadable, batch_size=batch_size
    )
    known = embed_cells(
        engine, folder.files if folder else (), "labelled cells", unreadable=folder.unreadable if folder else None
    )
    class_of = dict(zip(folder.files, folder.class_names)) if folder else {}
    statistics = read_statistics(base)
    lab = LabEmbeddings(
        unlabelled=unlabelled.embeddings,
        labelled=known.embeddings,
        labels=tuple(class_of[path] for path in known.paths),
        base_classes=base_card.class_names,
        base_statistics=statistics,
        base_centroids=base_centroids(base),
        unlabelled_probabilities=unlabelled.probabilities,
    )
    adaptation = adapt_to_lab(lab, settings)
    graph = onboarded_graph(base, engine, adaptation)
    classes = adaptation.head.class_names if adaptation.head is not None else base_card.class_names
    review = {
        "confidence_threshold": adaptation.confidence_threshold
        if adaptation.confidence_threshold is not None
        else base_card.review.get("confidence_threshold"),
        "novelty_threshold": adaptation.novelty_threshold,
        "rule": "'unknown cell type' when the graph output novelty (1 - cosine similarity of the embedding to "
        "the nearest class centroid) is above novelty_threshold; 'low confidence' when the top-class probability "
        "is below confidence_threshold",
        "calibrated_on": "the lab's cells at onboarding (training_data.onboarding)",
        "unknown_share": settings.unknown_share,
    }
    before = _flag_shares(
        {PROBABILITIES_OUTPUT: unlabelled.probabilities, NOVELTY_OUTPUT: unlabelled.novelty},
        base_card.review,
        base_card,
    )
    card = replace(base_card, class_names=classes, review=review)
    after = _flag_shares(decision_outputs(graph, adaptation.align(unlabelled.embeddings, statistics)), review, card)
    onboarding = {
        "base_model": {"path": str(model), "sha256": checked.sha256[".onnx"], "created": base_card.created},
        "unlabelled_cells": {"read": len(unlabelled.paths), "skipped": unlabelled.skipped_reasons()},
        "labelled_cells": {
            "read": {name: lab.labels.count(name) for name in base_card.class_names if name in lab.labels},
            "skipped": known.skipped_reasons(),
        },
        "adapted": {
            "alignment": "embedding moved onto the base model's training-cell statistics (unlabelled cells)"
            if adaptation.lab_statistics is not None
            else ("not done: the base model records no embedding statistics" if statistics is None else "off"),
            "head": _head_origin(adaptation, lab),
            "classes": list(classes),
            "unknown_cell_threshold": "recalibrated on the lab's cells",
            "confidence_threshold": "recalibrated on the lab's labelled cells (out of fold)"
            if adaptation.confidence_threshold is not None
            else "the base model's",
        },
        "shift": {"before": before, "after": after},
        "estimate_at_lab": adaptation.estimate,
        "settings": asdict(settings),
    }
    card = replace(
        card,
        head={"kind": "lr", "params": adaptation.head.params, "labels_per_class": None}
        if adaptation.head
        else base_card.head,
        engines=head_engines(adaptation.head) if adaptation.head else base_card.engines,
        training_data={**base_card.training_data, "onboarding": onboarding},
        metrics={"estimate_at_lab": adaptation.estimate} if adaptation.estimate else base_card.metrics,
        hema_version=hema.__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        provenance={**base_card.provenance, "onboard": command_line()},
    )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    save_fused_model(attach_card(graph, card), path)
    onboarding["parity_max_difference"] = _check_parity(path, unlabelled, adaptation, statistics)
    onboarding["seconds"] = round(time.monotonic() - started, 1)
    return Onboarded(path, card, onboarding)
