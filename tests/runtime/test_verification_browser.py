"""``hema-infer review`` in a real headless Chromium (Debian's, driven by Playwright; never a downloaded browser).

The review is started as a lab starts it (``hema-infer review RUN --port 0`` in its own process) on a classify run
of real PBC cells. In the page: one cell is put into another class with the mouse and one with its key, the key's
change is undone, the full-size view opens and closes, a second tab that missed the first tab's change is refused
with the conflict message, and the slide is marked verified. Then the server is killed (SIGKILL), started again,
and the page must show exactly the saved decisions; the journal, verified.csv and the differential in
verified_summary.json are checked. Without Chromium the test is skipped (fails where ``$CI`` is set). With
``HEMA_VERIFY_PAGE_PNG=FILE`` its screenshot is copied to FILE (the README's docs/verification-page.png).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import CHROMIUM_FLAGS, INFER, chromium
from PIL import Image
from playwright.sync_api import Page, sync_playwright
from typer.testing import CliRunner

from hema.runtime.cli import app
from hema.runtime.verification.journal import JOURNAL_NAME
from hema.runtime.verification.settings import DEFAULT_EXTRA_CLASSES, class_keys

SLIDES = {
    "slide_A": ("neutrophil",) * 7 + ("lymphocyte",) * 5 + ("monocyte", "eosinophil", "ig") * 2 + ("basophil",),
    "slide_B": ("neutrophil", "lymphocyte", "platelet", "erythroblast"),
}
SCREEN = {"width": 1440, "height": 960}


@pytest.fixture(scope="module")
def run_dir(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser_cells")
    used: Counter[str] = Counter()
    for slide, classes in SLIDES.items():
        (root / slide).mkdir()
        for name in classes:
            source = sorted((pbc_dir / name).glob("*.jpg"))[used[name]]
            used[name] += 1
            shutil.copyfile(source, root / slide / source.name)
    (root / "slide_B" / "scanner_note.jpg").write_text("not an image\n")
    out = tmp_path_factory.mktemp("browser_run")
    result = CliRunner().invoke(app, ["classify", *(str(root / slide) for slide in SLIDES), "--out", str(out)])
    assert result.exit_code == 1, result.output
    return out


@contextmanager
def review_server(run: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """``hema-infer review RUN --port 0`` in its own process; yields it and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", INFER, "review", str(run), "--user", "ann", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()  # the first line of standard output is the address
        match = re.fullmatch(r"review page: (http://127\.0\.0\.1:\d+/)\n", line)
        if not match:
            process.kill()
            pytest.fail(f"hema-infer review printed {line!r}, not its address: {process.communicate()[1]}")
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


def saved(page: Page, decision: int) -> None:
    page.wait_for_selector(f"#status.saved:has-text('Saved (decision {decision})')", timeout=30_000)


