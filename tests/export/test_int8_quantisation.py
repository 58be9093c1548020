"""What hema's INT8 recipe leaves in FP32, and whether the default model's INT8 keeps its labels on PBC."""

from __future__ import annotations

import csv
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from hema.export.graph.fuse import read_card
from hema.export.precision.agreement import compare_models
from hema.export.precision.int8_quantisation import Int8Settings, floating_point_nodes
from hema.export.precision.onnx_int8 import quantise_onnx
from hema.runtime.cli import app as infer_app
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import installed_backends
from hema.runtime.engines.base import EMBEDDING_OUTPUT
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.engines.precision_gate import AgreementGate


@pytest.fixture(scope="module")
def fp32() -> onnx.ModelProto:
    return onnx.load(str(DEFAULT_MODEL_PATH))


def _dequantised_inputs(graph: onnx.GraphProto) -> dict[str, bool]:
    """For each node: does any of its inputs come out of a DequantizeLinear (is it computed in INT8)?"""
    dequantised = {output for node in graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    return {node.name: bool(dequantised.intersection(node.input)) for node in graph.node}


def test_the_first_convolutions_and_everything_after_the_embedding_stay_fp32(fp32: onnx.ModelProto) -> None:
    names = floating_point_nodes(fp32, 6)
    convolutions = [node.name for node in fp32.graph.node if node.op_type == "Conv"]
    assert names[:6] == convolutions[:6]
    after = names[6:]
    assert {"head/head_matmul", "head/head_softmax", "novelty/similarity"} <= set(after)
    assert not any(name.startswith("/model/") for name in after)
    producers = {output: node.name for node in fp32.graph.node for output in node.output}
    assert producers[EMBEDDING_OUTPUT] not in after  # the embedding itself is the backbone's
    assert floating_point_nodes(fp32, 0) == after


@pytest.mark.parametrize("settings", [{"cells": 0}, {"batch_size": 0}, {"fp32_convolutions": -1}])
def test_settings_out_of_range_are_refused(settings: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="out of range"):
        Int8Settings(**settings)


@pytest.fixture(scope="module")
def int8_model(pbc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model's INT8 Q/DQ ONNX as hema-export makes it (300 train-split calibration cells)."""
    path = tmp_path_factory.mktemp("int8") / "default.int8.onnx"
    onnx.save(quantise_onnx(DEFAULT_MODEL_PATH, pbc_dir), str(path))
    return path


@pytest.mark.slow
def test_int8_computes_in_int8_except_where_the_recipe_says(int8_model: Path, fp32: onnx.ModelProto) -> None:
    graph = onnx.load(str(int8_model)).graph
    in_int8 = _dequantised_inputs(graph)
    kept = set(floating_point_nodes(fp32, Int8Settings().fp32_convolutions))
    convolutions = [node.name for node in graph.node if node.op_type == "Conv"]
    assert not any(in_int8[name] for name in kept)
    assert all(in_int8[name] for name in convolutions if name not in kept)
    assert read_card(onnx.load(str(int8_model))).precision == "int8"


@pytest.mark.slow
def test_default_model_int8_meets_the_gate_on_the_pbc_test_split(int8_model: Path, pbc_dir: Path) -> None:
    """Issue 4's acceptance in ONNX Runtime: >= 99 % label agreement, <= 0.5 point balanced accuracy drop."""
    report = compare_models(OnnxRuntimeEngine(int8_model), OnnxRuntimeEngine(DEFAULT_MODEL_PATH), pbc_dir)
    assert report.cells == 639
    assert report.problems(AgreementGate()) == [], report.summary()


@pytest.mark.slow
def test_default_model_int8_in_openvino_keeps_its_labels(int8_model: Path, pbc_dir: Path) -> None:
    """OpenVINO runs the same Q/DQ model with its own INT8 kernels: 99.06 % agreement on this AVX2-only CPU.

    The bound is a point under the gate because other CPUs' INT8 kernels round differently; the export itself
    still applies the full gate.
    """
    pytest.importorskip("openvino")
    from hema.runtime.engines.openvino_engine import OpenVinoEngine

    report = compare_models(OpenVinoEngine(int8_model), OnnxRuntimeEngine(DEFAULT_MODEL_PATH), pbc_dir)
    assert report.label_agreement >= 0.98, report.summary()
    assert report.balanced_accuracy_drop <= AgreementGate().max_accuracy_drop, report.summary()


def test_a_model_with_an_unnamed_node_is_refused(fp32: onnx.ModelProto) -> None:
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    next(node for node in model.graph.node if node.op_type == "Conv").name = ""
    with pytest.raises(ValueError, match="must have a name"):
        floating_point_nodes(model, 1)


def _classify(model: Path, cells: Path, out: Path, backend: str) -> list[dict[str, str]]:
    args = ["classify", str(cells), "--out", str(out), "--model", str(model), "--backend", backend, "--no-html"]
    result = CliRunner().invoke(infer_app, [*args, "--unverified"] if model != DEFAULT_MODEL_PATH else args)
    assert result.exit_code == 0, result.output
    with (out / "cells.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_classify_with_the_int8_model_gives_the_fp32_rows(
    backend: str, int8_model: Path, small_pbc_eval: Path, tmp_path: Path
) -> None:
    """hema-infer's rows with INT8 are FP32's, up to the quantisation agreement (32 cells: at most one change)."""
    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    reference = _classify(DEFAULT_MODEL_PATH, small_pbc_eval, tmp_path / "fp32", "onnxruntime")
    got = _classify(int8_model, small_pbc_eval, tmp_path / "int8", backend)
    assert [(row["path"], row["status"]) for row in got] == [(row["path"], row["status"]) for row in reference]
    changed = sum(a["label"] != b["label"] for a, b in zip(got, reference))
    assert changed <= 1, changed
