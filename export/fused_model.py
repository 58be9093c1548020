"""Build the single self-contained ONNX file hema runs: preprocessing + backbone + head + softmax + card.

A classifier also gets its review flags: the ``novelty`` output and the card's ``review`` thresholds, calibrated
on held-back cells of the head's training split (:mod:`hema.export.review.thresholds`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import onnx
from onnx.utils import Extractor

import hema
from hema.cli_support import command_line
from hema.export.graph.alignment import write_statistics
from hema.export.graph.backbone import backbone_to_onnx
from hema.export.graph.fuse import attach_card, fuse_backbone_and_head
from hema.export.graph.head import head_engines, head_to_onnx
from hema.export.graph.novelty import attach_novelty
from hema.export.graph.parity import ParityReport, check_parity, parity_images
from hema.export.review.thresholds import calibrate_review
from hema.runtime.card import InputSpec, ModelCard
from hema.runtime.engines.base import EMBEDDING_OUTPUT, IMAGE_INPUT
from hema.runtime.manifest import write_manifest
from hema.train.fewshot.features import FeatureExtractor, open_feature_extractor
from hema.train.fewshot.heads import FittedHead

__all__ = [
    "ExportResult",
    "backbone_graph",
    "export_backbone",
    "export_classifier",
    "head_backbone_spec",
    "save_fused_model",
]


@dataclass(frozen=True)
class ExportResult:
    """An export that passed its parity check."""

    path: Path
    card: ModelCard
    parity: ParityReport
    size_bytes: int


def head_backbone_spec(head: FittedHead) -> str:
    """The backbone a head was fitted on, as a ``--backbone`` value."""
    backbone = head.metadata.get("backbone", {})
    if "onnx" in backbone:
        return backbone["onnx"]
    if backbone.get("source") not in (None, "imagenet", "scratch"):
        return backbone["source"]
    if "arch" in backbone:
        return backbone["arch"]
    raise ValueError("the head does not record its backbone: pass --backbone")


def backbone_graph(extractor: FeatureExtractor) -> tuple[onnx.ModelProto, InputSpec]:
    """The ``image -> embedding`` graph of a backbone and the input it expects."""
    if extractor.onnx_engine is not None:
        source = onnx.load(str(extractor.onnx_engine.path))
        graph = Extractor(source).extract_model([IMAGE_INPUT], [EMBEDDING_OUTPUT])
        graph.ir_version = source.ir_version
        del graph.opset_import[:]
        graph.opset_import.extend(source.opset_import)
        return graph, extractor.onnx_engine.card.input
    return backbone_to_onnx(extractor.torch_backbone), extractor.torch_backbone.info.input_spec()


def _created() -> str:
    """Export time, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return moment.replace(microsecond=0).isoformat()


def _card_metrics(head_dir: Path) -> dict[str, Any]:
    path = head_dir / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text(encoding="utf-8"))
    keep = ("balanced_accuracy", "macro_f1", "accuracy", "per_class_recall", "labels_per_class", "repeats")
    return {**{key: metrics[key] for key in keep if key in metrics}, "evaluated_on": metrics.get("eval_data")}


def save_fused_model(model: onnx.ModelProto, out: Path) -> bytes:
    """Write a fused model as one file (weights inline, never external data) with its sha256 manifest."""
    data = model.SerializeToString()  # one file: weights inline, never external data
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    write_manifest(out, "onnx", [out])
    return data


def export_classifier(
    head_dir: Path,
    out: Path,
    *,
    backbone: str | None = None,
    arch: str | None = None,
    parity_data: Path | None = None,
    review_data: Path | None = None,
) -> ExportResult:
    """Fuse backbone and head into ``out`` with calibrated review flags; write it only if parity passes.

    Args:
        head_dir: Output folder of ``hema-train fewshot``.
        out: The ``.onnx`` file to write.
        backbone: Backbone spec; default: the one the head was fitted on.
        arch: timm architecture for checkpoints that do not name it.
        parity_data: Labelled cell folder to check parity on; default: the head's training folder.
        review_data: Labelled cell folder to calibrate the review flags on (the head's recorded split of it);
            default: the head's training folder.

    Raises:
        ValueError: If backbone and head do not fit together, or the review calibration cells are missing.
        hema.export.graph.parity.ParityError: If the export does not reproduce torch + scikit-learn.
    """
    head = FittedHead.load(head_dir)
    extractor = open_feature_extractor(backbone or head_backbone_spec(head), arch=arch, device="cpu")
    dim = extractor.description.get("embedding_dim")
    if dim is not None and dim != head.embedding_dim:
        raise ValueError(f"backbone gives {dim}-dimensional embeddings, the head takes {head.embedding_dim}")
    graph, spec = backbone_graph(extractor)
    card = ModelCard(
        class_names=head.class_names,
        input=spec,
        backbone=extractor.description,
        head={"kind": head.kind, "params": head.params, "labels_per_class": head.metadata.get("labels_per_class")},
        training_data=head.metadata.get("training_data", {}),
        metrics=_card_metrics(head_dir),
        hema_version=hema.__version__,
        created=_created(),
        engines=head_engines(head),
        provenance={"head": head.metadata.get("command"), "export": command_line()},
    )
    model = attach_card(fuse_backbone_and_head(graph, head_to_onnx(head)), card)
    review = calibrate_review(model, head, review_data)
    model = write_statistics(attach_novelty(model, review.centroids), review.statistics)
    card = replace(card, review=review.card_entry)
    folder = parity_data or Path(head.metadata.get("training_data", {}).get("folder", ""))
    report = check_parity(model.SerializeToString(), parity_images(folder), extractor, head.predict_proba)
    card = replace(card, metrics={**card.metrics, "export_parity": report.to_dict()})
    data = save_fused_model(attach_card(model, card), out)
    return ExportResult(out, card, report, len(data))


def export_backbone(
    backbone: str, out: Path, *, parity_data: Path, arch: str | None = None, image_size: int | None = None
) -> ExportResult:
    """Export a backbone alone (output ``embedding``) for ``hema-train fewshot --backbone FILE.onnx``."""
    extractor = open_feature_extractor(backbone, arch=arch, image_size=image_size, device="cpu")
    graph, spec = backbone_graph(extractor)
    card = ModelCard(
        class_names=(),
        input=spec,
        backbone=extractor.description,
        hema_version=hema.__version__,
        created=_created(),
        engines=("onnxruntime", "openvino", "tensorrt"),
        provenance={"export": command_line()},
    )
    model = attach_card(graph, card)
    report = check_parity(model.SerializeToString(), parity_images(parity_data), extractor, None)
    card = replace(card, metrics={"export_parity": report.to_dict()})
    data = save_fused_model(attach_card(model, card), out)
    return ExportResult(out, card, report, len(data))
