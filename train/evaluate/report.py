"""``hema-train evaluate``'s work: one backbone, two labs, every figure and number of the evaluation report.

Embeddings of both labs are extracted once and reused by every section:

1. few-shot learning curves on the training lab (:mod:`hema.train.evaluate.learning_curves`);
2. the cross-domain table on the classes both labs share (:mod:`hema.train.evaluate.cross_domain`,
   :mod:`hema.train.data.domains`);
3. a UMAP map of both labs (:mod:`hema.train.evaluate.embedding_map`);
4. confusion matrices of the all-labels logistic-regression heads;
5. saliency maps of test cells (:mod:`hema.train.evaluate.saliency`);
6. ``report.md`` and ``report.json`` (:mod:`hema.train.evaluate.markdown`).

Splits are hema's fixed content-hash split (:func:`hema.train.data.folders.split_of`) of each folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hema.train.data.domains import KNOWN_MAPPINGS, ClassMapping, map_classes, restrict_to_shared
from hema.train.data.folders import LabelledImages, find_labelled_images, split_of
from hema.train.evaluate.cross_domain import cross_domain, cross_domain_markdown
from hema.train.evaluate.embedding_map import UMAP_SETTINGS, subsample_by_lab, umap_projection
from hema.train.evaluate.figures import plot_embedding_map, plot_learning_curves
from hema.train.evaluate.learning_curves import ALL_LABELS, curves_markdown, learning_curves
from hema.train.evaluate.markdown import render_report
from hema.train.evaluate.metrics import plot_confusion_matrix
from hema.train.evaluate.saliency import saliency_section
from hema.train.fewshot.draws import FewShotResult, run_fewshot
from hema.train.fewshot.features import FeatureExtractor, open_feature_extractor
from hema.train.fewshot.heads import HeadConfig

__all__ = ["EvaluationConfig", "run_evaluation"]


@dataclass(frozen=True)
class EvaluationConfig:
    """What to evaluate and how.

    Attributes:
        data: The training lab, ``DATA/<class>/<image>`` (learning curves, heads, saliency).
        cross_domain: A second lab, same layout (cross-domain table, UMAP).
        out: Folder for the report.
        backbone: ``"default"``, an ``.onnx`` file, a timm name or a checkpoint (as ``hema-train fewshot``).
        arch: timm architecture of a checkpoint that does not name it.
        heads: Head kinds of the learning curves.
        shots: Labels per class of the learning curves (an all-labels point is added).
        repeats: Draws per learning-curve point.
        umap_cells: Cells in the UMAP map, shared between the labs.
        saliency_per_class: Test cells per class in the saliency grid (0: none).
        seed: Seed of draws, subsamples and UMAP.
        image_size: Input side of torch backbones.
        batch_size: Images per forward pass.
        device: ``auto``, ``cpu`` or ``cuda`` (torch backbones).
    """

    data: Path
    cross_domain: Path
    out: Path
    backbone: str = "default"
    arch: str | None = None
    heads: tuple[str, ...] = ("lr", "linear-svm", "knn")
    shots: tuple[int, ...] = (1, 2, 5, 10, 20, 50)
    repeats: int = 5
    umap_cells: int = 2000
    saliency_per_class: int = 4
    seed: int = 0
    image_size: int = 224
    batch_size: int = 64
    device: str = "auto"

    def __post_init__(self) -> None:
        for kind in self.heads:
            HeadConfig(kind=kind)  # raises on an unknown head
        if self.repeats < 1 or not self.shots or min(self.shots) < 1:
            raise ValueError(f"repeats and every shot must be at least 1 (got {self.repeats}, {self.shots})")


@dataclass(frozen=True)
class _Lab:
    """One lab's cells, their embeddings and which of them are in the test split."""

    name: str
    folder: Path
    cells: LabelledImages
    features: np.ndarray
    test: np.ndarray

    def part(self, test: bool) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings and labels of the test (or train) split."""
        mask = self.test if test else ~self.test
        return self.features[mask], self.cells.labels[mask]

    def summary(self) -> dict[str, Any]:
        """Folder and cells per class in each split, for the report."""
        names, labels = self.cells.class_names, self.cells.labels
        return {
            "folder": str(self.folder),
            "train": {name: int((labels[~self.test] == i).sum()) for i, name in enumerate(names)},
            "test": {name: int((labels[self.test] == i).sum()) for i, name in enumerate(names)},
        }


def _open_labs(config: EvaluationConfig) -> tuple[LabelledImages, LabelledImages]:
    source, target = find_labelled_images(config.data), find_labelled_images(config.cross_domain)
    train_labels = source.labels[[split_of(path) == "train" for path in source.paths]]
    missing = [name for i, name in enumerate(source.class_names) if not (train_labels == i).any()]
    if missing:
        raise ValueError(f"{config.data}: no train-split cell of {missing}")
    return source, target


def _embed(extractor: FeatureExtractor, folder: Path, cells: LabelledImages) -> _Lab:
    name = folder.resolve().name
    test = np.array([split_of(path) == "test" for path in cells.paths])
    return _Lab(name, folder, cells, extractor(cells.paths, desc=f"{name} features"), test)


@contextmanager
def _clock(seconds: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall-clock seconds of a step."""
    started = time.perf_counter()
    yield
    seconds[step] = round(time.perf_counter() - started, 1)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _curves_section(config: EvaluationConfig, source: _Lab, title: str) -> tuple[dict[str, Any], str, FewShotResult]:
    """Learning curves (PNG, MD, JSON) and the all-labels LR head with its confusion matrix."""
    names, out = source.cells.class_names, config.out
    (train_x, train_y), (test_x, test_y) = source.part(test=False), source.part(test=True)
    curves = learning_curves(
        train_x, train_y, names, test_x, test_y, config.heads, config.shots, config.repeats, config.seed
    )
    lr_all = curves.all_labels.get("lr") or run_fewshot(
        train_x, train_y, names, test_x, test_y, HeadConfig(kind="lr", seed=config.seed), ALL_LABELS, 1
    )
    plot_learning_curves(curves, f"{title} on {source.name}", out / "learning_curves.png")
    table = curves_markdown(curves)
    _write(out / "learning_curves.md", table)
    entry = {"heads": list(curves.heads), "shots": list(curves.shots), "rows": curves.rows}
    _write(out / "learning_curves.json", json.dumps(entry, indent=2) + "\n")
    confusion = np.array(lr_all.metrics["confusion_matrix"])
    plot_confusion_matrix(
        confusion, names, f"lr, all labels, {source.name} test", out / f"confusion_{source.name}_test.png"
    )
    return {**entry, "file": "learning_curves.png", "table": "learning_curves.md"}, table, lr_all