def until(page: Page, expression: str, timeout: float = 30.0) -> object:
    """The first truthy value of ``expression`` in the page, asked every 50 ms (the page's policy forbids
    Playwright's ``wait_for_function``, which evaluates strings inside the page)."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    return value


def gallery(page: Page) -> list[int]:
    return page.eval_on_selector_all("#gallery figure.cell", "figures => figures.map(f => Number(f.dataset.id))")


def human(page: Page, cell: int) -> str:
    return page.inner_text(f"#cell-{cell} .human")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_verify_in_chromium_kill_restart_and_resume(run_dir: Path, tmp_path: Path) -> None:
    executable = chromium()
    cells = rows(run_dir / "cells.csv")
    model_classes = [column[2:] for column in cells[0] if column.startswith("p_")]
    keys = class_keys([*model_classes, *DEFAULT_EXTRA_CLASSES])
    screenshot = tmp_path / "verification-page.png"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_FLAGS))
        context = browser.new_context(viewport=SCREEN)
        with review_server(run_dir) as (server, url):
            page, stale = context.new_page(), context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("response", lambda r: problems.append(r.url) if r.status >= 400 else None)
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            stale.route("**/api/changes*", lambda route: route.abort())  # this tab never hears of other changes
            for tab in (page, stale):
                tab.goto(url)
                tab.wait_for_selector("body[data-ready='1']")
            order = gallery(page)
            first, second = (cells[cell] for cell in order[:2])
            mouse_class = "lymphocyte" if first["label"] != "lymphocyte" else "monocyte"

            page.click(f"#cell-{order[0]}")  # the mouse: the cell, then the class in the differential
            page.click(f"button[data-label='{mouse_class}']")
            saved(page, 1)
            assert human(page, order[0]) == f"\u2192 {mouse_class}"
            page.keyboard.press("ArrowRight")  # the keyboard: next cell, then the key of blast
            assert "selected" in page.get_attribute(f"#cell-{order[1]}", "class").split()
            page.keyboard.press(keys["blast"])
            saved(page, 2)
            assert human(page, order[1]) == "\u2192 blast"
            page.screenshot(path=str(screenshot))
            page.keyboard.press("u")  # undo the key's change
            saved(page, 3)
            assert human(page, order[1]) == ""
            page.keyboard.press("Enter")  # full size of the selected cell
            assert until(page, "document.getElementById('full').naturalWidth") == 360
            page.keyboard.press("Escape")
            assert page.is_hidden("#viewer")

            stale.click(f"#cell-{order[0]}")  # the second tab still shows the model's class here
            stale.click("button[data-label='monocyte']")
            stale.wait_for_selector("#message:has-text('changed elsewhere')")
            assert human(stale, order[0]) == f"\u2192 {mouse_class}"  # it now shows the first tab's decision

            counts = {
                row: page.inner_text(f"#differential tbody tr:nth-child({row + 1}) td:nth-child(3)")
                for row in range(len(model_classes))
            }
            page.click("#verify")
            saved(page, 4)
            assert page.inner_text("#slide-state").startswith("Verified by ann at ")
            assert problems == []
            server.send_signal(signal.SIGKILL)  # no chance to write anything more
            server.wait(timeout=30)

        journal = [json.loads(line) for line in (run_dir / JOURNAL_NAME).read_text().splitlines()]
        assert [(line.get("kind"), line.get("human_label", line.get("verified"))) for line in journal[1:]] == [
            ("label", mouse_class),
            ("label", "blast"),
            ("label", None),
            ("slide", True),
        ]
        assert journal[1]["cell"] == first["path"] and journal[2]["cell"] == second["path"]
        assert journal[1]["model_label"] == first["label"] and journal[1]["user"] == "ann"

        with review_server(run_dir) as (server, url):
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']")
            assert page.inner_text("#status") == "Resumed: 4 decisions saved"
            assert human(page, order[0]) == f"\u2192 {mouse_class}" and human(page, order[1]) == ""
            assert page.inner_text("#slide-state").startswith("Verified by ann at ")
            resumed = {
                row: page.inner_text(f"#differential tbody tr:nth-child({row + 1}) td:nth-child(3)")
                for row in range(len(model_classes))
            }
            assert resumed == counts
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0
        browser.close()

    verified = rows(run_dir / "verified.csv")
    on_a = [row for row in verified if row["slide"] == "slide_A" and row["status"] == "ok"]
    assert {row["path"]: row["human_label"] for row in on_a} == {
        row["path"]: (mouse_class if row["path"] == first["path"] else row["label"]) for row in on_a
    }
    assert all(row["human_label"] == "" for row in verified if row["slide"] == "slide_B")
    summary = json.loads((run_dir / "verified_summary.json").read_text())["slides"]["slide_A"]
    expected = Counter(row["label"] for row in on_a) - Counter([first["label"]]) + Counter([mouse_class])
    assert {name: entry["count"] for name, entry in summary["verified_differential"].items() if entry["count"]} == (
        expected
    )
    assert summary["verified"] and summary["agreement"]["kept"] == len(on_a) - 1

    with Image.open(screenshot) as image:
        assert image.format == "PNG" and image.size == (SCREEN["width"], SCREEN["height"])
        assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 1000  # a rendered gallery, not a blank page
    if target := os.environ.get("HEMA_VERIFY_PAGE_PNG"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target)
