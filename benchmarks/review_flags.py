"""Review flags of a hema model on real cells, another lab's cells and images that are not cells.

Runs the model through the runtime (``classify_files``, so exactly what ``hema-infer classify`` writes in the
``review`` column) on:

* PBC's test split (the lab the model was trained on): flag rate, and accuracy / balanced accuracy of the
  unflagged and the flagged cells;
* BCCD (another lab, camera and stain): flag rate, and accuracy of unflagged and flagged cells;
* images that are not white cells: the deterministic kinds of :mod:`hema.export.review.non_cells` and crops of PBC
  test-image corners (red cells and background, no leukocyte): flag rate per kind.

It also compares out-of-distribution scores by ROC AUC (PBC test cells against BCCD cells and against the
non-cell images): the shipped ``novelty`` (nearest-centroid cosine), the same after centring or standardising the
embedding, a Mahalanobis distance with a shared shrunk covariance, and 1 - top-class probability; and checks
that OpenVINO flags the same cells as ONNX Runtime. Writes ``review-flags.json``, ``review-flags.md`` and
``review-flags.png`` (novelty histograms with the threshold).

    .venv/bin/python benchmarks/review_flags.py --data ../shared/data --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from hema.export.review.non_cells import write_non_cell_images
from hema.runtime import DEFAULT_MODEL_PATH, classify_files
from hema.runtime.batches import decoded_batches
from hema.runtime.engines.base import EMBEDDING_OUTPUT, NOVELTY_OUTPUT, PROBABILITIES_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.review import LOW_CONFIDENCE, UNKNOWN_CELL_TYPE, ReviewPolicy
from hema.train.data.folders import find_labelled_images
from hema.train.fewshot.heads import l2_normalise


def _outputs(engine, paths) -> dict[str, np.ndarray]:
    chunks: dict[str, list[np.ndarray]] = {}
    for _, images in decoded_batches(paths, engine.card.input, batch_size=64, decode_threads=2):
        for name, value in engine.run(np.stack(images)).items():
            chunks.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in chunks.items()}


def _balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float | None:
    recalls = [np.mean(predicted[truth == label] == label) for label in np.unique(truth)]
    return round(float(np.mean(recalls)), 4) if recalls else None


def _rate(mask) -> float:
    return round(float(np.mean(mask)), 4) if len(mask) else 0.0


def _flag_stats(reviews: list[str], truth=None, predicted=None) -> dict:
    flagged = np.array([bool(review) for review in reviews])
    stats = {
        "cells": len(reviews),
        "flagged": _rate(flagged),
        "flagged_low_confidence": _rate([LOW_CONFIDENCE in review for review in reviews]),
        "flagged_unknown_cell_type": _rate([UNKNOWN_CELL_TYPE in review for review in reviews]),
    }
    if truth is not None:
        for name, mask in (("all", np.ones_like(flagged)), ("unflagged", ~flagged), ("flagged", flagged)):
            stats[f"accuracy_{name}"] = _rate(predicted[mask] == truth[mask]) if mask.any() else None
            stats[f"balanced_accuracy_{name}"] = _balanced_accuracy(truth[mask], predicted[mask])
    return stats


def _labelled_run(engine, root: Path, split: str) -> tuple[dict, list[str]]:
    labelled = find_labelled_images(root, split)
    results = list(classify_files(engine, labelled.paths, batch_size=64, decode_threads=2))
    names = list(engine.card.class_names)
    truth = np.array([names.index(labelled.class_names[label]) for label in labelled.labels])
    predicted = np.array([names.index(result.label) for result in results])
    reviews = [result.review for result in results]
    return _flag_stats(reviews, truth, predicted), reviews


def _corner_crops(root: Path, folder: Path, every: int = 20, side: int = 100) -> list[Path]:
    """Top-left and bottom-right ``side``-pixel corners of every ``every``-th PBC test image: no leukocyte."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, path in enumerate(find_labelled_images(root, "test").paths[::every]):
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            width, height = rgb.size
            for corner, box in enumerate(((0, 0, side, side), (width - side, height - side, width, height))):
                paths.append(folder / f"pbc-corner_{number:03d}_{corner}.png")
                rgb.crop(box).save(paths[-1])
    return paths


