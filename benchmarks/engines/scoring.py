"""Turn per-engine answers and timings into the comparable numbers: accuracy, agreement, speed-up, goals."""

from __future__ import annotations

import numpy as np

from engines.candidates import BASELINE, REFERENCE
from hema.train.evaluate.metrics import classification_metrics

__all__ = ["GOALS", "best_engine", "check_goals", "score_engines"]

GOALS = {"best_vs_eager_batch_32": 20.0, "end_to_end_cells_per_s": 400.0}


def _b32(row: dict) -> float | None:
    return row.get("throughput", {}).get("32", {}).get("cells_per_s")


def score_engines(rows: list[dict], answers: dict[str, np.ndarray], truth: np.ndarray, classes: int) -> None:
    """Add accuracy, agreement with :data:`REFERENCE` and speed-up over :data:`BASELINE` to measured rows.

    Args:
        rows: One dict per engine (``name``, ``status``, ``throughput``...); changed in place.
        answers: Probabilities ``(cells, classes)`` of every measured engine by name.
        truth: Class index of every cell.
        classes: Number of classes.
    """
    reference = answers.get(REFERENCE)
    baseline = next((_b32(row) for row in rows if row["name"] == BASELINE and row["status"] == "ok"), None)
    for row in rows:
        if row["status"] != "ok":
            continue
        probabilities = answers[row["name"]]
        predicted = probabilities.argmax(axis=1)
        row["balanced_accuracy"] = classification_metrics(truth, predicted, classes)["balanced_accuracy"]
        row["accuracy"] = float((predicted == truth).mean())
        if reference is not None:
            row["label_agreement"] = float((predicted == reference.argmax(axis=1)).mean())
            row["max_probability_difference"] = float(np.abs(probabilities - reference).max())
        throughput = _b32(row)
        row["speedup_vs_eager_b32"] = throughput / baseline if baseline and throughput else None


def best_engine(rows: list[dict]) -> dict | None:
    """The measured engine with the highest batch-32 throughput."""
    measured = [row for row in rows if row["status"] == "ok" and _b32(row)]
    return max(measured, key=_b32) if measured else None


def check_goals(rows: list[dict], end_to_end: list[dict]) -> dict[str, dict]:
    """Each speed goal with its target, what was measured, by what, and whether it is met."""
    best = best_engine(rows)
    speedup = best.get("speedup_vs_eager_b32") if best else None
    rates = [run for run in end_to_end if run.get("cells_per_s")]
    fastest = max(rates, key=lambda run: run["cells_per_s"]) if rates else None
    measured = {
        "best_vs_eager_batch_32": (speedup, best["name"] if best else None),
        "end_to_end_cells_per_s": (fastest["cells_per_s"] if fastest else None, fastest["label"] if fastest else None),
    }
    return {
        goal: {"target": target, "measured": value, "by": by, "met": value is not None and value >= target}
        for goal, target in GOALS.items()
        for value, by in [measured[goal]]
    }
