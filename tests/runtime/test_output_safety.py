"""What hema writes is safe to open, and writes nowhere else (issue 13 item 8).

- ``cells.csv`` opened in a spreadsheet runs no formula that a file or folder name carries (CSV injection):
  text values starting with ``=``, ``+``, ``-``, ``@``, tab or CR get a ``'`` in front, as OWASP recommends.
- A symlink (or hard link) planted at a report's path, or at the watch journal's, is never written through.
- Control characters in file names (``ESC]0;...BEL`` sets a terminal's title, ``ESC[2J`` clears it, CR overwrites
  the line) reach the terminal escaped (``\\x1b``), never raw, whatever ``hema-infer`` prints.

Image files are copies of a real PBC cell, written by the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import INFER, invoke, read_rows

from hema.runtime.cli import app

FORMULAS = ['=HYPERLINK("evil.example","x").jpg', "+1+1.jpg", "-2+3.jpg", "@SUM(1).jpg", "\tTAB.jpg", "\rCR.jpg"]
REPORTS = ("cells.csv", "summary.json", "report.html")
PRECIOUS = "the lab's own file: not for hema to write\n"


@pytest.fixture(scope="module")
def cell_bytes(pbc_dir: Path) -> bytes:
    return sorted((pbc_dir / "neutrophil").glob("*.jpg"))[0].read_bytes()


def test_names_that_start_like_formulas_are_written_as_text(
    cell_bytes: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths and the slide (named by its folder, ``@slide``) get ``'`` in front; numbers never do."""
    folder = tmp_path / "@slide"
    folder.mkdir()
    names = [*FORMULAS, "'quoted.jpg", "plain.jpg"]
    for name in names:
        (folder / name).write_bytes(cell_bytes)
    (folder / "=bad.jpg").write_text("not an image\n")
    monkeypatch.chdir(folder)
    result = invoke(app, "classify", *(f"./{name}" for name in [*names, "=bad.jpg"]), "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output  # the one unreadable file

    rows = read_rows(tmp_path / "out")
    assert [row["path"] for row in rows] == [
        *("'" + name for name in [*FORMULAS, "'quoted.jpg"]),
        "plain.jpg",
        "'=bad.jpg",
    ]
    assert {row["slide"] for row in rows} == {"'@slide"}
    assert [row["path"][1:] if row["path"].startswith("'") else row["path"] for row in rows] == [*names, "=bad.jpg"]
    assert len({row["label"] for row in rows[:-1]}) == 1  # one cell, copied under every name
    for row in rows[:-1]:
        assert row["status"] == "ok"
        assert all(float(value) >= 0 for name, value in row.items() if name == "confidence" or name.startswith("p_"))
    assert rows[-1]["status"] == "error" and rows[-1]["error"].startswith("cannot read image")


def _plant_links(out: Path, elsewhere: Path) -> dict[str, Path]:
    """A symlink at each report's path to a lab file elsewhere, and one dangling link; their targets."""
    out.mkdir()
    elsewhere.mkdir()
    targets = {}
    for name in REPORTS:
        targets[name] = elsewhere / f"lab_{name}"
        targets[name].write_text(PRECIOUS)
        (out / name).symlink_to(targets[name])
    return targets


def _assert_untouched(out: Path, targets: dict[str, Path], reports: tuple[str, ...] = REPORTS) -> None:
    for name, target in targets.items():
        assert target.read_text() == PRECIOUS, f"{name}: written through the link"
    for name in reports:
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0, f"{name}: not replaced"


def test_classify_replaces_links_planted_at_its_reports(cell_bytes: bytes, tmp_path: Path) -> None:
    """cells.csv (streamed row by row), summary.json and report.html replace a planted symlink, never follow it."""
    (tmp_path / "slide").mkdir()
    (tmp_path / "slide" / "cell.jpg").write_bytes(cell_bytes)
    out = tmp_path / "out"
    targets = _plant_links(out, tmp_path / "elsewhere")
    result = invoke(app, "classify", tmp_path / "slide", "--out", out)
    assert result.exit_code == 0, result.output
    _assert_untouched(out, targets)
    assert read_rows(out)[0]["status"] == "ok"


def test_classify_never_writes_through_a_hard_link_or_a_dangling_symlink(cell_bytes: bytes, tmp_path: Path) -> None:
    (tmp_path / "slide").mkdir()
    (tmp_path / "slide" / "cell.jpg").write_bytes(cell_bytes)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "lab.csv").write_text(PRECIOUS)
    os.link(elsewhere / "lab.csv", out / "cells.csv")  # same file, two names: truncating one empties both
    (out / "summary.json").symlink_to(elsewhere / "not_yet.json")  # opened through, it would be created there
    result = invoke(app, "classify", tmp_path / "slide", "--out", out, "--no-html")
    assert result.exit_code == 0, result.output
    assert (elsewhere / "lab.csv").read_text() == PRECIOUS
    assert not (elsewhere / "not_yet.json").exists()
    assert read_rows(out)[0]["status"] == "ok"