def _auc(inside: np.ndarray, outside: np.ndarray) -> float:
    """ROC AUC of a score that should be higher outside (Mann-Whitney, ties count half)."""
    greater = (outside[:, None] > inside[None, :]).mean()
    ties = (outside[:, None] == inside[None, :]).mean()
    return round(float(greater + 0.5 * ties), 4)


def _scores(train: dict, labels: np.ndarray) -> dict:
    """Out-of-distribution scores fitted on the train split's embeddings: name -> function of outputs."""
    features = train[EMBEDDING_OUTPUT].astype(np.float64)
    classes = np.unique(labels)
    mean, spread = features.mean(axis=0), features.std(axis=0) + 1e-3

    def nearest_cosine(transform):
        moved = transform(features)
        centroids = l2_normalise(np.stack([l2_normalise(moved[labels == c]).mean(axis=0) for c in classes]))
        return lambda out: 1 - (l2_normalise(transform(out[EMBEDDING_OUTPUT].astype(np.float64))) @ centroids.T).max(1)

    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    covariance = np.cov((features - means[np.searchsorted(classes, labels)]).T)
    covariance = 0.9 * covariance + 0.1 * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    whiten = np.linalg.cholesky(np.linalg.inv(covariance))

    def mahalanobis(out):
        x = out[EMBEDDING_OUTPUT].astype(np.float64)
        return np.sqrt((((x[:, None, :] - means[None]) @ whiten) ** 2).sum(-1)).min(1)

    return {
        "novelty (shipped: nearest-centroid cosine)": lambda out: out[NOVELTY_OUTPUT],
        "nearest-centroid cosine, centred embedding": nearest_cosine(lambda x: x - mean),
        "nearest-centroid cosine, standardised embedding": nearest_cosine(lambda x: (x - mean) / spread),
        "Mahalanobis, shared covariance (shrinkage 0.1)": mahalanobis,
        "1 - top-class probability": lambda out: 1 - out[PROBABILITIES_OUTPUT].max(1),
    }


