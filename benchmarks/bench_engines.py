"""Every engine of a hema model against PyTorch eager, in one run: ``make bench`` (``MODEL=...`` for another).

For each engine (PyTorch eager FP32, ONNX Runtime FP32 and INT8, OpenVINO FP32, bf16 hint, FP16 IR and INT8,
TensorRT where a GPU and an engine exist), each in a fresh process: batch-1 latency percentiles, throughput at
several batch sizes, size on disk, peak memory, cold start, and the answers on the labelled test split (balanced
accuracy, agreement with ONNX Runtime FP32). Then ``hema-infer classify`` end to end on the same cells (JPEG
decoding included) and a per-stage profile. Writes ``OUT/NAME.json``, ``.md`` and ``.png``.

    .venv/bin/python benchmarks/bench_engines.py --model runtime/models/hema-default.onnx --edge build/edge
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from engines.candidates import EngineSpec, artifact_bytes, build_log, edge_artifacts, engine_specs
from engines.cells import CellSet, decode_cells
from engines.end_to_end import time_end_to_end
from engines.machine import describe_machine
from engines.plot import plot_engines
from engines.report import write_json, write_markdown
from engines.runner import WorkerFailed, run_worker
from engines.scoring import check_goals, score_engines
from engines.stages import decode_threads, draft_mode, stage_profile

from hema.export.graph.fuse import read_card
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import open_engine
from hema.train.evaluate.metrics import classification_metrics


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="Fused FP32 .onnx (default: embedded).")
    parser.add_argument("--edge", type=Path, default=Path("build/edge"), help="Where make edge-models wrote its files.")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pbc"), help="Labelled cells.")
    parser.add_argument("--split", default="test", help="hema's split of --data to measure on.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="Folder for NAME.json/.md/.png.")
    parser.add_argument("--name", help="Report name (default: the model's file stem).")
    parser.add_argument("--engines", help="Comma-separated engine names to measure (default: all).")
    parser.add_argument("--warmup", type=int, default=30, help="Untimed batch-1 runs before latency.")
    parser.add_argument("--latency-runs", type=int, default=200, help="Timed batch-1 runs.")
    parser.add_argument("--batch-sizes", default="1,8,32,64", help="Throughput batch sizes.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed passes per batch size (median reported).")
    parser.add_argument("--min-cells", type=int, default=64, help="Cells per timed pass (at least one batch).")
    parser.add_argument("--threads", type=int, default=0, help="Engine threads (0: each engine's default).")
    parser.add_argument("--no-end-to-end", action="store_true", help="Skip hema-infer classify and the profile.")
    return parser.parse_args()


def _measure(specs: list[EngineSpec], settings: dict, cells: CellSet, folder: Path) -> tuple[list[dict], dict]:
    rows, answers = [], {}
    for spec in specs:
        row = {**spec.to_dict(), "status": "ok", "reason": ""}
        if Path(spec.artifact).is_file():
            row["size_bytes"] = artifact_bytes(Path(spec.artifact))
        row["build"] = build_log(Path(spec.artifact))
        if spec.skip:
            row.update(status="skipped", reason=spec.skip)
        else:
            print(f"measuring {spec.name} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                measured, answers[spec.name] = run_worker(spec, settings, cells, folder)
                row.update(measured)
            except WorkerFailed as error:
                row.update(status="failed", reason=str(error))
            row["measure_s"] = time.perf_counter() - started
        rows.append(row)
    return rows, answers


def _shown(path: Path) -> str:
    """``path`` relative to the working folder where it lies below it (shorter commands in the report)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _end_to_end_configurations(model: Path, edge: Path) -> list[tuple[str, list[str]]]:
    model = Path(_shown(model))
    configurations = [
        ("auto", ["--model", str(model)]),
        ("onnxruntime", ["--model", str(model), "--backend", "onnxruntime"]),
    ]
    int8 = edge_artifacts(model, edge)["openvino-int8"]
    if int8.is_file():
        configurations.append(("openvino-int8 IR", ["--model", _shown(int8)]))
    return configurations


