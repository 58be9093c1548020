"""Concurrent, failed and killed runs never corrupt an output folder's reports (issue 13 item 6).

- ``--out`` is locked (``OUT/.hema.lock``, ``flock``) for a whole ``classify`` or ``watch`` run: a second run into
  the same ``OUT`` is refused at once with exit code 2, a message naming the lock and the holder's pid, and
  nothing in ``OUT`` changed; the lock ends with its process, even one killed with ``kill -9``.
- A run that fails (an engine error, a bug, SIGTERM, ``kill -9``) leaves the previous run's ``cells.csv``,
  ``summary.json`` and ``report.html`` byte for byte; its rows so far are in ``OUT/cells.csv.partial``.
- An unexpected exception is exit code 3 with one line saying it is a bug in hema (traceback only with
  ``HEMA_DEBUG=1``).
- A commit (the renames moving the staged reports into place) interrupted half-way is finished by the next run.

Cells are symlinks to real PBC cells; ``hema-infer`` runs in subprocesses where a process must be killed or hold
a lock, in this process (typer's runner) where a function is made to fail.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import INFER, invoke, read_rows, run_infer

import hema.runtime.cli as cli
import hema.runtime.reports.html_page as html_page
from hema.runtime.cli import app

REPORTS = ("cells.csv", "summary.json", "report.html")
CLASSES = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")
DEADLINE = 120.0
SLOW = ("--batch-size", "2", "--threads", "1", "--decode-threads", "1", "--no-html")

HOLDER = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(descriptor, fcntl.LOCK_EX)
os.write(descriptor, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
sys.stdin.read()
"""


