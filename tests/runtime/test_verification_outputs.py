"""What a review writes: verified.csv, verified_summary.json, the printable report, and the labelled export.

Decisions are made through :class:`~hema.runtime.verification.session.ReviewSession` (what the server calls) on a
``hema-infer classify`` run of real PBC cells; the expected numbers are counted from that run's ``cells.csv``. The
labelled export is read back by the readers of ``hema-train onboard --labelled`` and ``hema-train fewshot --data``,
and ``fewshot`` is run on it.
"""

from __future__ import annotations

import csv
import html
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hema.export.onboard.lab_cells import read_labelled_folder
from hema.runtime.cli import app
from hema.runtime.verification.labelled_export import MANIFEST_NAME
from hema.runtime.verification.session import ReviewSession
from hema.runtime.verification.settings import ReviewError, ReviewSettings, read_extra_classes
from hema.train.cli import app as train_app
from hema.train.data.folders import find_labelled_images

SLIDE_A, SLIDE_B = "slide_<b>&A", "slide_B"
SLIDES = {SLIDE_A: ("neutrophil",) * 3 + ("lymphocyte",) * 3 + ("eosinophil",) * 2, SLIDE_B: ("monocyte",) * 3}


@pytest.fixture(scope="module")
def classified(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classify run of real cells (absolute paths in cells.csv) with one unreadable file on slide A."""
    root = tmp_path_factory.mktemp("verified_cells")
    for slide, classes in SLIDES.items():
        (root / slide).mkdir()
        for number, name in enumerate(classes):
            source = sorted((pbc_dir / name).glob("*.jpg"))[number]
            shutil.copyfile(source, root / slide / source.name)
    (root / SLIDE_A / "empty.jpg").write_bytes(b"")
    out = tmp_path_factory.mktemp("verified_run")
    result = CliRunner().invoke(app, ["classify", *(str(root / slide) for slide in SLIDES), "--out", str(out)])
    assert result.exit_code == 1, result.output
    return out


@pytest.fixture()
def decided(classified: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The run after: a slide A cell put into blast, one confirmed, slide A verified, a slide B cell changed.

    Returns the run folder and the path of each decided cell (``to_blast``, ``confirmed``, ``changed_b``).
    """
    run = Path(shutil.copytree(classified, tmp_path / "run"))
    session = ReviewSession.open(run, ReviewSettings(user="ann"), warn=print)
    cells = [cell for cell in session.table.cells if cell.classified]
    on_a, on_b = [c for c in cells if c.slide == SLIDE_A], [c for c in cells if c.slide == SLIDE_B]
    other = next(name for name in session.table.class_names if name != on_b[0].label)
    for cell, label in ((on_a[0], "blast"), (on_a[1], on_a[1].label), (on_b[0], other)):
        status, answer = session.label({"cell": cell.id, "label": label, "base": 0})
        assert status == 200, answer
    status, answer = session.verify({"slide": 0, "verified": True, "base": session.journal.slide_rev(SLIDE_A)})
    assert status == 200, answer
    session.close()
    return run, {"to_blast": on_a[0].path, "confirmed": on_a[1].path, "changed_b": on_b[0].path, "other": other}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_verified_csv_is_cells_csv_plus_the_verdict_of_each_judged_cell(decided) -> None:
    run, cells = decided
    with (run / "cells.csv").open(newline="", encoding="utf-8") as handle:
        original = list(csv.reader(handle))
    with (run / "verified.csv").open(newline="", encoding="utf-8") as handle:
        verified = list(csv.reader(handle))
    assert verified[0] == [*original[0], "human_label", "verified_by", "verified_at"]
    assert [row[: len(original[0])] for row in verified] == original  # cells.csv's rows as they were written
    by_path = {row["path"]: row for row in rows(run / "verified.csv")}
    assert by_path[cells["to_blast"]]["human_label"] == "blast"
    assert by_path[cells["changed_b"]]["human_label"] == cells["other"]
    for row in by_path.values():
        if row["status"] != "ok" or (row["slide"] == SLIDE_B and row["path"] != cells["changed_b"]):
            assert row["human_label"] == row["verified_by"] == row["verified_at"] == ""  # not judged
        elif row["path"] not in (cells["to_blast"], cells["changed_b"]):
            assert row["human_label"] == row["label"] and row["verified_by"] == "ann"  # accepted with slide A
        assert not row["verified_at"] or row["verified_at"][:2] == "20"


def test_summary_has_both_differentials_and_the_models_agreement(decided) -> None:
    run, cells = decided
    summary = json.loads((run / "verified_summary.json").read_text(encoding="utf-8"))
    table = [row for row in rows(run / "cells.csv") if row["status"] == "ok"]
    model_a = Counter(row["label"] for row in table if row["slide"] == SLIDE_A)
    by_path = {row["path"]: row for row in table}
    slide_a, slide_b = summary["slides"][SLIDE_A], summary["slides"][SLIDE_B]

    assert slide_a["verified"] and slide_a["verified_by"] == "ann" and not slide_b["verified"]
    assert slide_a["cells"] == sum(model_a.values()) == 8 and slide_a["unreadable_files"] == 1
    assert {name: entry["count"] for name, entry in slide_a["model_differential"].items() if entry["count"]} == model_a
    expected = model_a - Counter([by_path[cells["to_blast"]]["label"]]) + Counter(["blast"])
    verified_a = {name: entry["count"] for name, entry in slide_a["verified_differential"].items() if entry["count"]}
    assert verified_a == expected
    assert slide_a["verified_differential"]["blast"]["percent"] == 12.5  # 1 of 8 cells
    assert [change["path"] for change in slide_a["changes"]] == [cells["to_blast"]]
    assert slide_b["verified_differential"][cells["other"]]["count"] >= 1 and slide_b["judged_cells"] == 1

    agreement = summary["agreement"]
    assert agreement["judged_cells"] == 9 and agreement["kept"] == 7 and agreement["kept_share"] == round(7 / 9, 4)
    blast = {"model_cells": 0, "kept": 0, "kept_share": None, "verified_cells": 1, "found_share": 0.0}
    assert agreement["classes"]["blast"] == blast
    judged = [row for row in rows(run / "verified.csv") if row["human_label"]]
    for name in {row["label"] for row in judged}:
        mine = [row for row in judged if row["label"] == name]
        kept = sum(row["human_label"] == name for row in mine)
        assert agreement["classes"][name]["model_cells"] == len(mine) and agreement["classes"][name]["kept"] == kept
    assert summary["target"] == 100 and summary["decisions"] == 4 and summary["slides_verified"] == 1
    assert summary["extra_classes"][:2] == ["blast", "reactive lymphocyte"]


def test_the_printable_report_shows_model_and_verified_counts_and_changes_escaped(decided) -> None:
    run, cells = decided
    page = (run / "verified_report.html").read_text(encoding="utf-8")
    assert page.count('<section class="slide">') == 2 and "<script" not in page
    assert "Slide slide_&lt;b&gt;&amp;A" in page and "<b>&" not in page
    assert "Verified by ann at " in page and "Not verified yet" in page
    assert f"<td>{html.escape(cells['to_blast'])}</td><td>" in page and "</td><td>blast</td>" in page
    assert "Target count 100 cells: 92 short" in page


def test_export_labelled_writes_class_folders_that_onboard_and_fewshot_read(decided, tmp_path: Path) -> None:
    run, cells = decided
    folder = tmp_path / "labelled"
    result = CliRunner().invoke(app, ["review", str(run), "--export-labelled", str(folder)])
    assert result.exit_code == 0, result.output
    assert "wrote 8 verified cells" in result.output and "1 blast cell(s) left out" in result.output
    verified = {row["path"]: row["human_label"] for row in rows(run / "verified.csv") if row["human_label"]}
    manifest = rows(folder / MANIFEST_NAME)
    assert sorted(row["source"] for row in manifest) == sorted(p for p, label in verified.items() if label != "blast")
    for row in manifest:
        copy = folder / row["file"]
        assert copy.parts[-3] == row["class"] == verified[row["source"]]  # DIR/<class>/<slide>/<image>
        assert copy.read_bytes() == Path(row["source"]).read_bytes()

    with (run / "cells.csv").open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    onboard = read_labelled_folder(folder, tuple(name[2:] for name in header if name.startswith("p_")))
    assert sorted(zip(map(str, onboard.files), onboard.class_names)) == sorted(
        (str(folder / row["file"]), row["class"]) for row in manifest
    )
    fewshot = find_labelled_images(folder)
    assert Counter(fewshot.class_names[label] for label in fewshot.labels) == Counter(row["class"] for row in manifest)

    out = tmp_path / "head"
    fewshot_args = ["--backbone", "default", "--data", folder, "--eval", folder, "--labels-per-class", 1, "--out", out]
    result = CliRunner().invoke(train_app, ["fewshot", *map(str, fewshot_args), "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["eval_data"]["cells"] == fewshot.counts()


def test_export_refuses_a_folder_in_use_and_a_run_with_nothing_verified(decided, classified, tmp_path) -> None:
    run, _ = decided
    folder = tmp_path / "labelled"
    (folder / "old").mkdir(parents=True)
    result = CliRunner().invoke(app, ["review", str(run), "--export-labelled", str(folder)])
    assert result.exit_code == 2 and "is not empty" in result.output
    assert [path.name for path in folder.iterdir()] == ["old"]

    extra = tmp_path / "with_extra"
    result = CliRunner().invoke(app, ["review", str(run), "--export-labelled", str(extra), "--include-extra"])
    assert result.exit_code == 0 and (extra / "blast").is_dir(), result.output
    with pytest.raises(ValueError, match="blast are not classes of the model"):
        read_labelled_folder(extra, ("lymphocyte", "monocyte", "neutrophil", "eosinophil"))

    fresh = Path(shutil.copytree(classified, tmp_path / "fresh"))
    result = CliRunner().invoke(app, ["review", str(fresh), "--export-labelled", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no verified cell" in result.output and not (tmp_path / "none").exists()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".partial")]


def test_extra_classes_file_one_per_line(tmp_path: Path) -> None:
    listed = tmp_path / "classes.txt"
    listed.write_text("# our lab\nblast\n\n  hairy cell  \nneutrophil\nblast\n", encoding="utf-8")
    assert read_extra_classes(listed) == ("blast", "hairy cell", "neutrophil")
    listed.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(ReviewError, match="lists no class"):
        read_extra_classes(listed)
    for bad in ("a/b", ".hidden", "x" * 65):
        listed.write_text(bad + "\n", encoding="utf-8")
        with pytest.raises(ReviewError, match="cannot be a class name"):
            read_extra_classes(listed)
    with pytest.raises(ReviewError, match="cannot read"):
        read_extra_classes(tmp_path / "missing.txt")
