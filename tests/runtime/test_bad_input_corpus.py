"""A corpus of bad input beside real cells: every file gets exactly one row and no batch crashes (issue 5 item 4,
issue 13).

The corpus is generated, deterministically, next to a few real PBC cells copied in: an empty file, a truncated
JPEG, a note named ``.jpg``, a PostScript file named ``.jpg`` and a GIF named ``.png`` (formats no cell image has,
never decoded), an RGBA, a grey and a 16-bit PNG of real cells, a decompression bomb, images of
nonsense size, a symlink loop, a dangling link, a file nobody may read, a named pipe and a unix socket named like
cell images (never opened), a subfolder nobody may list, copies of real cells whose names start like spreadsheet
formulas (``=``, ``+``, ``-``, ``@``) or hold terminal control characters (ESC, BEL), and a file name that is not
UTF-8. The corpus is classified twice: by its absolute path, and as ``hema-infer classify .`` from inside the
slide folder, where ``cells.csv`` names files by their bare names and a name that starts like a formula gets
``'`` in front. ``hema-infer`` runs in a subprocess, as a lab runs it. Where the tests run as root, whom
``chmod 000`` does not stop (on a file or on a folder), it runs as the unprivileged user 65534, or, where that user
cannot reach the interpreter (a pyenv Python under ``/root``), as root without the capabilities that override
file modes. So the corpus lives in a folder every user can enter: pytest's own temporary folders are private to
their owner.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import read_rows, run_infer
from PIL import Image, ImageFile

from hema.runtime.card import InputSpec
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.preprocessing import ImageTooLargeError, load_cell_image

NOBODY = 65534
CELLS = {"a_cell.jpg": "basophil", "c_cell.jpg": "lymphocyte", "m_cell.jpg": "neutrophil", "z_cell.jpg": "platelet"}
VALID = {"f_rgba.png", "g_grey.png", "h_grey16.png"}
BAD = {  # file -> what its error message must say
    "b_empty.jpg": "empty file",
    "d_truncated.jpg": "truncated",
    "e_text.jpg": "not an image",
    "i_bomb.png": "image too large: 400 megapixels",
    "j_large.png": "image too large: 7000x7000 pixels",
    "k_thin.png": "image too large: 1x100000 pixels",
    "l_loop_a.jpg": "symlink loop",
    "l_loop_b.jpg": "symlink loop",
    "n_unreadable.jpg": "permission denied",
    "p_dangling.jpg": "file not found",
    "r_postscript.jpg": "EPS (Encapsulated Postscript) is not a cell image format",
    "s_gif.png": "GIF (Compuserve GIF) is not a cell image format",
}
NOT_FILES = {  # what is never opened (a pipe would block), or cannot be listed -> its whole error message
    "o_fifo.jpg": "cannot read image: named pipe (FIFO), not a file",
    "t_socket.png": "cannot read image: socket, not a file",
    "u_locked": "cannot read folder: permission denied",
}
LOCKED_CELL = "u_locked/a_cell.jpg"  # inside the folder nobody may list: a row of its own only where it is listed
FORMULAS = {"+1.jpg": "basophil", "-1.jpg": "lymphocyte", "=1+1.jpg": "neutrophil", "@SUM(1).jpg": "platelet"}
HOSTILE = "v_cell\x1b]0;owned\x07.jpg"  # an OSC sequence that sets a terminal's title, ended by BEL
SHOWN = {HOSTILE: "v_cell\ufffd]0;owned\ufffd.jpg"}  # how cells.csv names it: control characters as U+FFFD
ROWS = sorted([*CELLS, *VALID, *BAD, *NOT_FILES, *FORMULAS, HOSTILE])  # the order of a sorted walk
SPEC = InputSpec(height=224, width=224)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(width: int, height: int) -> bytes:
    """A black 1-bit PNG built row by row: its header declares ``width x height`` pixels, its file is tiny."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


@dataclass(frozen=True)
class Reader:
    """How to start ``hema-infer`` so that file modes bind it: a command prefix and ``subprocess.run`` keywords."""

    prefix: tuple[str, ...] = ()
    keywords: dict[str, Any] = field(default_factory=dict)


def probabilities(row: dict[str, str]) -> np.ndarray:
    return np.array([float(value) for name, value in row.items() if name.startswith("p_")])


