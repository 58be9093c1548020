"""``hema-infer watch`` never mixes two models' results in one journal (issue 13 item 5).

The journal's first line names the model that wrote it (sha256 of its bytes and its classes). Watch resumed on
the same output folder with another model is refused with exit 2; ``--new-journal`` moves the old journal and
the reports made from it aside, deleting nothing, and starts a new one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from helpers import invoke, read_rows

from hema.runtime.cli import app
from hema.runtime.default_model import DEFAULT_MODEL_PATH

FAST = ("--once", "--settle", "0", "--poll-interval", "0.01", "--threads", "1", "--decode-threads", "1")
UNKNOWN_PROTOBUF_FIELD = bytes([0xC0, 0x3E, 0x01])  # field 1000 = 1: ignored by ONNX's parser, changes the bytes


def header(out: Path) -> dict:
    return json.loads((out / "journal.jsonl").read_text(encoding="utf-8").splitlines()[0])


def test_watch_resumed_with_another_model_is_refused_unless_a_new_journal_is_asked_for(
    pbc_dir: Path, tmp_path: Path
) -> None:
    root, out = tmp_path / "analyser", tmp_path / "report"
    (root / "slide_1").mkdir(parents=True)
    for cell in (pbc_dir / "basophil" / "BA_10387.jpg", pbc_dir / "platelet" / "PLATELET_100161.jpg"):
        shutil.copyfile(cell, root / "slide_1" / cell.name)
    retrained = tmp_path / "retrained.onnx"  # the same classes, other bytes: another model all the same
    retrained.write_bytes(DEFAULT_MODEL_PATH.read_bytes() + UNKNOWN_PROTOBUF_FIELD)

    first = invoke(app, "watch", root, "--out", out, *FAST)
    assert first.exit_code == 0, first.output
    assert header(out)["model_sha256"] == {".onnx": hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()}
    assert header(out)["class_names"][0] == "basophil"
    journal = (out / "journal.jsonl").read_bytes()
    reports = {name: (out / name).read_bytes() for name in ("cells.csv", "summary.json")}

    refused = invoke(app, "watch", root, "--out", out, "--model", retrained, "--unverified", *FAST)
    assert refused.exit_code == 2, refused.output
    assert "another model" in refused.output and "--new-journal" in refused.output
    assert (out / "journal.jsonl").read_bytes() == journal

    started_anew = invoke(
        app, "watch", root, "--out", out, "--model", retrained, "--unverified", "--new-journal", *FAST
    )
    assert started_anew.exit_code == 0, started_anew.output
    [earlier] = (out / "earlier").iterdir()
    assert (earlier / "journal.jsonl").read_bytes() == journal  # moved aside whole, with its reports
    assert {name: (earlier / name).read_bytes() for name in reports} == reports
    assert header(out)["model_sha256"] == {".onnx": hashlib.sha256(retrained.read_bytes()).hexdigest()}
    assert [row["label"] for row in read_rows(out)] == ["basophil", "platelet"]
