"""``hema-infer review``'s server over real HTTP on 127.0.0.1, on a run of real PBC cells; and the bad inputs.

The run is made by ``hema-infer classify`` (two slide folders of copied PBC cells and one unreadable file). Each
test copies the run folder (``cells.csv`` names the images by absolute path), serves it from a thread on a free
port and talks to it with ``http.client``, as the page does.
"""

from __future__ import annotations

import base64
import csv
import html
import http.client
import io
import json
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hema.runtime.cli import app
from hema.runtime.verification.images import GALLERY_SIZE
from hema.runtime.verification.journal import JOURNAL_NAME
from hema.runtime.verification.server import ReviewServer
from hema.runtime.verification.session import ReviewSession
from hema.runtime.verification.settings import DEFAULT_EXTRA_CLASSES, ReviewError, ReviewSettings

SLIDES = {"slide_A": ("neutrophil",) * 3 + ("lymphocyte",) * 2 + ("eosinophil",), "slide_B": ("monocyte", "basophil")}
REVIEW = {"Content-Type": "application/json", "X-Hema-Review": "1"}
TOKEN = "t0ken-for-the-tests-1234"


@pytest.fixture(scope="module")
def classified(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classify run of real cells (absolute paths in cells.csv) with one unreadable file on slide_B."""
    root = tmp_path_factory.mktemp("review_cells")
    for slide, classes in SLIDES.items():
        (root / slide).mkdir()
        for number, name in enumerate(classes):
            source = sorted((pbc_dir / name).glob("*.jpg"))[number]
            shutil.copyfile(source, root / slide / source.name)
    (root / "slide_B" / "note.jpg").write_text("not an image\n")
    out = tmp_path_factory.mktemp("review_run")
    result = CliRunner().invoke(app, ["classify", str(root / "slide_A"), str(root / "slide_B"), "--out", str(out)])
    assert result.exit_code == 1, result.output  # the unreadable file
    return out


@pytest.fixture()
def run(classified: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(classified, tmp_path / "run"))


@contextmanager
def serving(run_dir: Path, **settings: object) -> Iterator[ReviewServer]:
    session = ReviewSession.open(run_dir, ReviewSettings(user="ann", **settings), warn=print)  # type: ignore[arg-type]
    server = ReviewServer(session)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        session.close()


def call(server: ReviewServer, method: str, path: str, body: object = None, headers: dict | None = None):
    """``(status, headers, body bytes)`` of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.request(method, path, body=data, headers=headers or {})
    response = connection.getresponse()
    answer = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return answer


def post(server: ReviewServer, path: str, body: dict) -> tuple[int, dict]:
    status, _, data = call(server, "POST", path, body, REVIEW)
    return status, json.loads(data)


def test_page_and_its_files_come_from_the_server_only_under_a_strict_policy(run: Path) -> None:
    with serving(run) as server:
        texts = {}
        for path, kind in (("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css")):
            status, headers, body = call(server, "GET", path)
            assert status == 200 and headers["Content-Type"].startswith(kind)
            assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
            texts[path] = body.decode()
    assert '<script src="/app.js">' in texts["/"] and "/api/run" in texts["/app.js"]
    assert not re.search(r"https?:|//|@import|url\(", "".join(texts.values()), flags=re.IGNORECASE)
    assert "innerHTML" not in texts["/app.js"]  # names from the run are set as text only


def test_the_run_has_slides_cells_flags_classes_and_a_key_per_class(run: Path) -> None:
    with serving(run) as server:
        status, _, body = call(server, "GET", "/api/run")
    data = json.loads(body)
    assert status == 200 and data["user"] == "ann" and data["target"] == 100
    assert [slide["name"] for slide in data["slides"]] == ["slide_A", "slide_B"]
    assert len(data["cells"]) == sum(map(len, SLIDES.values())) + 1
    names = [entry["name"] for entry in data["classes"]]
    model = server.session.table.class_names
    assert names == [*model, *DEFAULT_EXTRA_CLASSES] and len({entry["key"] for entry in data["classes"]}) == len(names)
    assert [entry["model"] for entry in data["classes"]] == [name in model for name in names]
    [bad] = [cell for cell in data["cells"] if not cell["ok"]]
    assert bad["name"] == "note.jpg" and bad["error"] and not bad["preview"]
    good = [cell for cell in data["cells"] if cell["ok"]]
    assert all(cell["preview"] and not cell["missing"] and cell["label"] in model for cell in good)
    assert data["records"] == [] and data["notes"] == []


def test_a_decision_is_in_the_journal_when_the_answer_says_saved(run: Path) -> None:
    with serving(run) as server:
        cell = 0  # the first row: a cell of slide_A
        status, answer = post(server, "/api/label", {"cell": cell, "label": "blast", "base": 0, "seen": 0})
        assert status == 200 and answer["saved"] and answer["rev"] == 1
        line = json.loads((run / JOURNAL_NAME).read_text().splitlines()[-1])  # read while the server still runs
        table_cell = server.session.table.cells[cell]
        assert line["cell"] == table_cell.path and line["human_label"] == "blast" and line["user"] == "ann"
        assert line["model_label"] == table_cell.label and line["slide"] == "slide_A"
        assert answer["records"] == [
            dict(rev=1, kind="label", slide=0, cell=cell, label="blast", verified=None, user="ann", time=line["time"])
        ]


def test_two_tabs_the_stale_one_gets_409_with_the_other_decision(run: Path) -> None:
    with serving(run) as server:
        assert post(server, "/api/label", {"cell": 1, "label": "lymphocyte", "base": 0, "seen": 0})[0] == 200
        status, answer = post(server, "/api/label", {"cell": 1, "label": "monocyte", "base": 0, "seen": 0})
        assert status == 409 and answer["conflict"] and not answer["saved"]
        assert "changed elsewhere" in answer["message"] and "ann put it into lymphocyte" in answer["message"]
        assert [record["label"] for record in answer["records"]] == ["lymphocyte"]  # the other tab catches up
        assert post(server, "/api/label", {"cell": 1, "label": "monocyte", "base": 1, "seen": 1})[0] == 200
        assert post(server, "/api/label", {"cell": 1, "label": None, "base": 2, "seen": 2})[0] == 200  # undo
        _, _, body = call(server, "GET", "/api/changes?since=1")
    assert [record["label"] for record in json.loads(body)["records"]] == ["monocyte", None]
    assert server.session.journal.cell(server.session.table.cells[1].path)["human_label"] is None


def test_a_verified_slide_locks_its_cells_until_reopened(run: Path) -> None:
    with serving(run) as server:
        status, answer = post(server, "/api/slide", {"slide": 1, "verified": True, "base": 0, "seen": 0})
        assert status == 200 and answer["records"][0]["verified"] is True
        on_b = [cell.id for cell in server.session.table.cells if cell.slide == "slide_B" and cell.classified]
        status, answer = post(server, "/api/label", {"cell": on_b[0], "label": "blast", "base": 0, "seen": 1})
        assert status == 409 and "marked verified by ann" in answer["message"]
        status, _, page = call(server, "GET", "/report?slide=1")
    assert status == 200 and b"Verified by ann" in page and b"slide_B" in page
    with (run / "verified.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    judged = {row["path"]: row["human_label"] for row in rows if row["human_label"]}
    assert judged == {row["path"]: row["label"] for row in rows if row["slide"] == "slide_B" and row["status"] == "ok"}


def test_pictures_are_served_only_for_cells_listed_in_cells_csv(run: Path) -> None:
    with serving(run) as server:
        status, headers, thumb = call(server, "GET", "/thumb/0")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        _, _, full = call(server, "GET", "/image/0")
        bad = next(cell.id for cell in server.session.table.cells if not cell.classified)
        refused = [
            call(server, "GET", path)[0]
            for path in (
                f"/thumb/{bad}",
                "/thumb/999",
                "/thumb/-1",
                "/image/x",
                "/thumb/..%2F..%2Fetc%2Fpasswd",
                "/etc/passwd",
                "/image/0/../../cells.csv",
                "/../cells.csv",
            )
        ]
        source = server.session.table.cells[0].image
    assert refused == [404] * len(refused)
    with Image.open(io.BytesIO(thumb)) as small, Image.open(io.BytesIO(full)) as large, Image.open(source) as image:
        assert small.format == "JPEG" and max(small.size) <= GALLERY_SIZE
        assert large.format == "PNG" and large.size == image.size  # full size on demand, lossless
        assert np.array_equal(np.asarray(large), np.asarray(image.convert("RGB")))


def test_requests_that_do_not_come_from_the_page_are_refused(run: Path) -> None:
    change = {"cell": 0, "label": "blast", "base": 0, "seen": 0}
    with serving(run) as server:
        assert call(server, "GET", "/api/run", headers={"Host": "attacker.example:80"})[0] == 403  # DNS rebinding
        assert call(server, "POST", "/api/label", change, {"Content-Type": "application/json"})[0] == 403
        assert (
            call(server, "POST", "/api/label", change, {"Content-Type": "text/plain", "X-Hema-Review": "1"})[0] == 403
        )
        assert call(server, "POST", "/api/label", b"{not json", REVIEW)[0] == 400
        assert call(server, "POST", "/api/label", b"x" * 70_000, REVIEW)[0] == 413
        assert post(server, "/api/label", {**change, "label": "banana"})[0] == 400
        assert post(server, "/api/label", {**change, "cell": 10_000})[0] == 400
        assert post(server, "/api/label", {**change, "base": True})[0] == 400
        assert post(server, "/api/slide", {"slide": 5, "verified": True, "base": 0})[0] == 400
        assert call(server, "PUT", "/api/label", change, REVIEW)[0] == 501
    assert server.session.journal.rev == 0


def test_with_a_token_every_request_needs_it_and_the_printed_address_logs_in(run: Path) -> None:
    with serving(run, token=TOKEN) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/?token={TOKEN}"
        assert [call(server, "GET", path)[0] for path in ("/", "/api/run", "/thumb/0", "/app.js")] == [401] * 4
        assert call(server, "GET", "/?token=wrong-token-0000000000")[0] == 401
        status, headers, _ = call(server, "GET", f"/?token={TOKEN}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        assert call(server, "GET", "/api/run", headers={"Cookie": cookie})[0] == 200
        assert call(server, "GET", "/api/run", headers={"X-Hema-Token": TOKEN})[0] == 200
        change = {"cell": 0, "label": "blast", "base": 0}
        assert call(server, "POST", "/api/label", change, REVIEW)[0] == 401
        assert call(server, "POST", "/api/label", change, {**REVIEW, "Cookie": cookie})[0] == 200


def test_a_network_address_needs_a_token(run: Path) -> None:
    with pytest.raises(ReviewError, match="--token"):
        ReviewSettings(host="0.0.0.0", user="ann")
    with pytest.raises(ReviewError, match="16 to 256"):
        ReviewSettings(token="short", user="ann")
    result = CliRunner().invoke(app, ["review", str(run), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "give an access token with --token" in result.output, result.output
    assert not (run / JOURNAL_NAME).exists()


def test_a_folder_without_cells_csv_or_of_another_version_is_a_clear_error(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["review", str(empty)])
    assert result.exit_code == 2 and "has no cells.csv" in result.output and "hema-infer classify" in result.output
    assert CliRunner().invoke(app, ["review", str(tmp_path / "nowhere")]).exit_code == 2

    rows = list(csv.reader((run / "cells.csv").open(newline="", encoding="utf-8")))
    older = [[value for column, value in zip(rows[0], row) if column != "review"] for row in rows]
    with (run / "cells.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(older)  # the columns hema-infer wrote before review flags
    result = CliRunner().invoke(app, ["review", str(run)])
    assert result.exit_code == 2 and "earlier version of hema-infer" in result.output, result.output
    assert not (run / JOURNAL_NAME).exists()  # nothing written into a run it cannot read


def test_a_gone_image_is_shown_missing_from_report_htmls_thumbnail_and_still_reviewable(run: Path) -> None:
    with serving(run) as server:
        gone = server.session.table.cells[0]
    gone.image.unlink()
    report = (run / "report.html").read_text(encoding="utf-8")
    title = re.escape(html.escape(gone.path, quote=True))
    saved = re.search(rf'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"(?:(?!<figure).)*?title="{title}"', report, re.S)
    with serving(run) as server:
        _, _, body = call(server, "GET", "/api/run")
        data = json.loads(body)
        status, _, picture = call(server, "GET", f"/thumb/{gone.id}")
        assert status == 200 and call(server, "GET", f"/image/{gone.id}")[2] == picture  # no larger one left
        assert post(server, "/api/label", {"cell": gone.id, "label": "blast", "base": 0, "seen": 0})[0] == 200
    entry = data["cells"][gone.id]
    assert (
        entry["missing"]
        and entry["preview"]
        and "1 image(s) listed in cells.csv are no longer there" in data["notes"][0]
    )
    assert picture == base64.b64decode(saved.group(1))

    (run / "report.html").unlink()  # no thumbnail anywhere: shown as a cell without a picture, still reviewable
    with serving(run) as server:
        entry = json.loads(call(server, "GET", "/api/run")[2])["cells"][gone.id]
        assert entry["missing"] and not entry["preview"] and call(server, "GET", f"/thumb/{gone.id}")[0] == 404
        assert post(server, "/api/label", {"cell": gone.id, "label": "other", "base": 1, "seen": 1})[0] == 200


def test_a_torn_journal_line_is_reported_on_the_page_and_the_rest_resumes(run: Path) -> None:
    with serving(run) as server:
        post(server, "/api/label", {"cell": 0, "label": "blast", "base": 0, "seen": 0})
    with (run / JOURNAL_NAME).open("ab") as journal:
        journal.write(b'{"rev": 2, "kind": "label", "sli')
    with serving(run) as server:
        data = json.loads(call(server, "GET", "/api/run")[2])
    assert [record["label"] for record in data["records"]] == ["blast"]
    assert "cut short when the server stopped" in data["notes"][0]


def test_a_run_already_under_review_or_a_port_in_use_is_a_clear_error(run: Path, tmp_path: Path) -> None:
    other = Path(shutil.copytree(run, tmp_path / "other"))
    with serving(run) as server:
        same_run = CliRunner().invoke(app, ["review", str(run)])
        same_port = CliRunner().invoke(app, ["review", str(other), "--port", str(server.port)])
    assert same_run.exit_code == 2 and "in use by another hema-infer review" in same_run.output, same_run.output
    assert same_port.exit_code == 2 and f"cannot listen on 127.0.0.1:{server.port}" in same_port.output


def test_cells_that_already_fit_a_thumbnail_still_get_one(pbc_dir: Path, tmp_path: Path) -> None:
    square = next(path for path in sorted((pbc_dir / "ig").glob("*.jpg")) if Image.open(path).size == (360, 360))
    slide = tmp_path / "cells" / "slide_S"
    slide.mkdir(parents=True)
    shutil.copyfile(square, slide / square.name)  # JPEG draft decoding at 1/2 gives exactly the gallery's 180 px
    with Image.open(square) as image:
        image.crop((148, 148, 212, 212)).save(slide / "small.png")  # smaller than the gallery's thumbnails
    result = CliRunner().invoke(app, ["classify", str(slide), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    with serving(tmp_path / "run") as server:
        sizes = {}
        for cell in server.session.table.cells:
            status, headers, body = call(server, "GET", f"/thumb/{cell.id}")
            assert status == 200 and headers["Content-Type"] == "image/jpeg", cell.name
            sizes[cell.name] = Image.open(io.BytesIO(body)).size
    assert sizes == {square.name: (GALLERY_SIZE, GALLERY_SIZE), "small.png": (64, 64)}