def _plot(novelty: dict[str, np.ndarray], threshold: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.6))
    bins = np.linspace(0, max(float(v.max()) for v in novelty.values()) * 1.02, 60)
    for name, values in novelty.items():
        axis.hist(values, bins=bins, alpha=0.55, density=True, label=f"{name} ({len(values)})")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axis.set_xlabel("novelty = 1 - cosine similarity to the nearest training-class centroid")
    axis.set_ylabel("density")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _table(report: dict) -> str:
    rows = [("PBC test split", report["pbc_test"]), ("BCCD (another lab)", report["bccd"])]
    rows += [(f"non-cell: {kind}", stats) for kind, stats in report["non_cells"].items()]
    lines = [
        "# Review flags",
        "",
        f"Model `{report['model']}`; a cell is flagged when its top-class probability is below "
        f"{report['confidence_threshold']:.4f} (low confidence) or its novelty is above "
        f"{report['novelty_threshold']:.4f} (unknown cell type), thresholds calibrated at export on held-back "
        "PBC train-split cells (see the card's `review`). Reproduce: "
        "`.venv/bin/python benchmarks/review_flags.py --data ../shared/data --out benchmarks/results`.",
        "",
        "| images | cells | flagged | low confidence | unknown cell type | accuracy all | accuracy unflagged "
        "| accuracy flagged | balanced acc. unflagged | balanced acc. flagged |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, stats in rows:
        cells = [stats.get(key) for key in ("accuracy_all", "accuracy_unflagged", "accuracy_flagged")]
        cells += [stats.get(key) for key in ("balanced_accuracy_unflagged", "balanced_accuracy_flagged")]
        shown = " | ".join("" if value is None else f"{value:.3f}" for value in cells)
        lines.append(
            f"| {name} | {stats['cells']} | {stats['flagged']:.1%} | {stats['flagged_low_confidence']:.1%} "
            f"| {stats['flagged_unknown_cell_type']:.1%} | {shown} |"
        )
    lines += [
        "",
        "Non-cell kinds: generated by `hema.export.review.non_cells` (8 each), and `pbc-corner`: "
        "100-pixel corners of every 20th PBC test image (red cells and background, no leukocyte). "
        "BCCD accuracy counts its five classes against the model's eight.",
        "",
        "Out-of-distribution scores, ROC AUC of PBC test cells against (train-split embeddings fit the alternatives):",
        "",
    ]
    lines += ["| score | BCCD cells | non-cell images |", "|---|---:|---:|"]
    for name, aucs in report["ood_score_auc"].items():
        lines.append(f"| {name} | {aucs['bccd']:.3f} | {aucs['non_cells']:.3f} |")
    agree = report.get("openvino_agreement")
    if agree:
        lines += ["", f"OpenVINO (f32) gives the same review as ONNX Runtime on {agree['same']} of {agree['cells']} "
                  "PBC test cells."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    engine = OnnxRuntimeEngine(args.model)
    policy = ReviewPolicy.from_card(engine.card, engine.output_names)
    report: dict = {
        "model": str(args.model.resolve().relative_to(Path.cwd().resolve()))
        if args.model.resolve().is_relative_to(Path.cwd().resolve())
        else str(args.model),
        "confidence_threshold": policy.confidence_threshold,
        "novelty_threshold": policy.novelty_threshold,
        "card_review": engine.card.review,
    }
    report["pbc_test"], pbc_reviews = _labelled_run(engine, args.data / "pbc", "test")
    report["bccd"], _ = _labelled_run(engine, args.data / "bccd", "all")
    with tempfile.TemporaryDirectory() as temporary:
        paths = write_non_cell_images(Path(temporary) / "generated")
        paths += _corner_crops(args.data / "pbc", Path(temporary) / "corners")
        reviews = [result.review for result in classify_files(engine, paths, batch_size=64, decode_threads=2)]
        kinds = [path.name.split("_")[0] for path in paths]
        report["non_cells"] = {
            kind: _flag_stats([r for r, k in zip(reviews, kinds) if k == kind]) for kind in dict.fromkeys(kinds)
        }
        non_cell_outputs = _outputs(engine, paths)
    train = find_labelled_images(args.data / "pbc", "train")
    scores = _scores(_outputs(engine, train.paths), train.labels)
    test_outputs = _outputs(engine, find_labelled_images(args.data / "pbc", "test").paths)
    bccd_outputs = _outputs(engine, find_labelled_images(args.data / "bccd", "all").paths)
    report["ood_score_auc"] = {
        name: {
            "bccd": _auc(score(test_outputs), score(bccd_outputs)),
            "non_cells": _auc(score(test_outputs), score(non_cell_outputs)),
        }
        for name, score in scores.items()
    }
    try:
        from hema.runtime.engines.openvino_engine import OpenVinoEngine

        pbc = find_labelled_images(args.data / "pbc", "test").paths
        openvino = [result.review for result in classify_files(OpenVinoEngine(args.model), pbc, batch_size=64)]
        report["openvino_agreement"] = {"cells": len(pbc), "same": sum(a == b for a, b in zip(openvino, pbc_reviews))}
    except ImportError:
        pass
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "review-flags.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "review-flags.md").write_text(_table(report), encoding="utf-8")
    novelty = {
        "PBC test": test_outputs[NOVELTY_OUTPUT],
        "BCCD": bccd_outputs[NOVELTY_OUTPUT],
        "non-cell images": non_cell_outputs[NOVELTY_OUTPUT],
    }
    _plot(novelty, policy.novelty_threshold, args.out / "review-flags.png")
    print(_table(report))


if __name__ == "__main__":
    main()
