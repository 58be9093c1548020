"""``hema-infer watch`` on real cells arriving while it runs: every image gets exactly one row, across crashes.

The end-to-end tests run the console script in a subprocess, as a lab runs it, so that signals (SIGTERM,
``kill -9``) reach a real process and no Pillow setting made by another test in this process can hide a
truncated read. They wait by polling the output folder, never by fixed sleeps, with generous deadlines for a
loaded 2-core machine.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from hema.runtime.cli import app
from hema.runtime.watch.arrivals import ArrivalScanner, file_signature
from hema.runtime.watch.journal import Journal, JournalError
from hema.runtime.watch.model_identity import ModelIdentity

CLASSES = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet")
DEADLINE = 180.0  # seconds; far beyond what any step takes, so only a hang fails
FAST = ("--settle", "0.3", "--poll-interval", "0.05", "--empty-timeout", "2")


def hema_infer(*args: str | Path) -> list[str]:
    """The ``hema-infer`` command line: the console script beside this interpreter, else ``python -c``."""
    script = Path(sys.executable).with_name("hema-infer")
    head = [str(script)] if script.is_file() else [sys.executable, "-c", "from hema.runtime.cli import app; app()"]
    return [*head, *map(str, args)]


def start_watch(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        hema_infer("watch", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen | None = None) -> None:
    """Poll ``condition`` until it holds; fail after :data:`DEADLINE` or if ``process`` ends first."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"watch ended (exit {process.returncode}) before {what}: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def journal_rows(out: Path) -> list[dict]:
    """The complete rows of ``journal.jsonl`` after its header (a line being written is not counted)."""
    try:
        data = (out / "journal.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in data.split(b"\n")[1:-1]]


def csv_rows(out: Path) -> list[dict[str, str]]:
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def copy_cells(sources: list[Path], folder: Path) -> list[str]:
    """Copy real cells into ``folder``; return their keys (paths relative to the watched root's child)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        shutil.copyfile(source, folder / source.name)
    return [f"{folder.name}/{source.name}" for source in sources]


@pytest.fixture(scope="module")
def cells(pbc_dir: Path) -> list[Path]:
    """96 real PBC cells, 12 of every class."""
    return [path for name in CLASSES for path in sorted((pbc_dir / name).glob("*.jpg"))[:12]]


def assert_exactly_once(out: Path, keys: list[str], root: Path) -> None:
    """Every key has one journal row, one ``cells.csv`` row, and ``summary.json`` counts them all."""
    journal = Counter(row["path"] for row in journal_rows(out))
    assert journal == Counter(keys), "journal rows differ from the images: " + str(journal - Counter(keys))
    table = Counter(Path(row["path"]).relative_to(root).as_posix() for row in csv_rows(out))
    assert table == Counter(keys)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["files"] == summary["classified"] == len(keys) and summary["errors"] == 0


# --- the journal and the settle rule, without a model ----------------------------------------------------------


MODEL = ModelIdentity("model.onnx", {".onnx": "ab" * 32}, ("ig", "lymphocyte"))
HEADER = json.dumps(MODEL.header()) + "\n"


def record(key: str, size: int = 100) -> dict:
    return {"path": key, "slide": "s", "status": "ok", "label": "ig", "confidence": 0.9,
            "probabilities": [0.9, 0.1], "error": "", "review": "",
            "size": size, "mtime_ns": 1, "sha256": f"{size:064x}", "moved_from": None}  # fmt: skip


def test_torn_trailing_journal_line_is_cut_away(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    whole = HEADER + "".join(json.dumps(record(f"s/{n}.jpg")) + "\n" for n in range(3))
    path.write_text(whole + '{"path": "s/3.jpg", "sta', encoding="utf-8")
    with Journal.open(path, MODEL) as journal:
        assert [r["path"] for r in journal.records] == ["s/0.jpg", "s/1.jpg", "s/2.jpg"]
        assert journal.repaired_bytes == len('{"path": "s/3.jpg", "sta') and "s/3.jpg" not in journal
        journal.append([record("s/3.jpg"), record("s/0.jpg")])  # a file version already journaled: not again
    assert [json.loads(line).get("path") for line in path.read_text(encoding="utf-8").splitlines()] == [
        None, "s/0.jpg", "s/1.jpg", "s/2.jpg", "s/3.jpg"]  # fmt: skip


def test_a_later_row_of_a_file_replaces_its_earlier_row_and_a_move_replaces_the_old_path(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, MODEL) as journal:
        journal.append([record("a/0.jpg"), record("a/1.jpg", size=200)])
        journal.append([record("a/0.jpg", size=300)])  # rewritten by the analyser
        journal.append([{**record("b/1.jpg", size=200), "moved_from": "a/1.jpg"}])  # moved to slide b
    with Journal.open(path, MODEL) as journal:
        assert [(r["path"], r["size"]) for r in journal.records] == [("a/0.jpg", 300), ("b/1.jpg", 200)]
        assert dict(journal.signatures) == {"a/0.jpg": (300, 1), "b/1.jpg": (200, 1)}
        assert journal.keys_with_sha256(f"{200:064x}") == ["b/1.jpg"] and journal.keys_with_sha256(f"{100:064x}") == []


def test_zero_filled_last_line_is_cut_and_damage_before_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    whole = HEADER + json.dumps(record("s/0.jpg")) + "\n"
    path.write_bytes(whole.encode() + b"\0" * 40 + b"\n")  # what a power loss can leave after the last block
    with Journal.open(path, MODEL) as journal:
        assert len(journal) == 1 and journal.repaired_bytes == 41
    assert path.read_text(encoding="utf-8") == whole
    path.write_text(HEADER + "garbage\n" + json.dumps(record("s/0.jpg")) + "\n", encoding="utf-8")
    with pytest.raises(JournalError, match="line 2"):
        Journal.open(path, MODEL)


def test_a_new_journal_starts_with_the_model_and_another_model_or_a_second_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    with Journal.open(path, MODEL) as journal:
        journal.append([record("s/0.jpg")])
    assert ModelIdentity.from_header(json.loads(path.read_text(encoding="utf-8").splitlines()[0])) == MODEL
    written = path.read_bytes()
    retrained = ModelIdentity("model.onnx", {".onnx": "cd" * 32}, MODEL.class_names)
    renamed = ModelIdentity("model.onnx", MODEL.sha256, ("ig", "monocyte"))
    for other in (retrained, renamed):
        with pytest.raises(JournalError, match="another model.*--new-journal"):
            Journal.open(path, other)
    copied = ModelIdentity("copy/model.onnx", MODEL.sha256, MODEL.class_names)
    with Journal.open(path, copied) as journal:
        assert len(journal) == 1  # the same bytes loaded from elsewhere: the same model
    with Journal.open(path, MODEL), pytest.raises(JournalError, match="in use"):
        Journal.open(path, MODEL)
    assert path.read_bytes() == written


@pytest.mark.parametrize(
    "content",
    [
        b"lab notes\nsecond line, still being typed",  # a torn last line, were it a journal
        (json.dumps(record("s/0.jpg")) + "\n" + '{"path": "s/1.jpg", "sta').encode(),  # rows but no header
        b"\xff\xd8\xff\xe0\0\x10JFIF\0\n\x01\x02\0\0",  # a JPEG saved under the journal's name
        HEADER.encode()[:30],  # a header that is not one
    ],
    ids=["text", "headerless", "binary", "header-prefix"],
)
def test_repair_never_cuts_a_file_that_is_not_a_hema_journal(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(content)
    with pytest.raises(JournalError, match="not a hema watch journal.*left as it is"):
        Journal.open(path, MODEL)
    assert path.read_bytes() == content


def test_a_file_is_ready_only_once_unchanged_for_the_settle_time(tmp_path: Path) -> None:
    now = [0.0]
    scanner = ArrivalScanner(tmp_path, settle=1.0, empty_timeout=5.0, clock=lambda: now[0])
    (tmp_path / "slide_1").mkdir()
    growing = tmp_path / "slide_1" / "cell.jpg"
    growing.write_bytes(b"x" * 10)
    (tmp_path / "slide_1" / "empty.png").write_bytes(b"")
    for clutter in ("next.jpg.tmp", "next.jpg.part", ".hidden.jpg", "notes.txt"):
        (tmp_path / "slide_1" / clutter).write_bytes(b"x")
    assert scanner.poll({}) == []
    now[0] = 0.9
    with growing.open("ab") as handle:  # still being written: the clock starts again
        handle.write(b"y" * 10)
    assert scanner.poll({}) == []
    now[0] = 1.5
    assert scanner.poll({}) == []
    now[0] = 2.0
    assert [arrival.key for arrival in scanner.poll({})] == ["slide_1/cell.jpg"]
    journaled = {"slide_1/cell.jpg": file_signature(growing)}
    assert scanner.poll(journaled) == [] and scanner.skipped == 1  # notes.txt; temporary files not
    now[0] = 5.0
    assert [arrival.key for arrival in scanner.poll(journaled)] == ["slide_1/empty.png"]
    journaled["slide_1/empty.png"] = file_signature(tmp_path / "slide_1" / "empty.png")
    with growing.open("ab") as handle:  # journaled, then rewritten: watched again until it settles anew
        handle.write(b"z")
    assert scanner.poll(journaled) == []
    now[0] = 6.0
    assert [arrival.key for arrival in scanner.poll(journaled)] == ["slide_1/cell.jpg"]


def test_an_output_folder_inside_the_watched_folder_is_not_searched(tmp_path: Path) -> None:
    for folder in ("slide_1", "report"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "cell.jpg").write_bytes(b"x")
    scanner = ArrivalScanner(tmp_path, settle=0.0, exclude=tmp_path / "report")
    assert [arrival.key for arrival in scanner.poll({})] == ["slide_1/cell.jpg"]


# --- hema-infer watch on real cells -----------------------------------------------------------------------------


def write_slowly(source: Path, target: Path, chunks: int = 12, pause: float = 0.1) -> None:
    """Write a real JPEG in chunks, as a slow analyser or network share does: pauses well under the settle time."""
    data = source.read_bytes()
    step = -(-len(data) // chunks)
    with target.open("wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            time.sleep(pause)


class ReportReader(threading.Thread):
    """Reads the reports over and over while watch rewrites them; records any read that is not a whole file."""

    def __init__(self, out: Path) -> None:
        super().__init__(daemon=True)
        self.out, self.reads, self.broken, self.running = out, 0, [], True

    def run(self) -> None:
        while self.running:
            try:
                summary = (self.out / "summary.json").read_text(encoding="utf-8")
                table = (self.out / "cells.csv").read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
            try:
                json.loads(summary)
            except ValueError:
                self.broken.append(summary)
            rows = list(csv.reader(table.splitlines()))
            if not table.endswith("\n") or any(len(row) != len(rows[0]) for row in rows):
                self.broken.append(table)
            self.reads += 1


@pytest.mark.slow
def test_cells_arriving_in_two_waves_are_each_classified_once(cells: list[Path], tmp_path: Path) -> None:
    root, out = tmp_path / "analyser", tmp_path / "report"
    root.mkdir()
    process = start_watch(root, "--out", out, "--batch-size", "4", "--settle", "1.0", "--poll-interval", "0.05")
    reader = ReportReader(out)
    reader.start()
    try:
        keys = copy_cells(cells[0::12], root / "slide_A")  # one cell of every class
        wait_for(lambda: len(journal_rows(out)) >= len(keys), "the first wave", process)
        keys += copy_cells(cells[1::12], root / "slide_B")
        write_slowly(cells[2], root / "slide_B" / "slow_cell.jpg")
        keys.append("slide_B/slow_cell.jpg")
        wait_for(lambda: len(journal_rows(out)) >= len(keys), "the second wave", process)
        wait_for(lambda: len(csv_rows(out)) >= len(keys), "the reports to catch up", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE)
    finally:
        reader.running = False
        if process.poll() is None:
            process.kill()
    reader.join(timeout=10)
    assert process.returncode == 0, stderr
    assert_exactly_once(out, keys, root)
    slow = next(row for row in journal_rows(out) if row["path"] == "slide_B/slow_cell.jpg")
    assert slow["status"] == "ok" and slow["error"] == "", slow  # read once complete, not as a truncated JPEG
    assert reader.reads > 0 and reader.broken == [], reader.broken[:1]
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no temporary files left
    if importlib.util.find_spec("hema.runtime.reports.html_page") is not None:
        assert "slow_cell.jpg" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_gives_every_image_exactly_one_row(cells: list[Path], tmp_path: Path) -> None:
    root, out = tmp_path / "analyser", tmp_path / "report"
    keys = [key for slide in range(4) for key in copy_cells(cells[slide::4], root / f"slide_{slide}")]
    small = ("--batch-size", "2", "--threads", "1", "--decode-threads", "1", *FAST)
    killed_at = []
    for rows in (20, 50):  # killed twice: the second run resumes the first, and is killed in turn
        process = start_watch(root, "--out", out, *small)
        try:
            wait_for(lambda rows=rows: len(journal_rows(out)) >= rows, f"{rows} journal rows", process)
        finally:
            os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=DEADLINE)
        killed_at.append(len(journal_rows(out)))
        assert rows <= killed_at[-1] < len(keys), "watch finished before it could be killed mid-run"
    print(f"\nkill -9 after {killed_at[0]}, restart, kill -9 after {killed_at[1]} of {len(keys)} journal rows")

    restarted = subprocess.run(
        hema_infer("watch", root, "--out", out, "--once", *small), capture_output=True, text=True, timeout=DEADLINE
    )
    assert restarted.returncode == 0, restarted.stderr
    assert f"resuming: {killed_at[1]} cell(s)" in restarted.stderr
    assert_exactly_once(out, keys, root)


@pytest.mark.slow
def test_sigterm_finishes_the_batch_and_writes_final_reports(cells: list[Path], tmp_path: Path) -> None:
    root, out = tmp_path / "analyser", tmp_path / "report"
    keys = copy_cells(cells[:60], root / "slide_1")
    process = start_watch(root, "--out", out, "--batch-size", "4", "--threads", "1", *FAST)
    try:
        wait_for(lambda: len(journal_rows(out)) >= 8, "some journal rows", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "SIGTERM: stopped after the current batch" in stderr
    journaled = [row["path"] for row in journal_rows(out)]
    assert len(journaled) % 4 == 0 or len(journaled) == len(keys)  # whole batches only
    assert_exactly_once(out, journaled, root)  # the final reports hold exactly what the journal holds

    finished = subprocess.run(
        hema_infer("watch", root, "--out", out, "--once", *FAST), capture_output=True, text=True, timeout=DEADLINE
    )
    assert finished.returncode == 0, finished.stderr
    assert_exactly_once(out, keys, root)


def test_watch_refuses_an_output_folder_in_use(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    (tmp_path / "in").mkdir()
    with Journal.open(tmp_path / "out" / "journal.jsonl", MODEL):
        result = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--once"])
    assert result.exit_code == 2 and "in use" in result.output
    with Journal.open(tmp_path / "out" / "journal.jsonl", MODEL):  # a new journal is not taken from under it
        result = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--once",
                                          "--new-journal"])  # fmt: skip
    assert result.exit_code == 2 and "in use" in result.output
    assert (tmp_path / "out" / "journal.jsonl").is_file() and not (tmp_path / "out" / "earlier").exists()


def test_watch_leaves_a_file_that_is_not_a_journal_as_it_is_and_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    notes = b"shift notes\nslide 07 re-stained, do not count"
    (tmp_path / "out" / "journal.jsonl").write_bytes(notes)
    result = CliRunner().invoke(app, ["watch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--once"])
    assert result.exit_code == 2 and "not a hema watch journal" in result.output
    assert (tmp_path / "out" / "journal.jsonl").read_bytes() == notes
