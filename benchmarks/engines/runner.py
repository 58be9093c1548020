"""Run :mod:`engines.worker` for one engine in a fresh subprocess and time its cold start from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from engines.candidates import EngineSpec
from engines.cells import CellSet

__all__ = ["WorkerFailed", "run_worker"]

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent


class WorkerFailed(RuntimeError):
    """The engine could not be loaded or run; the message is the worker's last error line."""


def _last_error(stderr: Path) -> str:
    lines = [line.strip() for line in stderr.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:300]


def run_worker(
    spec: EngineSpec, settings: dict, cells: CellSet, folder: Path, timeout_s: float = 600.0
) -> tuple[dict, np.ndarray]:
    """Measure ``spec`` in a new Python process.

    Args:
        spec: The engine to measure.
        settings: Warm-up, runs, batch sizes, repeats and threads (see :mod:`engines.worker`).
        cells: The decoded cells.
        folder: Scratch folder for the job file, its answers and its stderr.
        timeout_s: Longest the worker may take.

    Returns:
        The worker's measurements with ``cold_start_s`` added, and its probabilities on every cell.

    Raises:
        WorkerFailed: If the worker exits without a result.
    """
    job = folder / f"{spec.name}.json"
    job.write_text(json.dumps({"spec": spec.to_dict(), "settings": settings, "cells": json.loads(cells.to_json())}))
    stderr = folder / f"{spec.name}.stderr"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCHMARKS_DIR), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "engines.worker", str(job)]
    result, cold_start = None, None
    with stderr.open("w") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env)
        watchdog = threading.Timer(timeout_s, process.kill)
        watchdog.start()
        try:
            for line in process.stdout:
                if line.startswith("FIRST") and cold_start is None:
                    cold_start = time.perf_counter() - started
                elif line.startswith("RESULT "):
                    result = json.loads(line[len("RESULT ") :])
            process.wait()
        finally:
            watchdog.cancel()
    if result is None or process.returncode != 0:
        raise WorkerFailed(f"exit code {process.returncode}: {_last_error(stderr)}")
    result["cold_start_s"] = cold_start
    return result, np.load(job.with_suffix(".npy"))
