"""How a hema model does at a lab it was not trained on, before and after ``hema-train onboard``.

One command, three measurements, for each model given (``--model``, repeatable: e.g. the shipped model and an
earlier one to compare recipes):

1. **PBC -> BCCD** (another lab, camera and stain; 5 classes): balanced accuracy on BCCD's test split of the
   model as shipped, onboarded with BCCD's unlabelled cells only, and onboarded with 5 / 10 / 20 labelled cells
   per class drawn from BCCD's train split (``--draws`` draws each: mean and standard deviation). Onboarding is
   the library call ``hema-train onboard`` makes (:func:`hema.export.onboard.adaptation.adapt_to_lab` on the
   model's own embeddings), so every draw costs no new pass through the backbone. A class with fewer train cells
   than asked is labelled with all it has (BCCD's train split has 17 monocytes), one with fewer than onboarding's
   minimum of 5 (BCCD's 3 basophils) is left out of the labels, as a lab would; its test cells still count.
   A model whose backbone was trained on BCCD's train split (the shipped default's) is not new to BCCD: the
   README says which rows are.
2. **Synthetic shifts of PBC's test split**: the same cells as another lab might export them (smaller or larger
   cells, a paler or stronger stain, another lamp, defocus, heavy JPEG); balanced accuracy of each model, with
   its unknown-cell flag rate (a model should notice that the cells look unlike its training cells).
3. **Share of cells flagged unknown** at each lab, as shipped.

    .venv/bin/python benchmarks/new_lab.py --model runtime/models/hema-default.onnx --out benchmarks/results
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import onnx
from PIL import Image, ImageFilter

from hema.export.graph.alignment import read_statistics
from hema.export.graph.fuse import read_card
from hema.export.onboard.adaptation import LabEmbeddings, OnboardSettings, adapt_to_lab
from hema.export.onboard.lab_cells import embed_cells
from hema.export.onboard.onboarding import base_centroids, decision_outputs, onboarded_graph
from hema.runtime.engines.base import NOVELTY_OUTPUT, PROBABILITIES_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.preprocessing import resize_cell_image
from hema.runtime.review import ReviewPolicy
from hema.train.data.folders import find_labelled_images
from hema.train.fewshot.draws import draw_per_class

SHOTS = (5, 10, 20)


def _balanced_accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean([np.mean([p == c for p, t in zip(predicted, truth) if t == c]) for c in sorted(set(truth))]))


def _predicted(probabilities: np.ndarray, classes: tuple[str, ...]) -> list[str]:
    return [classes[i] for i in probabilities.argmax(axis=1)]


def _unknown_share(outputs: dict[str, np.ndarray], policy: ReviewPolicy) -> float | None:
    if NOVELTY_OUTPUT not in outputs or policy.novelty_threshold is None:
        return None
    return round(float(np.mean(outputs[NOVELTY_OUTPUT] > policy.novelty_threshold)), 4)


def _onboarded_accuracy(
    base, engine, lab: LabEmbeddings, test, test_truth: list[str], settings: OnboardSettings | None = None
) -> float:
    adaptation = adapt_to_lab(lab, settings or OnboardSettings())
    model = onboarded_graph(base, engine, adaptation)
    outputs = decision_outputs(model, adaptation.align(test.embeddings, lab.base_statistics))
    classes = adaptation.head.class_names if adaptation.head is not None else lab.base_classes
    return _balanced_accuracy(test_truth, _predicted(outputs[PROBABILITIES_OUTPUT], classes))


def bccd_figures(model_path: Path, bccd: Path, draws: int) -> dict:
    """Section 1 of the module docstring, for one model."""
    base, engine = onnx.load(str(model_path)), OnnxRuntimeEngine(model_path)
    card = read_card(base)
    train, test = find_labelled_images(bccd, "train"), find_labelled_images(bccd, "test")
    everything = embed_cells(engine, [*train.paths, *test.paths], "BCCD cells")
    train_cells, test_cells = (
        everything.subset(np.arange(len(train))),
        everything.subset(len(train) + np.arange(len(test))),
    )
    test_truth = [test.class_names[label] for label in test.labels]
    policy = ReviewPolicy.from_card(card, engine.output_names)
    shipped = {PROBABILITIES_OUTPUT: test_cells.probabilities, NOVELTY_OUTPUT: test_cells.novelty}
    figures = {
        "model": str(model_path),
        "test_cells": len(test),
        "shipped": round(_balanced_accuracy(test_truth, _predicted(test_cells.probabilities, card.class_names)), 4),
        "shipped_flagged_unknown": _unknown_share(shipped, policy),
    }
    lab = LabEmbeddings(
        unlabelled=everything.embeddings,
        labelled=np.zeros((0, everything.embeddings.shape[1]), np.float32),
        labels=(),
        base_classes=card.class_names,
        base_statistics=read_statistics(base),
        base_centroids=base_centroids(base),
        unlabelled_probabilities=everything.probabilities,
    )
    figures["onboarded_unlabelled_only"] = round(_onboarded_accuracy(base, engine, lab, test_cells, test_truth), 4)
    if lab.base_statistics is not None:
        aligned = _onboarded_accuracy(base, engine, lab, test_cells, test_truth, OnboardSettings(align=True))
        figures["onboarded_unlabelled_aligned"] = round(aligned, 4)
    pseudo = _onboarded_accuracy(base, engine, lab, test_cells, test_truth, OnboardSettings(pseudo_labels_per_class=30))
    figures["onboarded_unlabelled_pseudo_labels"] = round(pseudo, 4)
    train_names = np.array([train.class_names[label] for label in train.labels])
    for shots in SHOTS:
        scores = []
        for draw in range(draws):
            # every class the lab has enough of to label (5, the onboarding minimum), all of it when fewer than asked
            labelled_names = [name for name in train.class_names if (train_names == name).sum() >= 5]
            keep = np.flatnonzero(np.isin(train_names, labelled_names))
            chosen = keep[draw_per_class(train.labels[keep], shots, np.random.default_rng(draw))]
            drawn = LabEmbeddings(
                unlabelled=everything.embeddings,
                labelled=train_cells.embeddings[chosen],
                labels=tuple(train_names[chosen]),
                base_classes=card.class_names,
                base_statistics=lab.base_statistics,
                base_centroids=lab.base_centroids,
            )
            scores.append(_onboarded_accuracy(base, engine, drawn, test_cells, test_truth))
        figures[f"onboarded_{shots}_labels"] = {
            "mean": round(float(np.mean(scores)), 4),
            "std": round(float(np.std(scores)), 4),
        }
    return figures


def _shifted(image: Image.Image, shift: str) -> Image.Image:
    rgb = image.convert("RGB")
    if shift.startswith("cells x"):
        factor = float(shift.split("x")[1])
        return rgb.resize((round(rgb.width * factor), round(rgb.height * factor)), Image.Resampling.BILINEAR)
    if shift == "defocus":
        return rgb.filter(ImageFilter.GaussianBlur(2.5))
    if shift == "jpeg q20":
        buffer = io.BytesIO()
        rgb.save(buffer, "JPEG", quality=20)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    density = -np.log((np.asarray(rgb, dtype=np.float64) + 1) / 256)
    if shift == "paler stain":
        density *= 0.55
    elif shift == "stronger stain":
        density *= 1.5
    elif shift == "warm lamp":
        density += np.array([0.0, 0.12, 0.3])
    return Image.fromarray(np.clip(np.rint(256 * np.exp(-density) - 1), 0, 255).astype(np.uint8))


SHIFTS = ("none", "cells x0.6", "cells x1.5", "paler stain", "stronger stain", "warm lamp", "defocus", "jpeg q20")


def shift_figures(model_path: Path, pbc: Path) -> dict:
    """Section 2 of the module docstring, for one model."""
    engine = OnnxRuntimeEngine(model_path)
    policy = ReviewPolicy.from_card(engine.card, engine.output_names)
    test = find_labelled_images(pbc, "test")
    truth = [test.class_names[label] for label in test.labels]
    images = []
    for path in test.paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    figures = {}
    for shift in SHIFTS:
        batch = [
            resize_cell_image(image if shift == "none" else _shifted(image, shift), engine.card.input)
            for image in images
        ]
        outputs: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(batch), 64):
            for name, value in engine.run(np.stack(batch[start : start + 64])).items():
                outputs.setdefault(name, []).append(value)
        joined = {name: np.concatenate(values) for name, values in outputs.items()}
        figures[shift] = {
            "balanced_accuracy": round(
                _balanced_accuracy(truth, _predicted(joined[PROBABILITIES_OUTPUT], engine.card.class_names)), 4
            ),
            "flagged_unknown": _unknown_share(joined, policy),
        }
    return figures


def _markdown(results: dict) -> str:
    lines = [
        "# A new lab: before and after onboarding",
        "",
        "## PBC -> BCCD (balanced accuracy on BCCD's test split)",
        "",
    ]
    lines += [
        "| model | shipped | flagged unknown | onboarded, no labels | same, aligned | same, 30 pseudo-labels/class "
        "| 5 labels/class | 10 | 20 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, figures in results.items():
        bccd = figures["bccd"]
        shots = " | ".join(
            f"{bccd[f'onboarded_{n}_labels']['mean']:.3f} ± {bccd[f'onboarded_{n}_labels']['std']:.3f}" for n in SHOTS
        )
        lines.append(
            f"| {name} | {bccd['shipped']:.3f} | {bccd['shipped_flagged_unknown']} | "
            f"{bccd['onboarded_unlabelled_only']:.3f} | {bccd.get('onboarded_unlabelled_aligned', 'n/a')} | "
            f"{bccd['onboarded_unlabelled_pseudo_labels']:.3f} | {shots} |"
        )
    lines += ["", "## Synthetic shifts of PBC's test split (balanced accuracy; share flagged unknown)", ""]
    lines += ["| shift | " + " | ".join(results) + " |", "|---|" + "--:|" * len(results)]
    for shift in SHIFTS:
        cells = [
            f"{figures['shifts'][shift]['balanced_accuracy']:.3f} ({figures['shifts'][shift]['flagged_unknown']})"
            for figures in results.values()
        ]
        lines.append(f"| {shift} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, action="append", required=True, help="A hema model. Repeat.")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for model in args.model:
        results[model.name] = {
            "bccd": bccd_figures(model, args.data / "bccd", args.draws),
            "shifts": shift_figures(model, args.data / "pbc"),
        }
        print(json.dumps(results[model.name], indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "new-lab.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "new-lab.md").write_text(_markdown(results), encoding="utf-8")
    print(_markdown(results))


if __name__ == "__main__":
    main()