def _cross_domain_section(
    config: EvaluationConfig, source: _Lab, target: _Lab, mapping: ClassMapping
) -> tuple[dict[str, Any], str, dict[str, str]]:
    """The cross-domain table and its two shared-class confusion matrices."""
    shared, names = mapping.shared, source.cells.class_names
    (train_x, train_y), (test_x, test_y) = source.part(test=False), source.part(test=True)
    train_idx, train_shared = restrict_to_shared(train_y, names, shared)
    test_idx, test_shared = restrict_to_shared(test_y, names, shared)
    target_idx, target_y = restrict_to_shared(
        target.cells.labels, target.cells.class_names, shared, mapping.target_to_source
    )
    in_test = target.test[target_idx]
    evaluations = {
        f"{source.name} test": (test_x[test_idx], test_shared),
        f"{target.name} test": (target.features[target_idx[in_test]], target_y[in_test]),
        f"{target.name} all (no {target.name} cell is used for fitting)": (target.features[target_idx], target_y),
    }
    result = cross_domain(train_x[train_idx], train_shared, shared, evaluations)
    files = {f"{source.name} test (all classes)": f"confusion_{source.name}_test.png"}
    for lab in (source.name, target.name):
        file = f"confusion_{lab}_test_shared.png"
        confusion = np.array(result.scores[f"{lab} test"]["confusion_matrix"])
        plot_confusion_matrix(
            confusion, shared, f"lr on {source.name} train, {lab} test, shared classes", config.out / file
        )
        files[f"{lab} test (shared classes)"] = file
    table = cross_domain_markdown(result)
    _write(config.out / "cross_domain.md", table)
    entry = {
        "head": "lr, all train cells of the shared classes",
        "shared_classes": list(shared),
        "class_mapping": mapping.target_to_source,
        "source_only_classes": list(mapping.source_only),
        "target_only_classes": list(mapping.target_only),
        "train_cells": result.train_cells,
        "results": result.scores,
    }
    return entry, table, files


