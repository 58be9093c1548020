"""How fast the verification app is: loading a run of 2,000 real cells in the page, and saving a decision.

    nice -n 19 .venv/bin/python benchmarks/verification_app.py --data ../shared/data/pbc --out benchmarks/results

``--cells`` PBC cells (default 2,000, taken in turn from each class folder) are linked into ``--slides`` slide
folders (default 1: all 2,000 cells in one gallery, the worst case) and classified with ``hema-infer classify``.
``hema-infer review`` then serves the run from its own process, as a lab runs it, and this script measures:

* **page load** in headless Chromium (Debian's, driven by Playwright; a fresh browser context each time, so nothing
  is cached in the browser): from navigation to the gallery built (every cell of the slide in the page, the
  differential drawn), and to every thumbnail in the window decoded. The first load is cold (the server makes the
  thumbnails it is asked for); the next ones are warm (the server keeps them). Thumbnails below the window load
  as the technologist scrolls (``loading="lazy"``).
* **reclassification round trip**: ``POST /api/label`` on a kept-alive connection, from sending to the answer,
  which comes only after the decision line is written and ``fsync``ed to the journal (``--round-trips`` distinct
  cells); and, in the page, from a class key's ``keydown`` to "Saved" in the status line (sent, journalled,
  answered, the gallery and differential redrawn; timed in the page).

Writes ``verification-app.json``, ``verification-app.md`` and a screenshot ``verification-app.png`` into ``--out``.
The journal lies on the work folder's disk (``--work``; a temporary folder by default): ``fsync`` costs what that
disk costs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-sync"]
SCREEN = {"width": 1440, "height": 960}
INFER = "import sys; from hema.runtime.cli import app; sys.argv[0] = 'hema-infer'; app()"
VISIBLE_DECODED = """(() => {
  const inside = [...document.images].filter((image) => {
    const box = image.getBoundingClientRect();
    return box.bottom > 0 && box.top < innerHeight;
  });
  return inside.length && inside.every((image) => image.complete && image.naturalWidth > 0) ? inside.length : 0;
})()"""


def make_run(data: Path, cells: int, slides: int, work: Path) -> Path:
    """Link ``cells`` PBC images (each class in turn) into ``slides`` folders and classify them; the run folder."""
    folders = [sorted(path for path in folder.glob("*.jpg")) for folder in sorted(data.iterdir()) if folder.is_dir()]
    chosen = [folder[i] for i in range(max(map(len, folders))) for folder in folders if i < len(folder)][:cells]
    if len(chosen) < cells:
        raise SystemExit(f"only {len(chosen)} cells under {data}")
    for number, path in enumerate(chosen):
        slide = work / "cells" / f"slide_{number % slides + 1:02d}"
        slide.mkdir(parents=True, exist_ok=True)
        (slide / path.name).symlink_to(path.resolve())
    run = work / "run"
    command = [sys.executable, "-c", INFER, "classify", str(work / "cells"), "--out", str(run)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return run


def start_review(run: Path) -> tuple[subprocess.Popen, str]:
    """``hema-infer review RUN --port 0`` in its own process, and the address it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", INFER, "review", str(run), "--user", "bench", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    match = re.fullmatch(r"review page: (http://127\.0\.0\.1:\d+/)\n", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("hema-infer review did not print its address")
    return process, match.group(1)


def until(page: Page, expression: str, timeout: float = 120.0) -> object:
    """Poll ``expression`` in the page every 10 ms until it is truthy (the page's policy forbids string eval)."""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(10)
    return value


def page_loads(browser, url: str, loads: int, screenshot: Path) -> list[dict[str, float]]:
    """Seconds from navigation to the gallery built and to the window's thumbnails decoded, per fresh load."""
    timings = []
    for number in range(loads):
        context = browser.new_context(viewport=SCREEN)
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.wait_for_selector("body[data-ready='1']", timeout=120_000)
        built = time.perf_counter() - start
        visible = until(page, VISIBLE_DECODED)
        decoded = time.perf_counter() - start
        figures = page.evaluate("document.querySelectorAll('#gallery figure.cell').length")
        timings.append({"gallery_built_s": built, "window_decoded_s": decoded, "figures": figures, "visible": visible})
        if number == 0:
            page.screenshot(path=str(screenshot))
        context.close()
    return timings


def http_round_trips(url: str, count: int) -> list[float]:
    """Seconds per ``POST /api/label`` (sent to answered: journalled and fsynced), on one kept-alive connection."""
    port = int(url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json", "X-Hema-Review": "1"}
    times = []
    for cell in range(count):
        body = json.dumps({"cell": cell, "label": "blast" if cell % 2 else "other", "base": 0, "seen": cell})
        start = time.perf_counter()
        connection.request("POST", "/api/label", body=body, headers=headers)
        response = connection.getresponse()
        answer = json.loads(response.read())
        times.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"cell {cell}: {response.status} {answer}")
    connection.close()
    return times


MARKS = """(() => {
  window.marks = [];
  document.addEventListener("keydown", () => window.marks.push(["key", performance.now(), ""]), true);
  const status = document.getElementById("status");
  new MutationObserver(() => window.marks.push(["status", performance.now(), status.textContent]))
    .observe(status, { childList: true, characterData: true, subtree: true });
})()"""


def key_to_saved(browser, url: str, count: int, offset: int) -> list[float]:
    """Seconds from a class key's ``keydown`` in the page to "Saved" in its status line, timed inside the page
    (``performance.now()``; Playwright's own messages are not counted), for cells after the HTTP test's."""
    context = browser.new_context(viewport=SCREEN)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=120_000)
    key = page.inner_text("#differential tr:has(button[data-label='blast']) kbd")
    page.evaluate(MARKS)
    times = []
    for number in range(count):
        page.click(f"#cell-{offset + number}")
        saved = f"Saved (decision {offset + number + 1})"
        page.keyboard.press(key)
        page.wait_for_selector(f"#status.saved:has-text('{saved}')", timeout=60_000)
        marks = page.evaluate("window.marks.splice(0)")
        pressed = [time for kind, time, _ in marks if kind == "key"][-1]
        shown = next(time for kind, time, text in marks if kind == "status" and text == saved and time >= pressed)
        times.append((shown - pressed) / 1000)
    context.close()
    return times


