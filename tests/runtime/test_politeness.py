"""``--threads N`` caps every thread pool hema starts (counted on a real run), and ``--nice`` lowers priority."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hema.runtime.engines.backends import installed_backends
from hema.runtime.politeness import ThreadBudget

TASKS = Path("/proc/self/task")
pytestmark = pytest.mark.skipif(not TASKS.is_dir(), reason="counts threads in /proc (Linux)")


_COUNT_THREADS = """
import os, sys
from pathlib import Path
import numpy as np
from hema.runtime.classify import classify_files
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import open_engine
from hema.runtime.politeness import ThreadBudget
import hema.runtime.engines.{backend}_engine  # what the engine's package starts at import is not a pool of hema's

def count():
    return len(os.listdir("/proc/self/task"))

budget = ThreadBudget.capped({threads}, decode_threads=8)
before = count()
engine = open_engine(DEFAULT_MODEL_PATH, "{backend}", budget.engine)
seen = []
cells = [Path(line) for line in sys.stdin.read().splitlines()]
on_batch = lambda _: seen.append(count())
results = list(classify_files(engine, cells, batch_size=16, decode_threads=budget.decode, on_batch=on_batch))
assert all(result.status == "ok" for result in results)
print(max(seen) - before)
"""


def _threads_added(backend: str, threads: int, cells: list[Path]) -> int:
    """How many threads a fresh process gains while it opens the engine and classifies ``cells`` under a cap."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_THREADS.format(backend=backend, threads=threads)],
        input="\n".join(map(str, cells)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout)


@pytest.fixture(scope="module")
def cells(pbc_dir: Path) -> list[Path]:
    return sorted(pbc_dir.rglob("*.jpg"))[::25][:96]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_each_thread_the_cap_allows_is_one_engine_worker_and_one_decoder(cells: list[Path], backend: str) -> None:
    """Counted in fresh processes: raising ``--threads`` from 1 to 2 (with ``--decode-threads 8``) adds exactly
    two threads, one to the engine's pool and one to the decoding pool; so each pool follows the cap, whatever
    the machine's cores. (Each engine also keeps a fixed few threads of its own: OpenVINO's CPU plugin two.)"""
    if backend not in installed_backends():
        pytest.skip(f"{backend} not installed")
    one, two = (_threads_added(backend, threads, cells[:48]) for threads in (1, 2))
    assert two - one == 2, (one, two)
    assert one <= 1 + (2 if backend == "openvino" else 0), one  # the one decoder, and OpenVINO's fixed two


def test_no_cap_keeps_the_decode_threads_asked_for() -> None:
    assert ThreadBudget.capped(0, decode_threads=3) == ThreadBudget(engine=0, decode=3)


def test_nice_lowers_the_priority_of_the_run(cells: list[Path], tmp_path: Path) -> None:
    """The classify process runs at the nice value asked for (read from /proc while it runs)."""
    run_cli = "import sys; from hema.runtime.cli import app; sys.argv[0] = 'hema-infer'; app()"
    command = [sys.executable, "-c", run_cli, "classify", *map(str, cells), "--out", str(tmp_path / "o")]
    process = subprocess.Popen([*command, "--nice", "7", "--no-html"], stderr=subprocess.PIPE, text=True)
    seen = set()
    while process.poll() is None:
        try:
            seen.add(int((Path("/proc") / str(process.pid) / "stat").read_text().rsplit(")", 1)[1].split()[16]))
        except (OSError, IndexError, ValueError):
            pass
        time.sleep(0.01)
    assert process.returncode == 0, process.stderr.read()
    assert os.nice(0) + 7 in seen, seen


def test_openvino_is_imported_without_its_telemetry(tmp_path: Path) -> None:
    """``import openvino`` alone would import its model converter, which sends a usage event to Intel (unless a
    consent file under ``~/intel`` says no) from a thread it starts; the runtime imports OpenVINO without it."""
    if "openvino" not in installed_backends():
        pytest.skip("openvino not installed")
    probe = (
        "import os, threading\n"
        "from hema.runtime.engines.openvino_engine import openvino_core\n"
        "openvino_core().available_devices\n"
        "print(sorted(t.name for t in threading.enumerate()))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key not in ("CI", "TF_BUILD", "JENKINS_URL")}
    done = subprocess.run(
        [sys.executable, "-c", probe], env={**environment, "HOME": str(tmp_path)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread']"
    assert not (tmp_path / "intel").exists()  # no client id written for a telemetry service
