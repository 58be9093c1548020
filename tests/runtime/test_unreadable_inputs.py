"""Folders that cannot be read and special files (FIFOs, sockets, devices) get an error row, never silence or a hang.

Issue 13 item 3: an unreadable slide folder vanished from the reports with exit code 0, and FIFOs and sockets
met while walking a folder were left out without a word. Opening a FIFO blocks until someone writes to it, so
such files must be reported without being opened. The folders are built by each test beside real PBC cells;
``hema-infer`` runs in a subprocess (a hang would end in its timeout, not stop the test session).
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import read_rows, run_infer

from hema.runtime.discovery import find_cell_images

FOLDER_DENIED = "cannot read folder: permission denied"
FIFO = "cannot read image: named pipe (FIFO), not a file"
SOCKET = "cannot read image: socket, not a file"
DEVICE = "cannot read image: character device, not a file"


def _cell(pbc_dir: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(sorted((pbc_dir / "neutrophil").glob("*.jpg"))[0], path))


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening unix socket named like a cell image, in its own slide folder."""
    path = tmp_path / "exports" / "slide_02" / "cell_socket.jpg"
    path.parent.mkdir(parents=True)
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.fspath(path))
    yield path
    server.close()


def test_fifos_sockets_and_devices_in_a_folder_get_one_row_each_and_are_never_opened(
    pbc_dir: Path, tmp_path: Path, unix_socket: Path
) -> None:
    exports = tmp_path / "exports"
    cell = _cell(pbc_dir, exports / "slide_01" / "a_cell.jpg")
    os.mkfifo(exports / "slide_01" / "b_fifo.jpg")
    os.mkfifo(exports / "slide_01" / "c_fifo_notes.txt")  # no image suffix: still not silence
    (exports / "slide_01" / "d_device.png").symlink_to(os.devnull)
    out = tmp_path / "report"
    process = run_infer("classify", exports, "--out", out)
    assert process.returncode == 1, process.stderr
    rows = {Path(row["path"]).name: row for row in read_rows(out)}
    assert list(rows) == ["a_cell.jpg", "b_fifo.jpg", "c_fifo_notes.txt", "d_device.png", "cell_socket.jpg"]
    assert rows[cell.name]["status"] == "ok"
    expected = {"b_fifo.jpg": FIFO, "c_fifo_notes.txt": FIFO, "d_device.png": DEVICE, "cell_socket.jpg": SOCKET}
    for name, reason in expected.items():
        assert (rows[name]["status"], rows[name]["error"]) == ("error", reason), rows[name]
        assert f"{name}: {reason}" in process.stderr
    assert rows["cell_socket.jpg"]["slide"] == "slide_02"


def test_a_fifo_named_directly_is_reported_without_being_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "slide_03" / "cell.jpg"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    found = find_cell_images([fifo])
    assert found.images == () and found.unreadable == {fifo: FIFO}
    assert found.rows == (fifo,) and found.slides == {fifo: "slide_03"}


@pytest.mark.skipif(
    os.geteuid() == 0,
    reason="running as root, whom chmod 000 does not stop from listing a folder; "
    "test_a_folder_the_walk_may_not_list_is_an_error_row covers it by making os.scandir refuse, and "
    "test_bad_input_corpus.py runs a chmod-000 folder as an unprivileged user",
)
def test_a_chmod_000_slide_folder_is_an_error_row_and_exit_code_1(pbc_dir: Path, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    _cell(pbc_dir, exports / "slide_01" / "cell.jpg")
    _cell(pbc_dir, exports / "slide_02" / "cell.jpg")
    (exports / "slide_02").chmod(0)
    try:
        process = run_infer("classify", exports, "--out", tmp_path / "report", "--no-html")
    finally:
        (exports / "slide_02").chmod(0o755)
    assert process.returncode == 1, process.stderr
    rows = read_rows(tmp_path / "report")
    assert [(row["slide"], row["status"], row["error"]) for row in rows] == [
        ("slide_01", "ok", ""),
        ("slide_02", "error", FOLDER_DENIED),
    ]


def test_a_folder_the_walk_may_not_list_is_an_error_row(tmp_path: Path, monkeypatch) -> None:
    """As any user: ``os.scandir`` refuses one slide folder, as the kernel does for a folder of mode 000."""
    exports = tmp_path / "exports"
    (exports / "slide_01").mkdir(parents=True)
    (exports / "slide_01" / "cell.jpg").write_bytes(b"x")
    (exports / "slide_02").mkdir()
    (exports / "slide_02" / "cell.jpg").write_bytes(b"x")
    scandir = os.scandir

    def refuse_slide_02(path):
        if Path(path).name == "slide_02":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse_slide_02)
    found = find_cell_images([exports])
    assert found.images == (exports / "slide_01" / "cell.jpg",)
    assert found.unreadable == {exports / "slide_02": FOLDER_DENIED}
    assert found.rows == (exports / "slide_01" / "cell.jpg", exports / "slide_02")
    assert found.slides[exports / "slide_02"] == "slide_02"
    assert find_cell_images([exports / "slide_02"]).unreadable == {exports / "slide_02": FOLDER_DENIED}
