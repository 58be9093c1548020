"""Unknown cells by leave-one-class-out on PBC: each class in turn left out of fine-tuning and of every head.

For each left-out class a backbone is fine-tuned on PBC's train split without it, with the default model's
recipe (cell view, lab-shift augmentation, 160 px) but fewer epochs (``--epochs``, default 3; the default model
has 8). Its embeddings of PBC's train split (the known classes: what a head and the scores are fitted on), of
PBC's test split (known cells to be left alone) and of every cell of the left-out class (the unknown cells, none
seen in training) then score the candidate unknown-cell scores:

* ``centroid``: 1 - cosine similarity to the nearest class centroid (what hema's graph computes: ``novelty``);
* ``knn``: 1 - mean cosine similarity to the 10 nearest training embeddings;
* ``mahalanobis``: distance to the nearest class mean under a shared, shrunk (Ledoit-Wolf) covariance, on
  standardised embeddings;
* ``max_probability``: 1 - the top-class probability of a logistic-regression head (what ``low confidence``
  uses).

Reported per left-out class and score: ROC AUC (unknown vs known test cells) and the share of unknown cells
flagged at the thresholds that flag 10 % and 20 % of known test cells; then the mean and the worst class.
Checkpoints are kept in ``--runs`` and reused, so a second run only scores.

    .venv/bin/python benchmarks/unknown_cells.py --data ../shared/data/pbc --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from hema.train.data.folders import find_labelled_images
from hema.train.fewshot.features import open_feature_extractor
from hema.train.fewshot.heads import HeadConfig, fit_head, l2_normalise

CLASSES = ("basophil", "erythroblast", "ig", "monocyte", "eosinophil", "lymphocyte", "neutrophil", "platelet")
SHARES = (0.10, 0.20)


def _fine_tune(data: Path, left_out: str, run: Path, epochs: int) -> Path:
    """Fine-tune without ``left_out`` (a folder of symlinks to the other classes); returns ``best.pt``."""
    best = run / "best.pt"
    if best.is_file():
        return best
    with tempfile.TemporaryDirectory() as temporary:
        known = Path(temporary) / "known"
        known.mkdir()
        for folder in sorted(data.iterdir()):
            if folder.is_dir() and folder.name != left_out:
                os.symlink(folder.resolve(), known / folder.name)
        command = [
            sys.executable, "-m", "hema.train.cli", "supervised", "--data", str(known), "--out", str(run),
            "--view", "cell", "--lab-shift", "--image-size", "160", "--epochs", str(epochs), "--batch-size", "32",
            "--workers", "1",
        ]  # fmt: skip
        subprocess.run(command, check=True)
    return best


def _auroc(known: np.ndarray, unknown: np.ndarray) -> float:
    """P(unknown score > known score), ties counted half (the Mann-Whitney form of ROC AUC)."""
    scores = np.concatenate([known, unknown])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="stable")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[len(known) :].sum() - len(unknown) * (len(unknown) + 1) / 2) / (len(known) * len(unknown)))


def _scores(train: np.ndarray, labels: np.ndarray, names: tuple[str, ...], cells: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.covariance import LedoitWolf

    classes = len(names)
    unit_train, unit = l2_normalise(train.astype(np.float64)), l2_normalise(cells.astype(np.float64))
    centroids = l2_normalise(np.stack([unit_train[labels == c].mean(axis=0) for c in range(classes)]))
    similarity = unit @ unit_train.T
    nearest = -np.sort(-similarity, axis=1)[:, :10]
    mean, spread = train.mean(axis=0), train.std(axis=0) + 1e-6
    standard_train, standard = (train - mean) / spread, (cells - mean) / spread
    class_means = np.stack([standard_train[labels == c].mean(axis=0) for c in range(classes)])
    residuals = standard_train - class_means[labels]
    precision = LedoitWolf().fit(residuals).precision_
    distances = np.stack([np.einsum("ij,jk,ik->i", standard - m, precision, standard - m) for m in class_means], axis=1)
    head = fit_head(train, labels, names, HeadConfig(kind="lr"))
    return {
        "centroid": 1 - (unit @ centroids.T).max(axis=1),
        "knn": 1 - nearest.mean(axis=1),
        "mahalanobis": np.sqrt(distances.min(axis=1)),
        "max_probability": 1 - head.predict_proba(cells).max(axis=1),
    }


def _left_out_figures(data: Path, left_out: str, runs: Path, epochs: int) -> dict[str, dict[str, float]]:
    checkpoint = _fine_tune(data, left_out, runs / f"loco-{left_out}", epochs)
    extract = open_feature_extractor(str(checkpoint), device="cpu", workers=2)
    train, test = find_labelled_images(data, "train"), find_labelled_images(data, "test")
    index = train.class_names.index(left_out)
    known_names = tuple(name for name in train.class_names if name != left_out)
    fit = train.labels != index
    fit_labels = np.array([known_names.index(train.class_names[label]) for label in train.labels[fit]])
    unknown_paths = [p for p, label in zip(train.paths, train.labels) if label == index]
    unknown_paths += [p for p, label in zip(test.paths, test.labels) if label == index]
    known_paths = [p for p, label in zip(test.paths, test.labels) if label != index]
    features = extract([p for p, keep in zip(train.paths, fit) if keep], desc=f"{left_out}: known train")
    known = _scores(features, fit_labels, known_names, extract(known_paths, desc="known test"))
    unknown = _scores(features, fit_labels, known_names, extract(unknown_paths, desc="unknown"))
    figures = {"product_rule": _product_rule(known, unknown)}
    for name in known:
        entry = {"auroc": round(_auroc(known[name], unknown[name]), 4), "unknown_cells": len(unknown_paths)}
        for share in SHARES:
            threshold = np.percentile(known[name], 100 * (1 - share))
            entry[f"flagged_at_{round(100 * share)}pct_known"] = round(float(np.mean(unknown[name] > threshold)), 4)
        figures[name] = entry
    return figures


def _product_rule(known: dict[str, np.ndarray], unknown: dict[str, np.ndarray]) -> dict[str, float]:
    """hema's two flags together: ``unknown cell type`` (centroid novelty) or ``low confidence`` (top-class
    probability), each at the threshold that flags 10 % of known cells."""
    flagged = {}
    for part, scores in (("known", known), ("unknown", unknown)):
        either = np.zeros(len(scores["centroid"]), dtype=bool)
        for name in ("centroid", "max_probability"):
            either |= scores[name] > np.percentile(known[name], 90)
        flagged[part] = round(float(either.mean()), 4)
    return {"known_flagged": flagged["known"], "unknown_flagged": flagged["unknown"]}


def _markdown(results: dict[str, dict[str, dict[str, float]]], epochs: int) -> str:
    scores = [name for name in next(iter(results.values())) if name != "product_rule"]
    lines = [
        "# Unknown cells: leave-one-class-out on PBC",
        "",
        f"Each class left out of fine-tuning ({epochs} epochs, cell view, lab shifts, 160 px) and of every head; "
        "unknown = every cell of it, known = PBC test cells of the other classes. AUROC, and the share of unknown "
        "cells flagged when 10 % / 20 % of known cells are.",
        "",
        "| left out | " + " | ".join(f"{s} AUROC | {s} @10 % | {s} @20 %" for s in scores) + " |",
        "|---|" + "--:|" * 3 * len(scores),
    ]
    for left_out, figures in results.items():
        cells = [
            f"{figures[s]['auroc']:.3f} | {figures[s]['flagged_at_10pct_known']:.0%} | "
            f"{figures[s]['flagged_at_20pct_known']:.0%}"
            for s in scores
        ]
        lines.append(f"| {left_out} ({figures[scores[0]]['unknown_cells']}) | " + " | ".join(cells) + " |")
    for label, reduce in (("mean", np.mean), ("worst", np.min)):
        cells = [
            " | ".join(
                f"{reduce([f[s][key] for f in results.values()]):.3f}"
                if key == "auroc"
                else f"{reduce([f[s][key] for f in results.values()]):.0%}"
                for key in ("auroc", "flagged_at_10pct_known", "flagged_at_20pct_known")
            )
            for s in scores
        ]
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    lines += [
        "",
        "hema's rule, both flags at 10 % of known cells each (`unknown cell type` on centroid novelty, `low "
        "confidence` on the top-class probability): share flagged",
        "",
        "| left out | known cells flagged | left-out cells flagged |",
        "|---|--:|--:|",
    ]
    for left_out, figures in results.items():
        rule = figures["product_rule"]
        lines.append(f"| {left_out} | {rule['known_flagged']:.0%} | {rule['unknown_flagged']:.0%} |")
    mean = np.mean([figures["product_rule"]["unknown_flagged"] for figures in results.values()])
    lines.append(f"| **mean** | | {mean:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pbc"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--classes", nargs="+", default=list(CLASSES[:4]), choices=CLASSES)
    args = parser.parse_args()
    results = {}
    for left_out in args.classes:
        results[left_out] = _left_out_figures(args.data, left_out, args.runs, args.epochs)
        print(left_out, json.dumps(results[left_out]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "unknown-cells.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "unknown-cells.md").write_text(_markdown(results, args.epochs), encoding="utf-8")
    print(_markdown(results, args.epochs))


if __name__ == "__main__":
    main()
