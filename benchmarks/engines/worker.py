"""Measure one engine in a fresh process: ``python -m engines.worker JOB.json``.

The parent times the cold start from outside: it starts this process and waits for the line ``FIRST`` that is
printed as soon as the engine has answered its first cell (interpreter start, imports, model load, first
result). Then this process measures batch-1 latency, throughput per batch size and the answers on every cell,
saves the probabilities to ``JOB.npy`` and prints one ``RESULT {json}`` line. Peak memory is the process's
high-water mark (``VmHWM``) minus its resident memory before the engine was imported.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from engines.cells import CellSet, read_cells
from engines.timing import batches_per_repeat, measure_latency, measure_throughput

__all__ = ["main", "open_spec_engine", "process_memory_mb"]


def process_memory_mb() -> dict[str, float]:
    """Current (``VmRSS``) and peak (``VmHWM``) resident memory of this process in MB (Linux)."""
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024.0
    return found


def open_spec_engine(spec: dict, threads: int):
    """Load the engine a spec names (imports happen here, inside the timed cold start)."""
    if spec["engine"] == "torch":
        from engines.torch_eager import TorchEagerEngine

        return TorchEagerEngine(spec["artifact"], threads)
    if spec["engine"] == "openvino":
        from hema.runtime.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(spec["artifact"], threads, spec["inference_precision"])
    if spec["engine"] == "onnxruntime":
        from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(spec["artifact"], threads)
    from hema.runtime.engines.backends import open_engine

    return open_engine(spec["artifact"], "tensorrt")


def _engine_details(engine) -> dict:
    """Threads and the precision the engine really runs (OpenVINO may ignore a hint the CPU cannot follow)."""
    details = {"describe": engine.describe()}
    compiled = getattr(engine, "compiled", None)
    if compiled is not None:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        details["ran_precision"] = getattr(hint, "get_type_name", lambda: str(hint))()
        details["threads"] = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        details["streams"] = int(compiled.get_property("NUM_STREAMS"))
    elif engine.backend == "onnxruntime":
        details["threads"] = engine.session.get_session_options().intra_op_num_threads or "auto (physical cores)"
    elif engine.backend == "torch":
        details["threads"] = engine.torch.get_num_threads()
        details["interop_threads"] = engine.torch.get_num_interop_threads()
        details["module"] = engine.origin
    return details


def _answers(engine, cells: CellSet, batch_size: int) -> np.ndarray:
    chunks = []
    for start in range(0, cells.count, batch_size):
        images = read_cells(cells, start, min(batch_size, cells.count - start))
        chunks.append(engine.run(images)["probabilities"])
    return np.concatenate(chunks).astype(np.float32)


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    spec, settings = job["spec"], job["settings"]
    cells = CellSet.from_json(json.dumps(job["cells"]))
    before = process_memory_mb()["VmRSS"]
    started = time.perf_counter()
    engine = open_spec_engine(spec, settings["threads"])
    loaded = time.perf_counter()
    engine.run(read_cells(cells, 0, 1))
    first = time.perf_counter()
    print("FIRST", flush=True)
    result = {
        "load_s": loaded - started,
        "first_run_s": first - loaded,
        "loaded_rss_delta_mb": process_memory_mb()["VmRSS"] - before,
        **_engine_details(engine),
    }
    singles = [read_cells(cells, index, 1) for index in range(min(64, cells.count))]
    result["latency_ms"] = measure_latency(engine.run, singles, settings["warmup"], settings["latency_runs"])
    result["throughput"] = {}
    for size in settings["batch_sizes"]:
        count = batches_per_repeat(size, settings["min_cells_per_repeat"])
        batches = [read_cells(cells, index * size, size) for index in range(count)]
        result["throughput"][str(size)] = measure_throughput(engine.run, batches, settings["repeats"])
    np.save(Path(job_path).with_suffix(".npy"), _answers(engine, cells, 32))
    memory = process_memory_mb()
    result["rss_before_mb"] = before
    result["peak_rss_mb"] = memory["VmHWM"]
    result["peak_rss_delta_mb"] = memory["VmHWM"] - before
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
