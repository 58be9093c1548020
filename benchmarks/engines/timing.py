"""Latency and throughput of one engine: warm-up first, then timed runs on real cells; pure measurement."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["batches_per_repeat", "latency_percentiles", "measure_latency", "measure_throughput"]

RunBatch = Callable[[np.ndarray], object]


def latency_percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 / mean in milliseconds of per-call times in seconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "mean": float(ms.mean()),
        "runs": len(ms),
    }


def measure_latency(run: RunBatch, singles: Sequence[np.ndarray], warmup: int, runs: int) -> dict[str, float]:
    """Batch-1 latency: ``warmup`` untimed calls, then ``runs`` timed ones cycling through ``singles``.

    Args:
        run: Runs the engine on one batch.
        singles: Batches of one cell each.
        warmup: Untimed calls first (thread pools, lazy kernel selection, caches).
        runs: Timed calls.
    """
    for index in range(warmup):
        run(singles[index % len(singles)])
    times = []
    for index in range(runs):
        batch = singles[index % len(singles)]
        start = time.perf_counter()
        run(batch)
        times.append(time.perf_counter() - start)
    return latency_percentiles(times)


def measure_throughput(run: RunBatch, batches: Sequence[np.ndarray], repeats: int) -> dict[str, float]:
    """Cells per second over ``batches`` (one untimed warm-up call first), median of ``repeats`` passes.

    Args:
        run: Runs the engine on one batch.
        batches: Batches of one size; a pass runs all of them.
        repeats: Timed passes.
    """
    run(batches[0])
    cells = sum(len(batch) for batch in batches)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            run(batch)
        rates.append(cells / (time.perf_counter() - start))
    return {
        "cells_per_s": float(statistics.median(rates)),
        "min": float(min(rates)),
        "max": float(max(rates)),
        "repeats": repeats,
        "cells_per_repeat": cells,
    }


def batches_per_repeat(batch_size: int, min_cells: int) -> int:
    """How many batches one timed pass runs: at least ``min_cells`` cells, at least one batch."""
    return max(1, math.ceil(min_cells / batch_size))
