"""Every ``--help`` of hema-train, hema-export and hema-infer renders without loading torch, onnx or OpenVINO.

The heavy libraries are imported inside the commands that need them, so that ``--help`` answers at once (the
times are measured by ``benchmarks/help_times.py``, not asserted here). Each tool is checked in a fresh
interpreter, because this test process has long since imported torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "timm", "onnx", "openvino", "nncf", "sklearn", "matplotlib", "tensorrt")

SCRIPT = """
import json, sys
from typer.main import get_command
from typer.testing import CliRunner
from {module} import app
command = get_command(app)
runner = CliRunner()
helps = {{"": runner.invoke(app, ["--help"])}}
for name in getattr(command, "commands", {{}}):
    helps[name] = runner.invoke(app, [name, "--help"])
print(json.dumps({{
    "exit_codes": {{name: result.exit_code for name, result in helps.items()}},
    "texts": {{name: result.output for name, result in helps.items()}},
    "heavy": sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r})),
}}))
"""


@pytest.mark.parametrize("module", ["hema.train.cli", "hema.export.cli", "hema.runtime.cli"])
def test_every_help_renders_without_heavy_imports(module: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(module=module, heavy=HEAVY)], capture_output=True, text=True, check=True
    )
    report = json.loads(run.stdout)
    assert len(report["exit_codes"]) > 2, report["exit_codes"]
    assert set(report["exit_codes"].values()) == {0}, report["texts"]
    assert report["heavy"] == [], f"{module} --help imported {report['heavy']}"


def _help(module: str, command: str) -> str:
    script = f"from typer.testing import CliRunner; from {module} import app; "
    script += f"print(CliRunner().invoke(app, [{command!r}, '--help']).output)"
    wide = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=wide).stdout


def test_help_shows_real_defaults_and_choices() -> None:
    openvino = _help("hema.export.cli", "openvino")
    assert "fp32|fp16|int8" in openvino and "[default: 0.99]" in openvino and "[default: 0.005]" in openvino
    fewshot = _help("hema.train.cli", "fewshot")
    assert "lr|linear-svm|svm|knn|rf" in fewshot and "all|train|test" in fewshot and "[default: 50]" in fewshot
    classify = _help("hema.runtime.cli", "classify")
    assert "--decode-threads" in classify and "[default: 32]" in classify


def test_old_spellings_still_work_and_say_so(tmp_path) -> None:
    """A renamed option keeps working as a hidden alias: same value, a note on stderr, not shown in --help."""
    from typer.testing import CliRunner

    from hema.runtime.cli import app

    image = tmp_path / "cell.jpg"
    image.write_text("not a cell")
    result = CliRunner().invoke(app, ["classify", str(image), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert "--workers is deprecated; use --decode-threads" in result.output
    assert result.exit_code == 1, result.output  # the one file is not an image: an error row, exit 1
    assert "--workers" not in _help("hema.runtime.cli", "classify")