def _link_cells(pbc_dir: Path, folder: Path, count: int) -> Path:
    """``folder`` with ``count`` real PBC cells (symlinks), the classes taken in turn."""
    folder.mkdir(parents=True)
    sources = {name: sorted((pbc_dir / name).glob("*.jpg")) for name in CLASSES}
    for number in range(count):
        source = sources[CLASSES[number % len(CLASSES)]][number // len(CLASSES)]
        (folder / f"cell_{number:04d}.jpg").symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def few_cells(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One slide of 8 real cells, one of each class."""
    return _link_cells(pbc_dir, tmp_path_factory.mktemp("few") / "slide_few", 8)


@pytest.fixture(scope="module")
def many_cells(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One slide of 300 real cells: a run that takes seconds, long enough to be caught mid-way."""
    return _link_cells(pbc_dir, tmp_path_factory.mktemp("many") / "slide_many", 300)


@pytest.fixture(scope="module")
def previous_run(few_cells: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output folder holding a complete earlier run's three reports."""
    out = tmp_path_factory.mktemp("previous") / "out"
    result = invoke(app, "classify", few_cells, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def out(previous_run: Path, tmp_path: Path) -> Path:
    """A copy of the earlier run's output folder for this test to run into."""
    return Path(shutil.copytree(previous_run, tmp_path / "out"))


def snapshot(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in REPORTS}


def start_infer(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", INFER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="backslashreplace",
    )


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"hema-infer ended (exit {process.returncode}) before {what}:\n{process.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def rows_written(out: Path, before: dict[str, bytes]) -> int:
    """Rows the running classify has written so far, wherever it writes them (staged or over the old table)."""
    for path in (out / "cells.csv.partial", out / "cells.csv"):
        if path.is_file() and path.read_bytes() != before.get(path.name):
            return max(0, path.read_bytes().count(b"\n") - 1)
    return 0


def test_a_run_into_an_out_locked_by_another_process_is_refused_and_changes_nothing(
    out: Path, few_cells: Path, tmp_path: Path
) -> None:
    """classify and watch both refuse (exit 2) while another process holds OUT/.hema.lock; once that process
    is killed (kill -9: no clean-up), the lock is free and classify runs."""
    before = snapshot(out)
    command = [sys.executable, "-c", HOLDER, str(out / ".hema.lock")]
    holder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        refused = run_infer("classify", few_cells, "--out", out)
        assert refused.returncode == 2, refused.stderr
        assert f"{out} is in use by another hema-infer run (pid {holder.pid})" in refused.stderr
        assert str(out / ".hema.lock") in refused.stderr and "Traceback" not in refused.stderr
        assert "model:" not in refused.stderr  # refused before the model is even loaded
        assert time.monotonic() - started < 60
        (tmp_path / "in").mkdir()
        watched = invoke(app, "watch", tmp_path / "in", "--out", out, "--once", "--settle", "0")
        assert watched.exit_code == 2, watched.output
        assert f"pid {holder.pid}" in watched.output and ".hema.lock" in watched.output
        assert snapshot(out) == before
        assert sorted(path.name for path in out.iterdir()) == sorted([*REPORTS, ".hema.lock"])
    finally:
        holder.kill()
        holder.communicate(timeout=DEADLINE)
    after_kill = run_infer("classify", few_cells, "--out", out, "--no-html")
    assert after_kill.returncode == 0, after_kill.stderr
    assert len(read_rows(out)) == 8


def test_two_concurrent_classify_runs_never_mix_the_second_is_refused(
    out: Path, few_cells: Path, many_cells: Path
) -> None:
    """While one classify writes 300 cells into OUT, a second into the same OUT exits 2 at once; the first
    ends with its own complete reports, and no lock or staged file is left behind."""
    before = snapshot(out)
    first = start_infer("classify", many_cells, "--out", out, *SLOW)
    try:
        wait_for(lambda: rows_written(out, before) >= 4, "the first run's first rows", first)
        second = run_infer("classify", few_cells, "--out", out, "--no-html")
        still_running = first.poll() is None
        _, stderr = first.communicate(timeout=DEADLINE)
    finally:
        if first.poll() is None:
            first.kill()
    assert still_running, "the first run ended before the second started: use more cells"
    assert second.returncode == 2, second.stderr
    assert f"is in use by another hema-infer run (pid {first.pid})" in second.stderr
    assert first.returncode == 0, stderr
    rows = read_rows(out)
    assert [Path(row["path"]).name for row in rows] == [f"cell_{number:04d}.jpg" for number in range(300)]
    summary = (out / "summary.json").read_text(encoding="utf-8")
    assert '"files": 300' in summary and '"classified": 300' in summary
    assert not (out / "report.html").exists()  # the first run was --no-html: the older page went with its run
    assert sorted(path.name for path in out.iterdir()) == ["cells.csv", "summary.json"]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "kill -9"])
def test_a_run_killed_mid_way_leaves_the_previous_reports_byte_identical(
    out: Path, few_cells: Path, many_cells: Path, how: signal.Signals
) -> None:
    """Killed after its first rows, classify leaves the three earlier reports untouched and its rows so far in
    cells.csv.partial; SIGTERM exits 143 saying so. The next run goes on (the lock died with the process)."""
    before = snapshot(out)
    process = start_infer("classify", many_cells, "--out", out, *SLOW)
    try:
        wait_for(lambda: rows_written(out, before) >= 6, "the first rows", process)
        process.send_signal(how)
        _, stderr = process.communicate(timeout=DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
    assert snapshot(out) == before
    partial = (out / "cells.csv.partial").read_text(encoding="utf-8").splitlines()
    assert partial[0].startswith("path,slide,label") and 6 <= len(partial) - 1 < 300
    assert not (out / "summary.json.partial").exists() and not (out / ".hema.commit").exists()
    if how == signal.SIGTERM:
        assert process.returncode == 143, stderr
        assert "SIGTERM: stopped before the run finished" in stderr and "Traceback" not in stderr
        assert f"are in {out / 'cells.csv.partial'}" in stderr
    else:
        assert process.returncode == -signal.SIGKILL
        assert (out / ".hema.lock").is_file()  # left behind, but its lock ended with the process

    again = run_infer("classify", few_cells, "--out", out)
    assert again.returncode == 0, again.stderr
    assert len(read_rows(out)) == 8
    assert sorted(path.name for path in out.iterdir()) == sorted(REPORTS)


def test_an_engine_failing_on_its_second_batch_leaves_the_previous_reports_and_exits_3(
    out: Path, few_cells: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(out)
    open_engine = cli.open_engine

    def engine_failing_on_batch_2(*args: object, **keywords: object):
        engine = open_engine(*args, **keywords)
        run, calls = engine.run, []

        def run_or_fail(images):
            calls.append(len(images))
            if len(calls) == 2:
                raise RuntimeError("engine crashed on batch 2")
            return run(images)

        engine.run = run_or_fail
        return engine

    monkeypatch.setattr(cli, "open_engine", engine_failing_on_batch_2)
    result = invoke(app, "classify", few_cells, "--out", out, "--batch-size", "2")
    assert result.exit_code == 3, result.output
    assert "a bug in hema" in result.output and "RuntimeError: engine crashed on batch 2" in result.output
    assert "Traceback" not in result.output
    assert snapshot(out) == before
    partial = (out / "cells.csv.partial").read_text(encoding="utf-8").splitlines()
    assert len(partial) == 1 + 2  # the header and the first batch's rows
    assert sorted(path.name for path in out.iterdir()) == sorted([*REPORTS, "cells.csv.partial"])


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "HEMA_DEBUG=1"])
def test_an_internal_error_is_exit_3_with_one_line_and_the_traceback_only_when_asked(
    out: Path, few_cells: Path, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    """A bug (here: the page renderer raises after every cell is classified and summary.json is staged) is one
    line naming the exception; the earlier reports stay as they were, the staged summary is removed."""
    before = snapshot(out)

    def broken(*args: object, **keywords: object) -> str:
        raise RuntimeError("boom in the page")

    monkeypatch.setattr(html_page, "render_html_report", broken)
    if debug:
        monkeypatch.setenv("HEMA_DEBUG", "1")
    else:
        monkeypatch.delenv("HEMA_DEBUG", raising=False)
    result = invoke(app, "classify", few_cells, "--out", out)
    assert result.exit_code == 3, result.output
    [line] = [line for line in result.output.splitlines() if "bug in hema" in line]
    assert line.startswith("error: internal error") and "RuntimeError: boom in the page" in line
    assert ("Traceback (most recent call last)" in result.output) == debug
    assert snapshot(out) == before
    assert not (out / "summary.json.partial").exists() and not (out / "report.html.partial").exists()
    assert len((out / "cells.csv.partial").read_text(encoding="utf-8").splitlines()) == 1 + 8


def test_a_commit_cut_short_between_its_renames_is_finished_by_the_next_run(out: Path, tmp_path: Path) -> None:
    """Killed after moving cells.csv into place but before summary.json: the next run into OUT (here a watch)
    first finishes the renames the commit record names, and only then writes its own reports."""
    (out / "cells.csv").write_text("the new run's table\n")  # already moved into place
    (out / "summary.json.partial").write_text("the new run's summary\n")
    (out / ".hema.commit").write_text("cells.csv\nsummary.json\n")  # a --no-html run
    (tmp_path / "in").mkdir()
    result = invoke(app, "watch", tmp_path / "in", "--out", out, "--once", "--settle", "0", "--poll-interval", "0.05")
    assert result.exit_code == 0, result.output
    assert not (out / ".hema.commit").exists() and not (out / "summary.json.partial").exists()
    assert '"files": 0' in (out / "summary.json").read_text(encoding="utf-8")  # watch's own, from its journal


def test_finishing_a_commit_and_refusing_a_record_hema_did_not_write(out: Path) -> None:
    from hema.runtime.reports.output_lock import OutputError
    from hema.runtime.reports.run_output import claim_output

    (out / "cells.csv").write_text("new table\n")
    (out / "summary.json.partial").write_text("new summary\n")
    (out / ".hema.commit").write_text("cells.csv\nsummary.json\n")
    with claim_output(out):
        assert (out / "summary.json").read_text() == "new summary\n"
        assert not (out / "report.html").exists()  # the earlier page: the new run made none
        assert not (out / ".hema.commit").exists()
    assert sorted(path.name for path in out.iterdir()) == ["cells.csv", "summary.json"]

    before = {path.name: path.read_bytes() for path in out.iterdir()}
    (out / ".hema.commit").write_text("../../etc/passwd\n")
    with pytest.raises(OutputError, match="not a record hema wrote"), claim_output(out):
        pass
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.name != ".hema.commit"} == before


def test_a_symlink_planted_at_the_lock_is_refused_never_written_through(
    out: Path, few_cells: Path, tmp_path: Path
) -> None:
    before = snapshot(out)
    target = tmp_path / "lab_file.txt"
    target.write_text("the lab's own file\n")
    (out / ".hema.lock").symlink_to(target)
    result = invoke(app, "classify", few_cells, "--out", out)
    assert result.exit_code == 2, result.output
    assert "is a symbolic link" in result.output
    assert target.read_text() == "the lab's own file\n" and snapshot(out) == before


def test_a_refused_run_leaves_no_empty_output_folder_behind(tmp_path: Path) -> None:
    """An OUT created for a run that then stops before writing (no input) is removed again; exit 2."""
    out = tmp_path / "new" / "out"
    result = invoke(app, "classify", tmp_path / "no such folder", "--out", out)
    assert result.exit_code == 2, result.output
    assert not out.exists()


def test_exit_codes_are_documented_in_the_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    text = " ".join(invoke(app, "classify", "--help").output.split())
    for documented in ("0 all files classified", "1 some files could not be read", "2 no usable model",
                       "3 internal error", "HEMA_DEBUG=1", "OUT/.hema.lock", "OUT/cells.csv.partial"):  # fmt: skip
        assert documented in text, documented
    assert "3: an internal error" in (cli.__doc__ or "")
