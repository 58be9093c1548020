"""Helpers the test modules share: running the command lines, reading the reports they write, finding Chromium.

Imported as ``from helpers import ...``: pytest puts ``tests/`` on ``sys.path`` because the rootdir
``tests/conftest.py`` lives there (and ``tests/`` has no ``__init__.py``).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

__all__ = [
    "CHROMIUM_FLAGS",
    "INFER",
    "chromium",
    "default_model_proto",
    "edit_card",
    "invoke",
    "read_rows",
    "run_infer",
    "save_with_manifest",
]

INFER = "import sys; from hema.runtime.cli import app; sys.argv[0] = 'hema-infer'; app()"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--hide-scrollbars")  # fmt: skip
"""Headless Chromium as the browser tests run it: no sandbox (root in CI), nothing fetched in the background."""


def chromium() -> str:
    """Path of the Chromium binary (``$HEMA_CHROMIUM`` overrides), or skip (fail under CI) without one."""
    found = os.environ.get("HEMA_CHROMIUM") or shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if not found:
        message = "headless Chromium not installed: apt-get install -y chromium (make test does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def invoke(app: Any, *args: object):
    """Run a typer ``app`` in this process with ``args`` (turned into strings); typer's ``Result``."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def run_infer(
    *args: object, cwd: Path | None = None, prefix: Sequence[str] = (), **keywords: Any
) -> subprocess.CompletedProcess[str]:
    """``hema-infer ARGS`` in a fresh interpreter, as a lab runs the console entry point.

    Args:
        args: Command-line arguments (paths and numbers are turned into strings).
        cwd: Folder to run in. It is also the child's ``HOME``, and no bytecode is written, so that an
            unprivileged user who may write nowhere else can run it.
        prefix: Command put before the interpreter (``setpriv ... --``).
        keywords: Further ``subprocess.run`` keywords (``user``, ``group``, ``extra_groups``).
    """
    env = None if cwd is None else {**os.environ, "HOME": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [*prefix, sys.executable, "-c", INFER, *map(str, args)],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=300,
        check=False,
        cwd=cwd,
        env=env,
        **keywords,
    )


def read_rows(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/cells.csv``, the per-cell report of ``hema-infer classify``."""
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def default_model_proto() -> Any:
    """The embedded default model as an ``onnx.ModelProto``, to edit into a broken or tampered model."""
    import onnx

    from hema.runtime.default_model import DEFAULT_MODEL_PATH

    return onnx.load(str(DEFAULT_MODEL_PATH))


def edit_card(model: Any, edit: Callable[[dict[str, Any]], None]) -> Any:
    """Change the model card in ``model``'s metadata in place with ``edit`` (given the card as a dict); ``model``."""
    import json

    from hema.runtime.card import CARD_METADATA_KEY

    [entry] = [entry for entry in model.metadata_props if entry.key == CARD_METADATA_KEY]
    card = json.loads(entry.value)
    edit(card)
    entry.value = json.dumps(card)
    return model


def save_with_manifest(model: Any, path: Path) -> Path:
    """Save ``model`` (an ``onnx.ModelProto``) to ``path`` with a fresh manifest, as ``hema-export`` would.

    A fresh manifest makes the model pass its integrity check, so the check a test is about is the one that acts.
    """
    import onnx

    from hema.runtime.manifest import write_manifest

    onnx.save(model, str(path))
    write_manifest(path, "onnx", [path])
    return path