def test_watch_replaces_links_planted_at_its_reports(cell_bytes: bytes, tmp_path: Path) -> None:
    (tmp_path / "in" / "slide").mkdir(parents=True)
    (tmp_path / "in" / "slide" / "cell.jpg").write_bytes(cell_bytes)
    out = tmp_path / "out"
    targets = _plant_links(out, tmp_path / "elsewhere")
    result = invoke(app, "watch", tmp_path / "in", "--out", out, "--once", "--settle", "0", "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    _assert_untouched(out, targets)


@pytest.mark.parametrize("content", ["", PRECIOUS], ids=["empty target", "a lab file"])
def test_watch_refuses_a_symlink_at_its_journal(cell_bytes: bytes, tmp_path: Path, content: str) -> None:
    """A linked journal would be appended to (an empty target gets hema's header): refused, exit 2, untouched."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cell.jpg").write_bytes(cell_bytes)
    (tmp_path / "out").mkdir()
    target = tmp_path / "lab.log"
    target.write_text(content)
    (tmp_path / "out" / "journal.jsonl").symlink_to(target)
    result = invoke(app, "watch", tmp_path / "in", "--out", tmp_path / "out", "--once", "--settle", "0")
    assert result.exit_code == 2, result.output
    assert "symbolic link" in result.output
    assert target.read_text() == content


# A title-setting OSC sequence, a screen clear, a colour, BEL and CR. (Click strips ``ESC[...m``-like sequences
# itself when output is not a terminal, but not OSC, lone ESC, BEL or CR: these show what a terminal would get.)
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31m\r"


@pytest.fixture(scope="module")
def hostile_slide(cell_bytes: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real cell, an unreadable file (an error line) and a note (a skip line), all with hostile names."""
    folder = tmp_path_factory.mktemp("hostile") / f"slide{HOSTILE}"
    folder.mkdir()
    (folder / f"cell{HOSTILE}.jpg").write_bytes(cell_bytes)
    (folder / f"bad{HOSTILE}.jpg").write_text("not an image\n")
    (folder / f"notes{HOSTILE}.txt").write_text("slide notes\n")
    return folder


@pytest.mark.parametrize("command", ["classify", "watch"])
def test_control_characters_in_file_names_never_reach_the_terminal_raw(
    hostile_slide: Path, tmp_path: Path, command: str
) -> None:
    """``hema-infer`` in a subprocess: its stdout and stderr bytes hold no ESC, BEL or CR; the names are escaped."""
    options = ("--once", "--settle", "0", "--poll-interval", "0.05") if command == "watch" else ("--no-html",)
    shutil.copytree(hostile_slide, tmp_path / "in" / hostile_slide.name)
    done = subprocess.run(
        [sys.executable, "-c", INFER, command, str(tmp_path / "in"), "--out", str(tmp_path / "out"), *options],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stderr[-3000:]  # the unreadable file
    printed = done.stdout + done.stderr
    for raw in (b"\x1b", b"\x07", b"\r"):
        assert raw not in printed, f"raw {raw!r} printed:\n{printed!r}"
    assert rb"bad\x1b]0;owned\x07\x1b[2J\x1b[31m\r.jpg: cannot read image" in done.stderr
    if command == "classify":
        assert rb"e.g. " in done.stderr and rb"notes\x1b]0;owned" in done.stderr