def row_name(row: dict[str, str], slide: Path) -> str:
    """The file a row of ``cells.csv`` is about, relative to ``slide`` (``u_locked/a_cell.jpg``).

    One leading ``'`` (the spreadsheet guard) is dropped, as ``cells.csv``'s readers are told to; a path relative
    to the folder classified is taken as it is, an absolute one relative to ``slide``.
    """
    text = row["path"][1:] if row["path"].startswith("'") else row["path"]
    path = Path(text)
    return (path.relative_to(slide) if path.is_absolute() else path).as_posix()


def rows_by_name(out: Path, slide: Path) -> dict[str, dict[str, str]]:
    return {row_name(row, slide): row for row in read_rows(out)}


def expected_rows(reader: tuple[Reader | None, str]) -> list[str]:
    """Every row's :func:`row_name`, in order: where nothing binds file modes, the locked folder is listed."""
    listed = reader[0] is None
    return [SHOWN.get(name, LOCKED_CELL if listed and name == "u_locked" else name) for name in ROWS]


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """A fresh folder every user can enter, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="hema-bad-input-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def sources(pbc_dir: Path) -> dict[str, Path]:
    """Per class the corpus uses, the first real cell (in name order) the default model puts in that class."""
    engine = OnnxRuntimeEngine(DEFAULT_MODEL_PATH)
    chosen = {}
    for name in sorted(set(CELLS.values())):
        for path in sorted((pbc_dir / name).glob("*.jpg")):
            image = load_cell_image(path, engine.card.input)
            if engine.card.class_names[int(np.argmax(engine.run(image[None])["probabilities"][0]))] == name:
                chosen[name] = path
                break
    return chosen


@pytest.fixture(scope="module")
def slide(workspace: Path, sources: dict[str, Path]) -> Iterator[Path]:
    """One slide folder holding real cells, valid images of unusual kinds, bad files and what is not a file."""
    folder = workspace / "corpus" / "slide_5"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    for name, cell in CELLS.items():
        shutil.copyfile(sources[cell], folder / name)
    lymphocyte = sources["lymphocyte"].read_bytes()
    with Image.open(sources["lymphocyte"]) as image:
        rgb = image.convert("RGB")
    (folder / "b_empty.jpg").write_bytes(b"")
    (folder / "d_truncated.jpg").write_bytes(lymphocyte[: len(lymphocyte) // 2])
    (folder / "e_text.jpg").write_text("slide 5: repeat the stain, the smear is too thick\n")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))  # transparent at the top, opaque at the bottom
    rgba.save(folder / "f_rgba.png")
    grey = rgb.convert("L")
    grey.save(folder / "g_grey.png")
    Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(folder / "h_grey16.png")
    (folder / "i_bomb.png").write_bytes(bilevel_png(20_000, 20_000))
    (folder / "j_large.png").write_bytes(bilevel_png(7_000, 7_000))
    (folder / "k_thin.png").write_bytes(bilevel_png(1, 100_000))
    (folder / "l_loop_a.jpg").symlink_to("l_loop_b.jpg")
    (folder / "l_loop_b.jpg").symlink_to("l_loop_a.jpg")
    shutil.copyfile(sources["neutrophil"], folder / "n_unreadable.jpg")
    (folder / "n_unreadable.jpg").chmod(0)
    (folder / "p_dangling.jpg").symlink_to("moved_to_the_archive.jpg")
    rgb.save(folder / "r_postscript.jpg", "EPS")  # would be handed to Ghostscript if decoded
    rgb.save(folder / "s_gif.png", "GIF")
    (folder / "q_link_to_this_folder").symlink_to(".")
    os.mkfifo(folder / "o_fifo.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.fspath(folder / "t_socket.png"))
    server.listen()
    (folder / "u_locked").mkdir()
    shutil.copyfile(sources["basophil"], folder / LOCKED_CELL)
    (folder / "u_locked").chmod(0)
    for name, cell in FORMULAS.items():
        shutil.copyfile(sources[cell], folder / name)
    shutil.copyfile(sources["lymphocyte"], folder / HOSTILE)
    (folder / "notes.txt").write_text("stained 2024-03-02\n")
    shutil.copyfile(sources["basophil"], folder / ".hidden.jpg")
    shutil.copyfile(sources["basophil"], folder / ".ipynb_checkpoints" / "a_cell-checkpoint.jpg")
    for path in [workspace / "corpus", folder, folder / ".ipynb_checkpoints"]:
        path.chmod(0o755)
    yield folder
    server.close()
    (folder / "u_locked").chmod(0o755)  # so that an unprivileged test session can remove it


def _denied_by_chmod_000(reader: Reader, workspace: Path) -> str:
    """Empty if ``reader`` runs the runtime and a mode-000 file stops it; else what went wrong."""
    probe = workspace / "probe_000"
    probe.write_bytes(b"x")
    probe.chmod(0)
    code = (
        "import sys, hema.runtime.cli\ntry: open(sys.argv[1], 'rb')\nexcept PermissionError: sys.exit(0)\nsys.exit(3)"
    )
    try:
        process = subprocess.run(
            [*reader.prefix, sys.executable, "-c", code, str(probe)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=workspace,
            **reader.keywords,
        )
    except OSError as error:
        return str(error)
    return "" if process.returncode == 0 else process.stderr.strip()[-300:] or "it could read a mode-000 file"


@pytest.fixture(scope="module")
def reader(workspace: Path) -> tuple[Reader | None, str]:
    """How to run ``hema-infer`` so that ``chmod 000`` stops it, or ``None`` and why that cannot work here.

    Not root: as we are. Root: as user 65534 when that user can run this interpreter, else as root without the
    capabilities that override file modes (``setpriv``; the interpreter may lie under a root-only folder).
    """
    if os.geteuid() != 0:
        return Reader(), ""
    nobody = Reader(keywords={"user": NOBODY, "group": NOBODY, "extra_groups": []})
    why_not_nobody = _denied_by_chmod_000(nobody, workspace)
    if not why_not_nobody:
        return nobody, ""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None, f"user {NOBODY} cannot run {sys.executable} ({why_not_nobody}) and setpriv is not installed"
    caps = "-dac_override,-dac_read_search"
    capless = Reader(prefix=(setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"))
    why_not_capless = _denied_by_chmod_000(capless, workspace)
    if not why_not_capless:
        return capless, ""
    return (
        None,
        f"user {NOBODY} cannot run hema-infer ({why_not_nobody}), nor root without DAC override ({why_not_capless})",
    )


def _in(folder: Path) -> tuple[str, ...]:
    """A command prefix that runs the command in ``folder`` (``run_infer``'s ``cwd`` is also its ``HOME``)."""
    return ("sh", "-c", 'cd "$0" && exec "$@"', os.fspath(folder))


@pytest.fixture(scope="module")
def runs(slide: Path, workspace: Path, reader) -> dict[int, tuple[subprocess.CompletedProcess, Path]]:
    """The corpus classified at batch size 32 (with report.html) and 3 (without), bound by file modes.

    At batch size 32 the slide folder is named by its absolute path; at 3 as ``.``, from inside it, so that
    ``cells.csv`` names each file by its bare name. ``HOME`` stays the report folder either way: engines write
    there (onnxruntime ``.cache/``, OpenVINO ``intel/``), and the corpus must stay as built.
    """
    results = {}
    for batch_size in (32, 3):
        out = workspace / f"report_b{batch_size}"
        out.mkdir()
        out.chmod(0o777)  # the unprivileged user writes the reports
        html = [] if batch_size == 32 else ["--no-html"]
        started = reader[0] or Reader()
        named, prefix = (slide, started.prefix) if batch_size == 32 else (Path("."), (*started.prefix, *_in(slide)))
        args = ["classify", named, "--out", out, "--batch-size", batch_size, *html]
        process = run_infer(*args, cwd=out, prefix=prefix, **started.keywords)
        results[batch_size] = (process, out)
    return results


@pytest.mark.parametrize("batch_size", [32, 3])
def test_every_file_has_exactly_one_row_in_order(runs, slide: Path, reader, batch_size: int) -> None:
    process, out = runs[batch_size]
    assert "Traceback" not in process.stderr, process.stderr
    names = [row_name(row, slide) for row in read_rows(out)]
    assert names == expected_rows(reader), process.stderr
    # the folder nobody may list is a slide of its own (a folder below the one given), as its cells would be
    slides = {row_name(row, slide): row["slide"] for row in read_rows(out)}
    assert slides.pop("u_locked" if "u_locked" in slides else LOCKED_CELL) == "u_locked"
    assert set(slides.values()) == {"slide_5"}


@pytest.mark.parametrize("batch_size", [32, 3])
def test_bad_files_get_an_error_row_with_a_clear_one_line_reason(runs, slide: Path, reader, batch_size: int) -> None:
    process, out = runs[batch_size]
    rows = rows_by_name(out, slide)
    for name, expected in BAD.items():
        row = rows[name]
        if name == "n_unreadable.jpg" and reader[0] is None:
            continue  # root reads it; test_unreadable_file_is_refused says why
        assert (row["status"], row["label"], row["confidence"]) == ("error", "", ""), row
        assert row["error"].startswith("cannot read image: ") and expected in row["error"], (name, row["error"])
        assert "\n" not in row["error"] and str(out) not in row["error"]
        assert f"{name}: {row['error']}" in process.stderr, f"{name} is not reported on stderr"


@pytest.mark.parametrize("batch_size", [32, 3])
def test_pipes_sockets_and_a_folder_nobody_may_list_get_one_error_row_each(
    runs, slide: Path, reader, batch_size: int
) -> None:
    """Never opened, so no hang: the run ends (``run_infer`` would time out), and each gets its reason."""
    process, out = runs[batch_size]
    rows = rows_by_name(out, slide)
    for name, expected in NOT_FILES.items():
        if name == "u_locked" and reader[0] is None:
            continue  # root lists it; test_folder_nobody_may_list_is_refused says why
        row = rows[name]
        assert (row["status"], row["label"], row["confidence"], row["error"]) == ("error", "", "", expected), row
        assert f"{name}: {expected}" in process.stderr, f"{name} is not reported on stderr"
    assert LOCKED_CELL not in rows or reader[0] is None


def test_unreadable_file_is_refused(runs, slide: Path, reader) -> None:
    if reader[0] is None:
        pytest.skip(f"running as root, where chmod 000 does not stop reads, and {reader[1]}")
    row = rows_by_name(runs[32][1], slide)["n_unreadable.jpg"]
    assert row["error"] == "cannot read image: permission denied"


def test_folder_nobody_may_list_is_refused(runs, slide: Path, reader) -> None:
    if reader[0] is None:
        pytest.skip(f"running as root, where chmod 000 does not stop listing a folder, and {reader[1]}")
    for batch_size in (32, 3):
        row = rows_by_name(runs[batch_size][1], slide)["u_locked"]
        assert (row["slide"], row["status"], row["error"]) == ("u_locked", "error", NOT_FILES["u_locked"]), row


@pytest.mark.parametrize("batch_size", [32, 3])
def test_real_cells_and_valid_unusual_images_are_classified(runs, slide: Path, batch_size: int) -> None:
    process, out = runs[batch_size]
    rows = rows_by_name(out, slide)
    for name in [*CELLS, *VALID, *FORMULAS, SHOWN[HOSTILE]]:
        assert rows[name]["status"] == "ok" and rows[name]["error"] == "", rows[name]
        assert rows[name]["label"] and 0.0 < float(rows[name]["confidence"]) <= 1.0
    for name, cell in {**CELLS, **FORMULAS, SHOWN[HOSTILE]: "lymphocyte"}.items():
        assert rows[name]["label"] == cell, (name, rows[name])
    # alpha is dropped as in training, so an RGBA copy is the cell itself; a 16-bit grey copy is not white
    assert rows["f_rgba.png"]["label"] == rows["c_cell.jpg"]["label"]
    np.testing.assert_allclose(probabilities(rows["f_rgba.png"]), probabilities(rows["c_cell.jpg"]), atol=2e-6)
    assert rows["h_grey16.png"]["label"] == rows["g_grey.png"]["label"]
    np.testing.assert_allclose(probabilities(rows["h_grey16.png"]), probabilities(rows["g_grey.png"]), atol=2e-6)


@pytest.mark.parametrize("batch_size", [32, 3])
def test_names_that_start_like_formulas_are_written_as_text(runs, slide: Path, batch_size: int) -> None:
    """Classified ok; named by its bare name (``classify .``), its ``path`` gets ``'`` in front.

    An absolute path starts with ``/`` and needs none; no other row's path gets one.
    """
    process, out = runs[batch_size]
    paths = {row_name(row, slide): row["path"] for row in read_rows(out)}
    for name in FORMULAS:
        assert paths[name] == ("'" + name if batch_size == 3 else str(slide / name)), paths[name]
    assert not [path for name, path in paths.items() if name not in FORMULAS and path.startswith("'")]


@pytest.mark.parametrize("batch_size", [32, 3])
def test_control_characters_in_a_file_name_are_never_written_raw(runs, batch_size: int) -> None:
    """Not to the terminal, nor to the reports (the HTML page is written at batch size 32)."""
    process, out = runs[batch_size]
    printed = process.stdout + process.stderr
    reports = [out / name for name in ("cells.csv", "summary.json", "report.html") if (out / name).is_file()]
    assert len(reports) == (3 if batch_size == 32 else 2)
    for raw in ("\x1b", "\x07"):
        assert raw not in printed, f"raw {raw!r} printed:\n{printed!r}"
        for report in reports:
            assert raw not in report.read_text(encoding="utf-8"), f"raw {raw!r} in {report.name}"


@pytest.mark.parametrize("batch_size", [32, 3])
def test_exit_code_is_1_and_the_reports_are_written(runs, batch_size: int) -> None:
    process, out = runs[batch_size]
    assert process.returncode == 1, process.stderr
    assert (out / "summary.json").is_file()
    assert (out / "report.html").is_file() == (batch_size == 32)


def test_hidden_files_are_ignored_and_non_images_skipped(runs, slide: Path) -> None:
    process, out = runs[32]
    names = {Path(row_name(row, slide)).name for row in read_rows(out)}
    assert not {".hidden.jpg", "a_cell-checkpoint.jpg", "notes.txt", "q_link_to_this_folder"} & names
    assert "skipping 1 file(s)" in process.stderr


@pytest.mark.parametrize("name", ["i_bomb.png", "j_large.png", "k_thin.png"])
def test_oversized_images_are_refused_before_their_pixels_are_decoded(slide: Path, monkeypatch, name: str) -> None:
    def decode(self: ImageFile.ImageFile) -> None:
        raise AssertionError(f"{name}: pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    with pytest.raises(ImageTooLargeError, match="image too large"):
        load_cell_image(slide / name, SPEC)


def test_sixteen_bit_grey_is_scaled_not_clipped(slide: Path) -> None:
    with Image.open(slide / "h_grey16.png") as image:
        assert image.mode == "I;16"
        assert np.asarray(image.convert("RGB")).min() == 255  # what a plain convert does: white
    np.testing.assert_array_equal(
        load_cell_image(slide / "h_grey16.png", SPEC), load_cell_image(slide / "g_grey.png", SPEC)
    )
    assert load_cell_image(slide / "h_grey16.png", SPEC).std() > 10


@pytest.fixture(scope="module")
def non_utf8_run(workspace: Path, sources: dict[str, Path]) -> tuple[subprocess.CompletedProcess, Path, str]:
    """A real cell beside a copy of it whose file name is not UTF-8 (``caf\\xe9.jpg`` in Latin-1)."""
    folder = workspace / "latin1" / "slide_6"
    folder.mkdir(parents=True)
    shutil.copyfile(sources["basophil"], folder / "a_cell.jpg")
    descriptor = os.open(os.fsencode(folder) + b"/caf\xe9.jpg", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(sources["basophil"].read_bytes())
    (name,) = [path.name for path in folder.iterdir() if path.name != "a_cell.jpg"]
    out = workspace / "latin1_report"
    return run_infer("classify", folder, "--out", out, "--no-html", cwd=workspace), out, name


def test_a_file_name_that_is_not_utf8_gets_one_row(non_utf8_run) -> None:
    process, out, name = non_utf8_run
    assert "Traceback" not in process.stderr and process.returncode == 0, process.stderr[-3000:]
    rows = read_rows(out)
    shown = os.fsencode(name).decode("utf-8", "replace")
    assert shown == "caf\ufffd.jpg"
    assert [Path(row["path"]).name for row in rows] == ["a_cell.jpg", shown]
    assert rows[1]["status"] == "ok" and rows[1]["label"] == rows[0]["label"] == "basophil"


def test_corpus_files_are_what_they_claim(slide: Path) -> None:
    """The corpus is what it claims: the bomb is tiny on disk, the loop a loop, the unreadable file and folder
    mode 000, the pipe a pipe, the socket a socket, the 16-bit PNG 16-bit, the hostile name hostile."""
    assert (slide / "i_bomb.png").stat().st_size < 100_000
    assert stat.S_IMODE((slide / "n_unreadable.jpg").stat().st_mode) == 0
    assert (slide / "l_loop_a.jpg").is_symlink() and not (slide / "l_loop_a.jpg").exists()
    assert stat.S_ISFIFO((slide / "o_fifo.jpg").lstat().st_mode)
    assert stat.S_ISSOCK((slide / "t_socket.png").lstat().st_mode)
    assert stat.S_ISDIR((slide / "u_locked").lstat().st_mode)
    assert stat.S_IMODE((slide / "u_locked").lstat().st_mode) == 0
    with Image.open(slide / "h_grey16.png") as image:
        assert image.mode == "I;16"
    assert {"\x1b", "\x07"} <= set(HOSTILE) and (slide / HOSTILE).is_file()
    assert sorted(os.listdir(slide)) == sorted(
        [*ROWS, ".hidden.jpg", ".ipynb_checkpoints", "notes.txt", "q_link_to_this_folder"]
    )
