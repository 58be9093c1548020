"""``report.html``: the writer on its own (escaping, order, errors, no network), then the real page in Chromium.

The browser test runs ``hema-infer classify`` on two slide folders of real PBC cells plus an unreadable file and
loads the page in headless Chromium (Debian's ``/usr/bin/chromium``; ``make test`` installs it). Without
Chromium it is skipped, except under CI (``$CI`` set), where it fails. With ``HEMA_REVIEW_PAGE_PNG=FILE`` it
also copies its screenshot to FILE (``make review-page-png`` refreshes the README's docs/review-page.png).
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, chromium
from PIL import Image
from typer.testing import CliRunner

from hema.runtime.classify import CellResult
from hema.runtime.cli import app
from hema.runtime.reports.html_page import render_html_report, write_html_report
from hema.runtime.reports.thumbnails import thumbnail_data_uri

CLASSES = ("basophil", "eosinophil", "lymphocyte", "neutrophil")
IMG = re.compile(r"<img\b")


def ok(path: str, label: str, confidence: float = 0.97, review: str = "") -> CellResult:
    return CellResult(Path(path), Path(path).parent.name, "ok", label, confidence, review=review)


def error(path: str, reason: str) -> CellResult:
    return CellResult(Path(path), Path(path).parent.name, "error", error=reason)


def render(results: list[CellResult]) -> str:
    return render_html_report(results, {"model": "test.onnx"}, CLASSES, "test model")


def test_file_names_labels_and_reasons_are_escaped() -> None:
    page = render(
        [
            ok("slide_<b>/<script>alert('x')<script>&\"q\".jpg", "neutrophil", review="<i>odd</i>"),
            error("slide_<b>/<img src=x onerror=alert(1)>.jpg", "cannot read image: <bad> & 'worse'"),
        ]
    )
    assert "<script" not in page and "<img" not in page  # no thumbnails given: the only tags are the page's
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;script&gt;&amp;&quot;q&quot;.jpg" in page
    assert "slide_&lt;b&gt;" in page and "<b>" not in page
    assert "Review: &lt;i&gt;odd&lt;/i&gt;" in page
    assert "cannot read image: &lt;bad&gt; &amp; &#x27;worse&#x27;" in page


def test_non_utf8_and_control_characters_never_crash(tmp_path: Path) -> None:
    weird = Path(os.fsdecode(b"slide_\xff/caf\xe9\x1b.jpg"))
    results = [CellResult(weird, weird.parent.name, "ok", "neutrophil", 0.5, review="low confidence")]
    results.append(CellResult(tmp_path / "s" / "\udcff.jpg", "s", "error", error="bad \udcff"))
    write_html_report(tmp_path / "report.html", results, {}, CLASSES)  # the file does not exist: no preview
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "caf\ufffd\ufffd.jpg" in page and "slide_\ufffd" in page
    assert "no preview" in page and not IMG.search(page)


def test_flagged_cells_come_first_within_their_class() -> None:
    page = render(
        [
            ok("s1/a_sure.jpg", "neutrophil", 0.99),
            ok("s1/b_flagged.jpg", "neutrophil", 0.41, review="low confidence"),
            ok("s1/c_lymph.jpg", "lymphocyte", 0.95),
            ok("s1/d_sure.jpg", "neutrophil", 0.98),
            ok("s1/e_flagged.jpg", "neutrophil", 0.88, review="unknown cell type"),
        ]
    )
    order = [page.index(f">{name}.jpg<") for name in ("b_flagged", "e_flagged", "a_sure", "d_sure")]
    assert order == sorted(order)
    assert page.index(">c_lymph.jpg<") < order[0]  # classes in the model's order: lymphocyte before neutrophil
    assert "Review: low confidence" in page and "Review: unknown cell type" in page
    assert page.count('class="cell flagged"') == 2
    assert "2 flagged for review" in page
    assert "41\u00a0%" in page


def test_error_rows_are_listed_with_their_reason_and_counted_apart() -> None:
    page = render(
        [
            ok("s1/a.jpg", "neutrophil"),
            ok("s1/b.jpg", "lymphocyte"),
            error("s1/empty.jpg", "cannot read image: empty file (0 bytes)"),
        ]
    )
    rows = re.findall(r'<tr class="error-row">.*?</tr>', page)
    assert len(rows) == 1 and "empty.jpg" in rows[0] and "empty file (0 bytes)" in rows[0]
    assert "Files that could not be read (1)" in page
    assert '<td>Classified</td><td class="num">2</td><td class="num">100.0</td>' in page
    assert '<td>neutrophil</td><td class="num">1</td><td class="num">50.0</td>' in page


def test_one_section_per_slide_and_an_overall_one_only_for_several() -> None:
    one = render([ok("s1/a.jpg", "neutrophil"), ok("s1/b.jpg", "basophil")])
    assert 'id="overall"' not in one and one.count('<section class="slide"') == 1
    two = render([ok("s1/a.jpg", "neutrophil"), ok("s2/b.jpg", "basophil"), ok("s2/c.jpg", "basophil")])
    assert 'id="overall"' in two and two.count('<section class="slide"') == 3
    overall = two[two.index('id="overall"') : two.index('id="slide-1"')]
    assert '<td>basophil</td><td class="num">2</td><td class="num">66.7</td>' in overall


def test_page_is_self_contained(tmp_path: Path, pbc_dir: Path) -> None:
    cells = [sorted((pbc_dir / name).glob("*.jpg"))[0] for name in CLASSES]
    results = [CellResult(path, "slide_1", "ok", name, 0.9) for path, name in zip(cells, CLASSES)]
    write_html_report(tmp_path / "report.html", results, {}, CLASSES)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(cells) == len(IMG.findall(page))
    assert all(re.fullmatch(r"data:image/jpeg;base64,[A-Za-z0-9+/]+=*", source) for source in sources)
    text = re.sub(r"data:image/jpeg;base64,[A-Za-z0-9+/]+=*", "", page)
    assert not re.search(r"https?:|ftp:|//", text, flags=re.IGNORECASE)
    assert not re.search(r"<(script|link|iframe|object|embed)\b|@import|url\(", text, flags=re.IGNORECASE)


def test_thumbnails_are_small_jpegs_and_bad_files_give_none(tmp_path: Path, pbc_dir: Path) -> None:
    cell = sorted((pbc_dir / "neutrophil").glob("*.jpg"))[0]
    uri = thumbnail_data_uri(cell)
    assert uri is not None and uri.startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumbnail:
        assert thumbnail.format == "JPEG" and thumbnail.mode == "RGB" and max(thumbnail.size) == 96
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image\n")
    (tmp_path / "truncated.jpg").write_bytes(cell.read_bytes()[:300])
    for bad in ("empty.jpg", "text.jpg", "truncated.jpg", "missing.jpg"):
        assert thumbnail_data_uri(tmp_path / bad) is None, bad


# ---------------------------------------------------------------------------------------------- real browser

SLIDES = {
    "slide_A": ("neutrophil",) * 6 + ("lymphocyte",) * 4 + ("monocyte", "eosinophil") * 2 + ("basophil", "ig"),
    "slide_B": ("neutrophil",) * 5 + ("lymphocyte", "ig", "erythroblast", "platelet") * 2 + ("monocyte",),
}
BAD_FILE = "slide_B/smudged_scan.jpg"
# Appended to a copy of the page only: counts the thumbnails the browser actually decoded.
PROBE = (
    '<script>addEventListener("load", () => document.body.setAttribute("data-decoded", '
    "[...document.images].filter((i) => i.complete && i.naturalWidth > 0).length));</script>"
)


def run_chromium(page: Path, profile: Path, *args: str) -> str:
    command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def classified(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    """``hema-infer classify`` on two slides of real cells (copies) and one unreadable file."""
    root = tmp_path_factory.mktemp("html_slides")
    used: Counter[str] = Counter()
    for slide, classes in SLIDES.items():
        (root / slide).mkdir()
        for number, name in enumerate(classes):
            source = sorted((pbc_dir / name).glob("*.jpg"))[used[name]]
            used[name] += 1
            shutil.copyfile(source, root / slide / f"{slide[-1]}{number + 1:02d}_{source.name}")
    (root / BAD_FILE).write_text("scanner note saved as .jpg, not an image\n")
    out = tmp_path_factory.mktemp("html_report")
    result = CliRunner().invoke(app, ["classify", str(root / "slide_A"), str(root / "slide_B"), "--out", str(out)])
    return result, out


def test_classify_writes_report_html_beside_summary(classified) -> None:
    result, out = classified
    assert result.exit_code == 1, result.output  # the unreadable file
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()
    assert f"and {out / 'report.html'}" in result.output


def test_no_html_option_skips_the_page(tmp_path: Path, pbc_dir: Path) -> None:
    cell = sorted((pbc_dir / "basophil").glob("*.jpg"))[0]
    result = CliRunner().invoke(app, ["classify", str(cell), "--out", str(tmp_path), "--no-html"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "summary.json").is_file() and not (tmp_path / "report.html").exists()


def test_page_loads_in_chromium_with_every_cell(classified, tmp_path: Path) -> None:
    _, out = classified
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    good = [row for row in rows if row["status"] == "ok"]
    assert len(good) == sum(map(len, SLIDES.values())) and len(rows) == len(good) + 1

    dom = run_chromium(out / "report.html", tmp_path / "profile", "--dump-dom")
    assert "Cells by predicted class" in dom and "</html>" in dom
    assert len(IMG.findall(dom)) == len(good)
    for row in good:
        assert f">{Path(row['path']).name}<" in dom
    errors = re.findall(r'<tr class="error-row">.*?</tr>', dom, flags=re.DOTALL)
    assert len(errors) == 1 and Path(BAD_FILE).name in errors[0] and "cannot read image" in errors[0]

    probe = tmp_path / "probe.html"
    probe.write_text((out / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    probed = run_chromium(probe, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom")
    assert re.search(r'data-decoded="(\d+)"', probed).group(1) == str(len(good))  # every thumbnail decodes

    screenshot = tmp_path / "review-page.png"
    run_chromium(out / "report.html", tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={screenshot}")
    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (1280, 2000)
        assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 1000  # a rendered page, not a blank one
    if target := os.environ.get("HEMA_REVIEW_PAGE_PNG"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target)
