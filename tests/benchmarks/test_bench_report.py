"""The engine benchmark's bookkeeping and report writers, on a tiny synthetic result set (no timing asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from engines.candidates import BASELINE, REFERENCE, build_log, engine_specs, gpu_present  # noqa: E402
from engines.cells import CellSet, read_cells  # noqa: E402
from engines.machine import cpu_description  # noqa: E402
from engines.plot import plot_engines  # noqa: E402
from engines.report import markdown_report, write_json, write_markdown  # noqa: E402
from engines.scoring import check_goals, score_engines  # noqa: E402
from engines.timing import batches_per_repeat, latency_percentiles, measure_throughput  # noqa: E402

TRUTH = np.array([0, 0, 1, 1, 2, 2])


def _one_hot(labels: list[int]) -> np.ndarray:
    return np.eye(3, dtype=np.float32)[labels]


def _row(name: str, label: str, b32: float, status: str = "ok", reason: str = "") -> dict:
    row = {
        "name": name,
        "label": label,
        "engine": "x",
        "format": "ONNX",
        "precision": "bf16 hint" if "bf16" in name else "fp32",
        "artifact": f"/models/{name}.onnx",
        "status": status,
        "reason": reason,
    }
    if status == "ok":
        row.update(
            size_bytes=17_000_000,
            ran_precision="f32",
            latency_ms={"p50": 1000 / b32, "p95": 1.2e3 / b32, "p99": 1.5e3 / b32, "mean": 1.1e3 / b32, "runs": 9},
            throughput={str(size): {"cells_per_s": b32 * size / 32} for size in (1, 8, 32, 64)},
            peak_rss_delta_mb=120.0,
            cold_start_s=1.5,
            threads=2,
            describe=f"{name} engine",
        )
    return row


@pytest.fixture
def result() -> dict:
    rows = [
        _row(BASELINE, "PyTorch eager", 10.0),
        _row(REFERENCE, "ONNX Runtime", 150.0),
        _row("openvino-bf16-hint", "OpenVINO bf16 hint", 300.0),
        _row("tensorrt", "TensorRT", 0.0, status="skipped", reason="no NVIDIA GPU on this machine"),
    ]
    answers = {
        BASELINE: _one_hot([0, 0, 1, 1, 2, 2]),
        REFERENCE: _one_hot([0, 0, 1, 1, 2, 0]),
        "openvino-bf16-hint": _one_hot([0, 1, 1, 1, 2, 2]),
    }
    score_engines(rows, answers, TRUTH, 3)
    end_to_end = [
        {
            "label": "auto",
            "command": "hema-infer classify CELLS --out OUT --no-html",
            "cells": 6,
            "rows": 6,
            "wall_s": 2.0,
            "cells_per_s": 3.0,
            "startup_s": 1.5,
            "steady_cells_per_s": 10.0,
        }
    ]
    machine = {
        "cpu": {"model": "Test CPU", "flags": {"avx2": True, "amx_int8": False}},
        "cores": 2,
        "memory_gb": 8.0,
        "os": "Test OS",
        "kernel": "6.0",
        "python": "3.11",
        "load_average": [0.1, 0.2, 0.3],
        "versions": {"numpy": "2.0", "torch": None},
    }
    return {
        "model": {"name": "tiny"},
        "command": "python benchmarks/bench_engines.py --model tiny.onnx",
        "machine": machine,
        "settings": {"warmup": 5, "latency_runs": 9, "batch_sizes": [1, 8, 32, 64], "repeats": 3},
        "data": {"folder": "cells", "split": "test", "cells": 6},
        "engines": rows,
        "end_to_end": end_to_end,
        "profile": {
            "cells": 6,
            "engine": "openvino",
            "batch_size": 32,
            "ms_per_cell": {"read": 0.1, "decode": 1.5, "resize": 0.4, "engine": 3.0, "csv": 0.05},
            "total_ms_per_cell": 5.05,
            "tried": ["decode threads: 1: 500, 2: 900"],
        },
        "goals": check_goals(rows, end_to_end),
        "load_average_end": [0.2, 0.2, 0.3],
    }


def test_scores_against_reference_and_baseline(result: dict) -> None:
    rows = {row["name"]: row for row in result["engines"]}
    assert rows[BASELINE]["speedup_vs_eager_b32"] == pytest.approx(1.0)
    assert rows[REFERENCE]["speedup_vs_eager_b32"] == pytest.approx(15.0)
    assert rows["openvino-bf16-hint"]["speedup_vs_eager_b32"] == pytest.approx(30.0)
    assert rows[REFERENCE]["label_agreement"] == pytest.approx(1.0)
    assert rows[BASELINE]["label_agreement"] == pytest.approx(5 / 6)
    assert rows["openvino-bf16-hint"]["label_agreement"] == pytest.approx(4 / 6)
    assert rows[BASELINE]["balanced_accuracy"] == pytest.approx(1.0)
    assert rows[REFERENCE]["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert "balanced_accuracy" not in rows["tensorrt"]


def test_goals(result: dict) -> None:
    goals = result["goals"]
    assert goals["best_vs_eager_batch_32"]["met"] and goals["best_vs_eager_batch_32"]["by"] == "openvino-bf16-hint"
    assert goals["end_to_end_cells_per_s"]["measured"] == 3.0 and not goals["end_to_end_cells_per_s"]["met"]


def test_markdown_has_one_row_per_engine_and_the_skip_reason(result: dict) -> None:
    text = markdown_report(result)
    table = [line for line in text.split("## Details")[0].splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 1 + len(result["engines"])
    assert sum("✅" in line for line in table) == 3 and sum("❌" in line for line in table) == 1
    assert "TensorRT: skipped — no NVIDIA GPU on this machine" in text
    assert "bf16 hint (ran f32)" in text
    bf16 = next(line for line in table if line.startswith("| OpenVINO bf16 hint"))
    assert "| 30.00 |" in bf16 and "66.67%" in bf16
    for section in ("## End to end", "## Profile", "## Goals", "## Machine", "## Command", "Test CPU"):
        assert section in text
    assert result["command"] in text


def test_writes_json_markdown_and_png(result: dict, tmp_path: Path) -> None:
    result["engines"][0]["extra"] = np.float32(0.5)  # numpy values become plain JSON numbers
    json_path = write_json(result, tmp_path / "tiny.json")
    loaded = json.loads(json_path.read_text())
    assert [row["name"] for row in loaded["engines"]] == [row["name"] for row in result["engines"]]
    assert loaded["engines"][0]["extra"] == 0.5
    assert write_markdown(result, tmp_path / "tiny.md").read_text().startswith("# Engine benchmark: tiny")
    png = plot_engines(result, tmp_path / "tiny.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_missing_artifacts_and_refused_builds_are_skipped_with_reasons(tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    model.write_bytes(b"onnx")
    edge = tmp_path / "edge"
    edge.mkdir()
    (edge / "tiny-int8.log").write_text("error: labels agree on 95% of 639 cells (need 99%)\nexit 1 after 412 s\n")
    specs = {spec.name: spec for spec in engine_specs(model, edge)}
    assert [name for name in specs][:2] == [BASELINE, REFERENCE]
    assert "make edge-models" in specs["openvino-fp32"].skip or "OpenVINO" in specs["openvino-fp32"].skip
    assert specs[REFERENCE].skip == ""
    if "OpenVINO" not in specs["openvino-int8"].skip:
        assert "labels agree on 95%" in specs["openvino-int8"].skip
    if not gpu_present():
        assert specs["tensorrt"].skip == "no NVIDIA GPU on this machine"
    assert build_log(edge / "tiny-int8.xml") == {
        "log": str(edge / "tiny-int8.log"),
        "error": "labels agree on 95% of 639 cells (need 99%)",
        "exit_code": 1,
        "build_s": 412,
    }
    assert build_log(edge / "missing.xml") == {}


def test_cells_are_read_back_in_order_and_wrap(tmp_path: Path) -> None:
    images = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    (tmp_path / "cells.u8").write_bytes(images.tobytes())
    cells = CellSet(str(tmp_path / "cells.u8"), 3, 2, 2, [0, 1, 2], ["a", "b", "c"])
    assert CellSet.from_json(cells.to_json()) == cells
    np.testing.assert_array_equal(read_cells(cells, 1, 2), images[1:3])
    np.testing.assert_array_equal(read_cells(cells, 2, 2), images[[2, 0]])


def test_timing_helpers() -> None:
    percentiles = latency_percentiles([0.001] * 98 + [0.002, 0.010])
    assert percentiles["p50"] == pytest.approx(1.0) and percentiles["runs"] == 100
    assert percentiles["p99"] > percentiles["p95"] >= percentiles["p50"]
    calls = []
    found = measure_throughput(calls.append, [np.zeros((4, 1)), np.zeros((4, 1))], repeats=3)
    assert len(calls) == 1 + 3 * 2 and found["cells_per_repeat"] == 8 and found["cells_per_s"] > 0
    assert batches_per_repeat(1, 64) == 64 and batches_per_repeat(64, 64) == 1 and batches_per_repeat(100, 64) == 1


def test_cpu_flags_from_cpuinfo() -> None:
    text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma f16c\n\nprocessor\t: 1\n"
    found = cpu_description(text)
    assert found["model"] == "AMD EPYC"
    assert found["flags"]["avx2"] and not found["flags"]["avx512f"] and not found["flags"]["amx_int8"]
