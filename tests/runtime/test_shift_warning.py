"""A slide whose cells as a whole are unlike the training cells says so: the shift warning.

Real cells: BCCD (another lab, camera and stain) must raise it on a slide; PBC's test split (the training lab)
must not. The rule itself is checked at its edges on review reasons.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_infer

from hema.runtime.review import SHIFT_MIN_CELLS, SHIFT_SHARE, UNKNOWN_CELL_TYPE, shift_warning


def test_the_rule_at_its_edges() -> None:
    at_share = int(SHIFT_SHARE * 100)
    assert shift_warning([UNKNOWN_CELL_TYPE] * (SHIFT_MIN_CELLS - 1)) is None  # too few cells to judge a lab
    assert shift_warning([UNKNOWN_CELL_TYPE] * at_share + [""] * (100 - at_share)) is None  # exactly the share
    warning = shift_warning([UNKNOWN_CELL_TYPE] * (at_share + 1) + ["low confidence"] * (99 - at_share))
    assert warning is not None and f"{at_share + 1} of 100 cells" in warning and "hema-train onboard" in warning
    assert shift_warning(["low confidence"] * 100) is None  # unsure is not unlike


def _slide(root: Path, name: str, images: list[Path]) -> None:
    (root / name).mkdir(parents=True)
    for image in images:
        (root / name / image.name).symlink_to(image)


@pytest.mark.slow
def test_another_lab_gets_a_shift_warning_and_the_training_lab_does_not(
    tmp_path: Path, bccd_dir: Path, pbc_test_split
) -> None:
    root = tmp_path / "run"
    _slide(root, "bccd", sorted(bccd_dir.rglob("*.jpg"))[:40])
    _slide(root, "pbc", list(pbc_test_split.paths[:: max(1, len(pbc_test_split.paths) // 40)])[:40])
    result = run_infer("classify", str(root), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["slides"]["bccd"]["shift_warning"] is not None
    assert summary["slides"]["pbc"]["shift_warning"] is None
    assert "warning: " in result.stderr  # the run as a whole: half its cells are another lab's
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count('class="shift-warning"') == 2  # the BCCD slide and the run overview, not the PBC slide