def cpu_name() -> str:
    """The processor's model name (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[max(0, int(0.95 * len(ordered)) - 1)], 2),
        "min_ms": round(1000 * ordered[0], 2),
        "max_ms": round(1000 * ordered[-1], 2),
        "n": len(ordered),
    }


def markdown(report: dict) -> str:
    load, trips = report["page_load"], report["round_trip"]
    lines = [
        "# Verification app (`hema-infer review`): page load and round trip",
        "",
        f"{report['cells']:,} real PBC cells on {report['slides']} slide(s), classified by `hema-infer classify`, "
        f"served by `hema-infer review` (Python `http.server`) to headless Chromium {report['chromium']}; "
        f"{report['machine']}. Run: `{report['command']}`.",
        "",
        "| page load (fresh browser context) | gallery built (s) | thumbnails in the window decoded (s) |",
        "|---|--:|--:|",
    ]
    for number, timing in enumerate(load):
        name = "cold (server makes the thumbnails)" if number == 0 else f"warm #{number}"
        lines.append(f"| {name} | {timing['gallery_built_s']:.2f} | {timing['window_decoded_s']:.2f} |")
    lines += [
        "",
        f"Gallery: {load[0]['figures']:,} cells in the page, {load[0]['visible']} thumbnails in a "
        f"{SCREEN['width']}x{SCREEN['height']} window (the rest load as one scrolls).",
        "",
        "| reclassification | median (ms) | p95 (ms) | min (ms) | max (ms) | n |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, key in (("POST /api/label -> fsync -> answer", "http"), ("key down -> 'Saved' in the page", "page")):
        entry = trips[key]
        lines.append(
            f"| {name} | {entry['median_ms']} | {entry['p95_ms']} | {entry['min_ms']} | {entry['max_ms']} | "
            f"{entry['n']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pbc"), help="PBC class folders.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--slides", type=int, default=1)
    parser.add_argument("--loads", type=int, default=3, help="Page loads (the first cold).")
    parser.add_argument("--round-trips", type=int, default=200)
    parser.add_argument("--key-presses", type=int, default=30)
    parser.add_argument("--work", type=Path, default=None, help="Work folder (default: a temporary one).")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=arguments.work) as folder:
        run = make_run(arguments.data, arguments.cells, arguments.slides, Path(folder))
        server, url = start_review(run)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                loads = page_loads(browser, url, arguments.loads, arguments.out / "verification-app.png")
                http_times = http_round_trips(url, arguments.round_trips)
                page_times = key_to_saved(browser, url, arguments.key_presses, arguments.round_trips)
                chromium = browser.version
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=120)
    report = {
        "cells": arguments.cells,
        "slides": arguments.slides,
        "chromium": chromium,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} (shared with other work)",
        "command": "nice -n 19 .venv/bin/python benchmarks/verification_app.py " + " ".join(sys.argv[1:]),
        "page_load": loads,
        "round_trip": {"http": summary(http_times), "page": summary(page_times)},
    }
    (arguments.out / "verification-app.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (arguments.out / "verification-app.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


if __name__ == "__main__":
    main()