def _profile(model: Path, cells: CellSet, truth: np.ndarray, classes: int) -> dict:
    print("profiling the classify pipeline ...", file=sys.stderr, flush=True)
    engine = open_engine(model, "auto")
    paths = [Path(path) for path in cells.paths]
    profile = stage_profile(paths, engine)
    threads = decode_threads(paths, engine.card.input, (1, 2, 4))
    draft = draft_mode(paths, engine, profile.pop("images"), profile["answers"])
    draft["balanced_accuracy"] = classification_metrics(truth, draft.pop("answers").argmax(1), classes)[
        "balanced_accuracy"
    ]
    draft["exact_balanced_accuracy"] = classification_metrics(truth, profile.pop("answers").argmax(1), classes)[
        "balanced_accuracy"
    ]
    ms = profile["ms_per_cell"]
    profile["decode_threads"] = threads
    profile["draft_mode"] = draft
    profile["tried"] = [
        "decode threads (decode + resize only, cells/s): "
        + ", ".join(f"{entry['workers']}: {entry['cells_per_s']:.0f}" for entry in threads),
        f"JPEG draft mode at 1/2 scale: decode + resize {draft['decode_resize_ms_per_cell']:.2f} ms/cell "
        f"(exact path {ms['decode'] + ms['resize']:.2f}); pixels change by {draft['mean_abs_pixel_difference']:.1f} "
        f"on average (max {draft['max_abs_pixel_difference']}); labels agree {draft['label_agreement_with_exact']:.2%} "
        f"with the exact path; balanced accuracy {draft['balanced_accuracy']:.4f} vs "
        f"{draft['exact_balanced_accuracy']:.4f}. Not adopted: training and export would have to use the same path.",
    ]
    return profile


def main() -> None:
    args = _arguments()
    began = time.perf_counter()
    model = args.model.resolve()
    card = read_card(onnx.load(str(model)))
    classes = len(card.class_names)
    settings = {
        "warmup": args.warmup,
        "latency_runs": args.latency_runs,
        "batch_sizes": [int(size) for size in args.batch_sizes.split(",")],
        "repeats": args.repeats,
        "min_cells_per_repeat": args.min_cells,
        "threads": args.threads,
    }
    specs = engine_specs(model, args.edge.resolve())
    if args.engines:
        wanted = set(args.engines.split(","))
        specs = [spec for spec in specs if spec.name in wanted]
    result: dict = {
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "model": {"name": model.stem, "path": str(model), "precision": card.precision, "backbone": card.backbone},
        "machine": describe_machine(),
        "settings": settings,
    }
    with tempfile.TemporaryDirectory(prefix="hema-bench-") as scratch:
        folder = Path(scratch)
        print(f"decoding the {args.split} split of {args.data} ...", file=sys.stderr, flush=True)
        cells = decode_cells(args.data, args.split, card.class_names, card.input, folder)
        truth = np.array(cells.labels)
        result["data"] = {"folder": str(args.data), "split": args.split, "cells": cells.count}
        rows, answers = _measure(specs, settings, cells, folder)
        score_engines(rows, answers, truth, classes)
        result["engines"] = rows
        if not args.no_end_to_end:
            print("timing hema-infer classify ...", file=sys.stderr, flush=True)
            cli = Path(sys.executable).with_name("hema-infer")
            paths = [Path(path) for path in cells.paths]
            configurations = _end_to_end_configurations(model, args.edge.resolve())
            result["end_to_end"] = time_end_to_end(cli, paths, folder / "e2e", configurations)
            result["profile"] = _profile(model, cells, truth, classes)
    result["goals"] = check_goals(result["engines"], result.get("end_to_end", []))
    result["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    result["duration_s"] = time.perf_counter() - began
    name = args.name or model.stem
    paths = [
        write_json(result, args.out / f"{name}.json"),
        write_markdown(result, args.out / f"{name}.md"),
        plot_engines(result, args.out / f"{name}.png"),
    ]
    print("wrote " + ", ".join(str(path) for path in paths), file=sys.stderr)


if __name__ == "__main__":
    main()
