"""What the decisions add up to: each cell's verified class, the differentials, and the model's agreement.

A classified cell has a verified class (a :class:`Verdict`) once a technologist judged it: explicitly (a key or
a click: the class chosen, even the model's own) or by marking its slide verified, which accepts the model's
class for every cell left unchanged, as a technologist signs off an analyser's pre-classification. Cells of a
slide not yet verified that nobody touched have none. Error rows (unreadable files) are never counted.

The **agreement** of the model with the technologist (the lab's own pre-classification agreement, which
CellaVision users report as about 82 % of cells accepted unchanged) is counted over judged cells only: per
class, of the cells the model put there, the share the technologist kept (``kept_share``), and of the cells the
technologist put there, the share the model had found (``found_share``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hema.runtime.verification.journal import DecisionJournal
from hema.runtime.verification.run_table import Cell, RunTable

__all__ = ["Verdict", "agreement", "class_list", "differential", "slide_tally", "verdicts"]


@dataclass(frozen=True)
class Verdict:
    """A judged cell's verified class.

    Attributes:
        label: The class the technologist confirmed or chose.
        by: Who decided (or marked the slide verified).
        at: When.
        explicit: Whether the cell itself was decided (not only accepted with its slide).
    """

    label: str
    by: str
    at: str
    explicit: bool


def class_list(table: RunTable, extra_classes: Sequence[str], journal: DecisionJournal) -> tuple[str, ...]:
    """The model's classes, then the extra classes, then any class the journal names that neither lists."""
    names = [*table.class_names, *(name for name in extra_classes if name not in table.class_names)]
    for record in journal.records:
        if record["kind"] == "label" and record["human_label"] and record["human_label"] not in names:
            names.append(record["human_label"])
    return tuple(names)


def verdicts(table: RunTable, journal: DecisionJournal) -> dict[int, Verdict]:
    """The verdict of every judged classified cell, by cell id."""
    found: dict[int, Verdict] = {}
    for cell in table.cells:
        if not cell.classified:
            continue
        decided, slide = journal.cell(cell.path), journal.slide(cell.slide)
        if decided is not None and decided["human_label"] is not None:
            found[cell.id] = Verdict(decided["human_label"], decided["user"], decided["time"], True)
        elif slide is not None and slide["verified"]:
            found[cell.id] = Verdict(cell.label, slide["user"], slide["time"], False)
    return found


def differential(labels: Iterable[str], classes: Sequence[str]) -> dict[str, dict[str, float]]:
    """Count and percent (of all ``labels``) of each class."""
    counts = Counter(labels)
    total = sum(counts.values())
    return {
        name: {"count": counts[name], "percent": round(100.0 * counts[name] / total, 2) if total else 0.0}
        for name in classes
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def agreement(pairs: Sequence[tuple[str, str]], classes: Sequence[str]) -> dict[str, Any]:
    """The model's agreement with the technologist over judged cells, given as (model class, verified class)."""
    by_model = Counter(model for model, _ in pairs)
    by_human = Counter(human for _, human in pairs)
    same = Counter(model for model, human in pairs if model == human)
    return {
        "judged_cells": len(pairs),
        "kept": sum(same.values()),
        "kept_share": _share(sum(same.values()), len(pairs)),
        "classes": {
            name: {
                "model_cells": by_model[name],
                "kept": same[name],
                "kept_share": _share(same[name], by_model[name]),
                "verified_cells": by_human[name],
                "found_share": _share(same[name], by_human[name]),
            }
            for name in classes
            if by_model[name] or by_human[name]
        },
    }


def _current(cell: Cell, judged: dict[int, Verdict]) -> str:
    return judged[cell.id].label if cell.id in judged else cell.label


def slide_tally(
    table: RunTable, journal: DecisionJournal, judged: dict[int, Verdict], slide: str, classes: Sequence[str]
) -> dict[str, Any]:
    """One slide's state: verification, differentials (model and verified), agreement and the changed cells.

    ``verified_differential`` counts each cell in its verified class, or the model's while it has none.
    """
    cells = table.cells_of(slide)
    classified = [cell for cell in cells if cell.classified]
    state = journal.slide(slide)
    done = state is not None and state["verified"]
    pairs = [(cell.label, judged[cell.id].label) for cell in classified if cell.id in judged]
    changed = [cell for cell in classified if cell.id in judged and judged[cell.id].label != cell.label]
    return {
        "verified": done,
        "verified_by": state["user"] if done else None,
        "verified_at": state["time"] if done else None,
        "cells": len(classified),
        "unreadable_files": len(cells) - len(classified),
        "judged_cells": len(pairs),
        "model_differential": differential((cell.label for cell in classified), classes),
        "verified_differential": differential((_current(cell, judged) for cell in classified), classes),
        "agreement": agreement(pairs, classes),
        "changes": [
            {
                "path": cell.path,
                "model_label": cell.label,
                "human_label": judged[cell.id].label,
                "by": judged[cell.id].by,
                "at": judged[cell.id].at,
            }
            for cell in changed
        ],
    }
