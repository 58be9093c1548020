"""``hema-infer classify`` timed from outside, as a lab user runs it: JPEG decoding, engine, CSV, all of it.

The cells are symlinked into a temporary folder (the data is never copied). Each configuration runs twice: on
all cells and on a single cell; the difference removes the start-up cost (interpreter, imports, model check and
load) and gives the steady rate a long run approaches.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["link_cells", "time_classify", "time_end_to_end"]


def link_cells(paths: Sequence[Path], folder: Path) -> Path:
    """Symlink ``paths`` into ``folder`` (one sub-folder per source folder, names kept); return ``folder``."""
    for path in paths:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(path.resolve())
    return folder


def time_classify(cli: Path, inputs: Path, out: Path, options: Sequence[str]) -> dict[str, object]:
    """Wall time of one ``hema-infer classify INPUTS --out OUT --no-html OPTIONS`` run and its row count."""
    command = [str(cli), "classify", str(inputs), "--out", str(out), "--no-html", *options]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    rows = 0
    csv = out / "cells.csv"
    if csv.is_file():
        rows = max(0, len(csv.read_text(encoding="utf-8").splitlines()) - 1)
    last_error = (finished.stderr.strip().splitlines() or [""])[-1][:300]
    return {"wall_s": wall, "rows": rows, "exit_code": finished.returncode, "error": last_error if rows == 0 else ""}


def time_end_to_end(
    cli: Path, paths: Sequence[Path], folder: Path, configurations: Sequence[tuple[str, Sequence[str]]]
) -> list[dict[str, object]]:
    """Time every ``(label, extra options)`` configuration on all ``paths`` and on one of them.

    Returns:
        One entry per configuration: the command, cells, wall time, cells/s (wall clock, start-up included),
        the one-cell run's time (start-up) and cells/s without it.
    """
    cells = link_cells(paths, folder / "cells")
    single = link_cells(paths[:1], folder / "single")
    results = []
    for number, (label, options) in enumerate(configurations):
        full = time_classify(cli, cells, folder / f"out-{number}", options)
        startup = time_classify(cli, single, folder / f"one-{number}", options)
        steady = None
        if full["wall_s"] > startup["wall_s"] and full["rows"] > 1:
            steady = (full["rows"] - 1) / (full["wall_s"] - startup["wall_s"])
        results.append(
            {
                "label": label,
                "command": f"hema-infer classify CELLS --out OUT --no-html {' '.join(options)}".strip(),
                "cells": len(paths),
                "rows": full["rows"],
                "exit_code": full["exit_code"],
                "error": full["error"],
                "wall_s": full["wall_s"],
                "cells_per_s": full["rows"] / full["wall_s"] if full["rows"] else None,
                "startup_s": startup["wall_s"],
                "steady_cells_per_s": steady,
            }
        )
    return results
