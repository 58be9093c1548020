"""Why INT8 post-training quantisation changes a hema model's labels: NNCF variants measured on real cells.

For each NNCF post-training variant of the fused FP32 ONNX model (symmetric QDQ run by ONNX Runtime, calibrated
on 300 train-split cells): label agreement with FP32 and balanced accuracy on the test split (by
:func:`hema.export.agreement.compare_models`, as the export gate measures them), and how loud the INT8 noise is in
the embedding the head reads: for each feature, the spread of (INT8 - FP32) over the test cells divided by the
spread of the FP32 feature over the same cells, median over features. A linear head separates cells along
directions in which features vary between cells; where the noise is a sizeable share of that variation, cells
near a class boundary change class, whatever the rounding details.

    .venv/bin/python benchmarks/int8_ptq_variants.py --data ../shared/data/pbc --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hema.export.agreement import compare_models
from hema.export.calibration import calibration_cells
from hema.export.fuse import attach_card, read_card
from hema.runtime.batches import decoded_batches
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engine import EMBEDDING_OUTPUT, Engine
from hema.runtime.onnxruntime_engine import OnnxRuntimeEngine
from hema.train.data import find_labelled_images

CALIBRATION_CELLS = 300
BATCH = 16


def variants() -> dict[str, dict[str, Any]]:
    """NNCF ``quantize`` options by name; ``default`` is what ``hema-export onnx-int8`` uses."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    performance = nncf.QuantizationPreset.PERFORMANCE
    return {
        "default (symmetric, fast bias correction)": {"preset": performance},
        "full bias correction": {"preset": performance, "fast_bias_correction": False},
        "asymmetric activations (mixed preset)": {"preset": nncf.QuantizationPreset.MIXED},
        "ranges without outliers": {
            "preset": performance,
            "advanced_parameters": AdvancedQuantizationParameters(
                activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_NO_OUTLIERS_MINMAX
            ),
        },
    }


def noise_to_spread(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Median over features of std(candidate - reference) / std(reference), both ``(cells, features)``."""
    spread = reference.std(axis=0)
    varying = spread > 0
    return float(np.median((candidate - reference).std(axis=0)[varying] / spread[varying]))


def embeddings(engine: Engine, paths: list[Path]) -> np.ndarray:
    """The ``embedding`` output of ``engine`` for every cell, in order."""
    chunks = []
    for batch, images in decoded_batches(paths, engine.card.input):
        broken = [f"{path}: {image}" for path, image in zip(batch, images) if isinstance(image, str)]
        if broken:
            raise ValueError(f"unreadable cell: {broken[0]}")
        chunks.append(engine.run(np.stack(images))[EMBEDDING_OUTPUT])
    return np.concatenate(chunks)


def markdown(rows: list[dict[str, Any]], reference_balanced_accuracy: float, cells: int) -> str:
    lines = [
        f"FP32 balanced accuracy {reference_balanced_accuracy:.4f} on {cells} test cells; every variant calibrated "
        f"on {CALIBRATION_CELLS} train-split cells and run by ONNX Runtime.",
        "",
        "| NNCF variant | agreement with FP32 | balanced accuracy | embedding noise / spread | quantise (s) |",
        "|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['label_agreement']:.2%} | {row['balanced_accuracy']:.4f} "
            f"({row['balanced_accuracy'] - reference_balanced_accuracy:+.4f}) | {row['noise_to_spread']:.2f} "
            f"| {row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    import nncf

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="fused FP32 hema .onnx")
    parser.add_argument("--data", type=Path, required=True, help="labelled cells; train split calibrates")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    source = onnx.load(str(args.model))
    card = read_card(source)
    cells, _ = calibration_cells(args.data, card.input, CALIBRATION_CELLS, 0)
    dataset = nncf.Dataset(
        [cells[start : start + BATCH] for start in range(0, len(cells), BATCH)], lambda b: {"image": b}
    )
    reference = OnnxRuntimeEngine(args.model)
    test_paths = find_labelled_images(args.data, "test").paths
    reference_embeddings = embeddings(reference, test_paths)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, options in variants().items():
            started = time.perf_counter()
            quantised = nncf.quantize(onnx.load(str(args.model)), dataset, subset_size=len(cells), **options)
            seconds = time.perf_counter() - started
            path = Path(scratch) / "candidate.onnx"
            onnx.save(attach_card(quantised, replace(card, precision="int8")), str(path))
            candidate = OnnxRuntimeEngine(path)
            report = compare_models(candidate, reference, args.data)
            rows.append(
                {
                    "variant": name,
                    "label_agreement": report.label_agreement,
                    "balanced_accuracy": report.candidate_balanced_accuracy,
                    "noise_to_spread": noise_to_spread(reference_embeddings, embeddings(candidate, test_paths)),
                    "seconds": seconds,
                }
            )
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": args.model.name,
        "data": str(args.data),
        "test_cells": report.cells,
        "reference_balanced_accuracy": report.reference_balanced_accuracy,
        "calibration_cells": len(cells),
        "variants": rows,
    }
    (args.out / "int8-ptq-variants.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "int8-ptq-variants.md").write_text(markdown(rows, report.reference_balanced_accuracy, report.cells))


if __name__ == "__main__":
    main()
