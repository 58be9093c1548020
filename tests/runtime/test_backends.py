"""Engine choice and model integrity: every installed engine gives the same cells, damaged models are refused."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hema.runtime.cli import app
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import artifact_backends, installed_backends, open_engine
from hema.runtime.engines.base import ModelError
from hema.runtime.manifest import manifest_path, write_manifest
from hema.runtime.reports.atomic_files import write_text_atomic

runner = CliRunner()


def test_auto_prefers_openvino_for_onnx_when_installed() -> None:
    engine = open_engine(DEFAULT_MODEL_PATH)
    assert engine.backend == ("openvino" if "openvino" in installed_backends() else "onnxruntime")


def test_suffix_decides_the_engines() -> None:
    assert artifact_backends(Path("m.onnx")) == ("openvino", "onnxruntime")
    assert artifact_backends(Path("m.XML")) == ("openvino",)
    assert artifact_backends(Path("m.engine")) == ("tensorrt",)
    with pytest.raises(ModelError, match="unknown model format"):
        artifact_backends(Path("m.pt"))


def test_an_engine_that_cannot_run_the_format_is_refused() -> None:
    with pytest.raises(ModelError, match="tensorrt cannot run a .onnx file"):
        open_engine(DEFAULT_MODEL_PATH, "tensorrt")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_every_engine_gives_the_same_probabilities(backend: str) -> None:
    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    images = np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    reference = open_engine(DEFAULT_MODEL_PATH, "onnxruntime").run(images)
    got = open_engine(DEFAULT_MODEL_PATH, backend).run(images)
    assert set(got) == set(reference)
    for name, value in reference.items():
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], value, atol=1e-3)


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_classify_gives_the_same_rows_with_every_installed_backend(small_pbc_eval: Path, tmp_path: Path) -> None:
    rows = {}
    for backend in installed_backends():
        if backend == "tensorrt":
            continue  # runs .engine files only
        out = tmp_path / backend
        result = runner.invoke(app, ["classify", str(small_pbc_eval), "--out", str(out), "--backend", backend,
                                     "--no-html"])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"on {backend}" in result.output
        rows[backend] = _rows(out)
    reference = rows.pop("onnxruntime")
    for backend, got in rows.items():
        assert [row["path"] for row in got] == [row["path"] for row in reference]
        assert [row["label"] for row in got] == [row["label"] for row in reference], backend
        gaps = [abs(float(a["confidence"]) - float(b["confidence"])) for a, b in zip(got, reference)]
        assert max(gaps) < 1e-3


def test_a_truncated_model_is_refused_before_any_cell(model_copy: Path, small_pbc_eval: Path, tmp_path: Path) -> None:
    data = model_copy.read_bytes()
    model_copy.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["classify", str(small_pbc_eval), "--model", str(model_copy), "--out",
                                 str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2
    assert "damaged" in result.output and "truncated" in result.output
    assert not (tmp_path / "out").exists()


def test_a_changed_model_is_refused_even_with_unverified(model_copy: Path) -> None:
    data = bytearray(model_copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the weights: same size, different sha256
    model_copy.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="changed after export"):
        open_engine(model_copy)
    result = runner.invoke(app, ["info", "--model", str(model_copy), "--unverified"])
    assert result.exit_code == 2 and "changed after export" in result.output


def test_a_model_without_manifest_needs_unverified(model_copy: Path) -> None:
    manifest_path(model_copy).unlink()
    result = runner.invoke(app, ["info", "--model", str(model_copy)])
    assert result.exit_code == 2 and "--unverified" in result.output
    result = runner.invoke(app, ["info", "--model", str(model_copy), "--unverified"])
    assert result.exit_code == 0, result.output


def test_manifest_lists_size_and_sha256(model_copy: Path) -> None:
    path = write_manifest(model_copy, "onnx", [model_copy])
    assert path == manifest_path(model_copy)
    assert open_engine(model_copy, "onnxruntime").card.class_names


def test_a_tensorrt_engine_without_tensorrt_says_so(tmp_path: Path) -> None:
    if "tensorrt" in installed_backends():
        pytest.skip("TensorRT is installed here; the gpu tests cover it")
    engine = tmp_path / "cells.engine"
    engine.write_bytes(b"not an engine, but TensorRT is missing anyway")
    card = open_engine(DEFAULT_MODEL_PATH, "onnxruntime").card.to_json()
    write_manifest(engine, "tensorrt", [engine], card=card)
    with pytest.raises(ModelError, match="TensorRT is not installed"):
        open_engine(engine)


def test_reports_are_readable_by_others(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "summary.json", "{}\n")
    finally:
        os.umask(previous)
    mode = stat.S_IMODE((tmp_path / "summary.json").stat().st_mode)
    assert mode == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left behind
