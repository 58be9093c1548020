"""Which INT8 post-training quantisation keeps a hema model's labels: variants measured on real cells.

For each variant of the fused FP32 ONNX model (symmetric Q/DQ, calibrated on 300 train-split cells), run by ONNX
Runtime: label agreement with FP32 and balanced accuracy on the test split (by
:func:`hema.export.precision.agreement.compare_models`, as the export gate measures them), and how loud the INT8
noise is in
the embedding the head reads: for each feature, the spread of (INT8 - FP32) over the test cells divided by the
spread of the FP32 feature over the same cells, median over features. A linear head separates cells along
directions in which features vary between cells; where the noise is a sizeable share of that variation, cells
near a class boundary change class. The variants are plain NNCF settings with every layer quantised, and hema's
recipe (:mod:`hema.export.precision.int8_quantisation`) with 0 to 9 of the first convolutions kept in FP32; the recipe's
models are also converted to OpenVINO IR and checked there.

    .venv/bin/python benchmarks/int8_ptq_variants.py --data ../shared/data/pbc --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hema.export.graph.fuse import attach_card, read_card
from hema.export.precision.agreement import AgreementReport, compare_models
from hema.export.precision.calibration_cells import calibration_cells
from hema.export.precision.int8_quantisation import Int8Settings, calibration_dataset, quantise
from hema.runtime.batches import decoded_batches
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.base import EMBEDDING_OUTPUT, Engine
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.engines.openvino_engine import OpenVinoEngine
from hema.train.data.folders import find_labelled_images

CALIBRATION_CELLS = 300
BATCH = 16
RECIPE_FP32_CONVOLUTIONS = (0, 1, 3, 6, 9)

Quantiser = Callable[[onnx.ModelProto, np.ndarray], onnx.ModelProto]


def _plain_nncf(**options: Any) -> Quantiser:
    import nncf

    def run(model: onnx.ModelProto, cells: np.ndarray) -> onnx.ModelProto:
        dataset, batches = calibration_dataset(cells, BATCH)
        return nncf.quantize(model, dataset, subset_size=batches, **options)

    return run


def _recipe(fp32_convolutions: int) -> Quantiser:
    settings = Int8Settings(cells=CALIBRATION_CELLS, batch_size=BATCH, fp32_convolutions=fp32_convolutions)
    return lambda model, cells: quantise(model, cells, settings)


def variants() -> dict[str, tuple[Quantiser, bool]]:
    """Quantisers by name, and whether the result is also checked in OpenVINO."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    performance = nncf.QuantizationPreset.PERFORMANCE
    no_outliers = AdvancedQuantizationParameters(
        activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_NO_OUTLIERS_MINMAX
    )
    plain = {
        "every layer, full bias correction": _plain_nncf(preset=performance, fast_bias_correction=False),
        "every layer, asymmetric activations (mixed preset)": _plain_nncf(preset=nncf.QuantizationPreset.MIXED),
        "every layer, ranges without outliers": _plain_nncf(preset=performance, advanced_parameters=no_outliers),
    }
    recipe = {
        f"hema, first {count} convolutions and the head in FP32": _recipe(count) for count in RECIPE_FP32_CONVOLUTIONS
    }
    checked = {name: (run, False) for name, run in plain.items()}
    return checked | {name: (run, True) for name, run in recipe.items()}


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


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _accuracy(value: float | None, reference: float) -> str:
    return "" if value is None else f"{value:.4f} ({value - reference:+.4f})"


def markdown(rows: list[dict[str, Any]], reference_balanced_accuracy: float, cells: int) -> str:
    lines = [
        f"FP32 balanced accuracy {reference_balanced_accuracy:.4f} on {cells} test cells; every variant calibrated "
        f"on {CALIBRATION_CELLS} train-split cells. hema's gate: agreement >= 99 %, balanced accuracy drop <= 0.5 pt.",
        "",
        "| variant | ONNX Runtime: agreement with FP32 | balanced accuracy | embedding noise / spread "
        "| OpenVINO: agreement with FP32 | balanced accuracy | quantise (s) |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {_percent(row['label_agreement'])} "
            f"| {_accuracy(row['balanced_accuracy'], reference_balanced_accuracy)} | {row['noise_to_spread']:.2f} "
            f"| {_percent(row.get('openvino_label_agreement'))} "
            f"| {_accuracy(row.get('openvino_balanced_accuracy'), reference_balanced_accuracy)} "
            f"| {row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="fused FP32 hema .onnx")
    parser.add_argument("--data", type=Path, required=True, help="labelled cells; train split calibrates")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    card = read_card(onnx.load(str(args.model)))
    cells = calibration_cells(args.data, card.input, CALIBRATION_CELLS)
    reference = OnnxRuntimeEngine(args.model)
    test_paths = find_labelled_images(args.data, "test").paths
    reference_embeddings = embeddings(reference, test_paths)
    rows = []
    report: AgreementReport | None = None
    with tempfile.TemporaryDirectory() as scratch:
        for name, (quantiser, on_openvino) in variants().items():
            started = time.perf_counter()
            quantised = quantiser(onnx.load(str(args.model)), cells)
            seconds = time.perf_counter() - started
            path = Path(scratch) / "candidate.onnx"
            onnx.save(attach_card(quantised, replace(card, precision="int8")), str(path))
            candidate = OnnxRuntimeEngine(path)
            report = compare_models(candidate, reference, args.data)
            row = {
                "variant": name,
                "label_agreement": report.label_agreement,
                "balanced_accuracy": report.candidate_balanced_accuracy,
                "noise_to_spread": noise_to_spread(reference_embeddings, embeddings(candidate, test_paths)),
                "seconds": seconds,
            }
            if on_openvino:  # OpenVINO reads the Q/DQ ONNX as hema-export openvino --precision int8 converts it
                openvino = compare_models(OpenVinoEngine(path), reference, args.data)
                row["openvino_label_agreement"] = openvino.label_agreement
                row["openvino_balanced_accuracy"] = openvino.candidate_balanced_accuracy
            rows.append(row)
            print(row, flush=True)
    assert report is not None
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