def _umap_section(config: EvaluationConfig, source: _Lab, target: _Lab, mapping: ClassMapping, title: str) -> dict:
    """The two-panel UMAP map of a subsample balanced between the labs (target classes under source names)."""
    labs = np.repeat([0, 1], [len(source.cells), len(target.cells)])
    target_names = [mapping.target_to_source.get(name, name) for name in target.cells.class_names]
    classes = [source.cells.class_names[i] for i in source.cells.labels] + [
        target_names[i] for i in target.cells.labels
    ]
    chosen = subsample_by_lab(labs, config.umap_cells, np.random.default_rng(config.seed))
    points = umap_projection(np.concatenate([source.features, target.features])[chosen], config.seed)
    lab_names = [(source.name, target.name)[lab] for lab in labs[chosen]]
    plot_embedding_map(
        points, [classes[i] for i in chosen], lab_names, f"UMAP of {title} embeddings", config.out / "umap.png"
    )
    counts = np.bincount(labs[chosen], minlength=2)
    return {
        "file": "umap.png",
        "cells": {source.name: int(counts[0]), target.name: int(counts[1])},
        "settings": {**UMAP_SETTINGS, "random_state": config.seed},
    }


def run_evaluation(config: EvaluationConfig, command: str = "") -> dict[str, Any]:
    """Evaluate the backbone, write every file into ``config.out`` and return the report (``report.json``).

    Args:
        config: What to evaluate.
        command: The command line, recorded in the report.

    Raises:
        FileNotFoundError: If a data folder is missing.
        ValueError: If the labs share no class, a class has no train cell, or a setting is invalid.
    """
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    source_cells, target_cells = _open_labs(config)
    mapping = map_classes(
        source_cells.class_names, target_cells.class_names, KNOWN_MAPPINGS.get(config.cross_domain.resolve().name)
    )
    config.out.mkdir(parents=True, exist_ok=True)
    extractor = open_feature_extractor(
        config.backbone,
        arch=config.arch,
        image_size=config.image_size,
        batch_size=config.batch_size,
        device=config.device,
    )
    title = f"{extractor.description.get('arch', config.backbone)} ({extractor.description.get('source', '')})"

    with _clock(seconds, "feature_extraction"):
        source = _embed(extractor, config.data, source_cells)
        target = _embed(extractor, config.cross_domain, target_cells)
    with _clock(seconds, "learning_curves"):
        curves, curves_table, lr_all = _curves_section(config, source, title)
    with _clock(seconds, "cross_domain"):
        domains, domains_table, confusion_files = _cross_domain_section(config, source, target, mapping)
    with _clock(seconds, "umap"):
        umap_entry = _umap_section(config, source, target, mapping, title)
    with _clock(seconds, "saliency"):
        test_x, test_y = source.part(test=True)
        test_paths = [source.cells.paths[i] for i in np.flatnonzero(source.test)]
        saliency = saliency_section(
            extractor, lr_all.head, test_paths, test_y, test_x, config.saliency_per_class, config.seed,
            config.out / "saliency.png", config.device,
        )  # fmt: skip
    seconds["total"] = round(time.perf_counter() - started, 1)
    report = {
        "command": command,
        "config": {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()},
        "backbone": extractor.description,
        "data": {source.name: source.summary(), target.name: target.summary()},
        "learning_curves": curves,
        "all_labels_lr": {key: lr_all.metrics[key] for key in ("balanced_accuracy", "macro_f1", "per_class_recall")},
        "cross_domain": domains,
        "umap": umap_entry,
        "confusion_matrices": confusion_files,
        "saliency": saliency,
        "seconds": seconds,
    }
    _write(config.out / "report.json", json.dumps(report, indent=2) + "\n")
    _write(config.out / "report.md", render_report(report, curves_table, domains_table))
    return report
