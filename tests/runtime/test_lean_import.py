"""The workstation path never imports torch: checked in fresh interpreters through ``sys.modules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "torchvision", "timm", "sklearn")

RUNTIME_SCRIPT = """
import json, sys
from pathlib import Path

HEAVY = {heavy!r}

def heavy():
    return sorted(name for name in sys.modules if name.split(".")[0] in HEAVY)

report = {{}}
import hema.runtime
report["import hema.runtime"] = heavy()

from hema.runtime.cli import app
try:
    app(["--help"])
except SystemExit as stop:
    report["help exit code"] = stop.code
report["hema-infer --help"] = heavy()

from hema.runtime import DEFAULT_MODEL_PATH, classify_files
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
results = list(classify_files(OnnxRuntimeEngine(DEFAULT_MODEL_PATH), [Path({image!r})]))
report["classified"] = [(result.status, result.label) for result in results]
report["classify one image"] = heavy()
print("REPORT" + json.dumps(report))
"""

FEWSHOT_SCRIPT = """
import json, sys
from hema.train.cli import app
try:
    app(["fewshot", "--backbone", "default", "--data", {data!r}, "--eval", {data!r}, "--out", {out!r},
         "--labels-per-class", "2", "--repeats", "1"])
except SystemExit as stop:
    code = stop.code
print("REPORT" + json.dumps({{"exit code": code, "modules": sorted(
    name for name in sys.modules if name.split(".")[0] in ("torch", "torchvision", "timm"))}}))
"""


def _run(script: str) -> dict:
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert process.returncode == 0, process.stderr
    line = next((line for line in process.stdout.splitlines() if line.startswith("REPORT")), None)
    assert line is not None, process.stdout + process.stderr
    return json.loads(line[len("REPORT") :])


def test_runtime_import_help_and_classify_do_not_import_torch_or_sklearn(pbc_dir: Path) -> None:
    image = sorted((pbc_dir / "lymphocyte").glob("*.jpg"))[0]
    report = _run(RUNTIME_SCRIPT.format(heavy=HEAVY, image=str(image)))
    assert report["help exit code"] in (0, None)
    assert len(report["classified"]) == 1 and report["classified"][0][0] == "ok", report["classified"]
    for stage in ("import hema.runtime", "hema-infer --help", "classify one image"):
        assert report[stage] == [], f"{stage} imported {report[stage]}"


def test_fewshot_with_the_default_onnx_backbone_does_not_import_torch(small_pbc_eval: Path, tmp_path: Path) -> None:
    out = tmp_path / "head"
    report = _run(FEWSHOT_SCRIPT.format(data=str(small_pbc_eval), out=str(out)))
    assert report["exit code"] in (0, None)
    assert (out / "metrics.json").is_file() and (out / "head.json").is_file()
    assert report["modules"] == [], f"hema-train fewshot --backbone default imported {report['modules']}"
