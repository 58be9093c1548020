"""The verification journal on its own: durable appends, resume, torn last line, damage, conflicts, locking."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hema.runtime.verification.journal import JOURNAL_NAME, Conflict, DecisionJournal, JournalError

CLASSES = ["lymphocyte", "neutrophil"]


def _open(folder: Path, classes: list[str] = CLASSES) -> DecisionJournal:
    return DecisionJournal.open(folder / JOURNAL_NAME, classes)


def _label(journal: DecisionJournal, cell: str, label: str | None, base: int, slide: str = "s1", user: str = "ann"):
    return journal.label(slide=slide, cell=cell, model_label="neutrophil", human_label=label, base=base, user=user)


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()]


def test_decisions_are_one_json_line_each_and_resume_after_reopening(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    first = _label(journal, "s1/a.jpg", "lymphocyte", base=0)
    _label(journal, "s1/b.jpg", "blast", base=0)
    _label(journal, "s1/a.jpg", None, base=first["rev"])  # undo: back to the model's class
    done = journal.verify(slide="s1", verified=True, base=journal.slide_rev("s1"), user="bob")
    journal.close()

    header, *records = _lines(tmp_path)
    assert header["hema_verification"] == 1 and header["class_names"] == CLASSES
    assert [record["rev"] for record in records] == [1, 2, 3, 4]
    assert records[0] == first and records[3] == done
    assert {"cell", "model_label", "human_label", "user", "time"} <= set(records[1])
    assert records[2]["human_label"] is None and records[3]["kind"] == "slide" and records[3]["user"] == "bob"

    again = _open(tmp_path)
    assert again.rev == 4 and again.repaired == 0
    assert again.cell("s1/a.jpg")["human_label"] is None and again.cell("s1/b.jpg")["human_label"] == "blast"
    assert again.slide("s1")["verified"] is True and again.slide_rev("s1") == 4 and again.slide_rev("s2") == 0
    assert [record["rev"] for record in again.since(2)] == [3, 4]
    again.close()


def test_each_line_is_fsynced_before_append_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = _open(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.fstat(descriptor).st_size)  # the size on disk when the sync was asked for
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    _label(journal, "s1/a.jpg", "lymphocyte", base=0)
    assert synced == [(tmp_path / JOURNAL_NAME).stat().st_size]  # synced once, with the whole line written
    journal.close()


def test_a_failed_write_records_nothing_and_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = _open(tmp_path)
    _label(journal, "s1/a.jpg", "lymphocyte", base=0)
    size = (tmp_path / JOURNAL_NAME).stat().st_size

    def broken_disk(descriptor: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_disk)
    with pytest.raises(OSError, match="Input/output"):
        _label(journal, "s1/b.jpg", "blast", base=0)
    monkeypatch.undo()
    assert (tmp_path / JOURNAL_NAME).stat().st_size == size and journal.rev == 1 and journal.cell("s1/b.jpg") is None
    _label(journal, "s1/b.jpg", "blast", base=0)
    journal.close()
    assert [record["rev"] for record in _lines(tmp_path)[1:]] == [1, 2]


@pytest.mark.parametrize("torn", [b'{"rev": 3, "kind": "lab', b"\x00" * 40 + b"\n", b'{"rev": 3}\n'])
def test_a_torn_last_line_is_cut_away_and_reported(tmp_path: Path, torn: bytes) -> None:
    journal = _open(tmp_path)
    _label(journal, "s1/a.jpg", "lymphocyte", base=0)
    _label(journal, "s1/b.jpg", "blast", base=0)
    journal.close()
    path = tmp_path / JOURNAL_NAME
    whole = path.read_bytes()
    path.write_bytes(whole + torn)

    again = _open(tmp_path)
    assert again.repaired == len(torn) and again.rev == 2
    assert path.read_bytes() == whole
    _label(again, "s1/c.jpg", "lymphocyte", base=0)  # the next decision follows the last whole line
    again.close()
    assert [record["rev"] for record in _lines(tmp_path)[1:]] == [1, 2, 3]


def test_damage_before_the_last_line_is_refused_untouched(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    for cell in ("a", "b", "c"):
        _label(journal, f"s1/{cell}.jpg", "lymphocyte", base=0)
    journal.close()
    path = tmp_path / JOURNAL_NAME
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    with pytest.raises(JournalError, match="line 3 is damaged"):
        _open(tmp_path)
    assert path.read_bytes() == before


def test_foreign_files_and_other_models_journals_are_refused(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_NAME
    path.write_text('{"path": "a.jpg", "status": "ok"}\n')  # e.g. a watch journal copied here
    with pytest.raises(JournalError, match="not a hema verification journal"):
        _open(tmp_path)
    path.unlink()
    _open(tmp_path).close()
    with pytest.raises(JournalError, match="other classes"):
        _open(tmp_path, ["basophil", "neutrophil"])
    path.write_text('{"hema_verification": 2, "class_names": ["lymphocyte", "neutrophil"]}\n')
    with pytest.raises(JournalError, match="another version"):
        _open(tmp_path)


def test_a_symbolic_link_at_the_journal_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("a lab's other file\n")
    (tmp_path / JOURNAL_NAME).symlink_to(elsewhere)
    with pytest.raises(JournalError, match="symbolic link"):
        _open(tmp_path)
    assert elsewhere.read_text() == "a lab's other file\n"


def test_a_second_review_of_the_same_run_is_refused(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    with pytest.raises(JournalError, match="in use"):
        _open(tmp_path)
    journal.close()
    _open(tmp_path).close()


def test_two_tabs_a_stale_change_is_a_conflict_never_a_silent_overwrite(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    seen_by_both = 0
    mine = _label(journal, "s1/a.jpg", "lymphocyte", base=seen_by_both, user="ann")  # tab 1
    with pytest.raises(Conflict, match=r"ann put it into lymphocyte"):
        _label(journal, "s1/a.jpg", "blast", base=seen_by_both, user="bob")  # tab 2, not yet updated
    assert journal.cell("s1/a.jpg")["human_label"] == "lymphocyte" and journal.rev == 1
    _label(journal, "s1/b.jpg", "blast", base=0, user="bob")  # another cell of the slide: no conflict
    _label(journal, "s1/a.jpg", "blast", base=mine["rev"], user="bob")  # tab 2 after seeing tab 1's decision
    assert journal.cell("s1/a.jpg")["human_label"] == "blast"
    journal.close()


def test_a_slide_is_verified_only_as_seen_and_then_its_cells_are_locked(tmp_path: Path) -> None:
    journal = _open(tmp_path)
    _label(journal, "s1/a.jpg", "lymphocyte", base=0)
    seen = journal.slide_rev("s1")
    _label(journal, "s1/b.jpg", "blast", base=0)  # another tab changes a cell of the slide
    with pytest.raises(Conflict, match="slide s1 changed elsewhere"):
        journal.verify(slide="s1", verified=True, base=seen, user="ann")
    journal.verify(slide="s1", verified=True, base=journal.slide_rev("s1"), user="ann")
    with pytest.raises(Conflict, match="marked verified by ann"):
        _label(journal, "s1/c.jpg", "lymphocyte", base=0)
    _label(journal, "s2/d.jpg", "lymphocyte", base=0, slide="s2")  # other slides are open
    journal.verify(slide="s1", verified=False, base=journal.slide_rev("s1"), user="ann")  # reopened
    _label(journal, "s1/c.jpg", "lymphocyte", base=0)
    journal.close()
