"""OpenVINO IR, INT8 and TensorRT exports of the default model, each judged against FP32 on real cells."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from hema.export.cli import app as export_app
from hema.export.graph.fuse import read_card
from hema.export.precision.agreement import AgreementError, compare_models
from hema.export.precision.int8_quantisation import Int8Settings
from hema.export.precision.openvino_ir import export_openvino
from hema.export.precision.reduced_precision import export_onnx_int8
from hema.export.precision.tensorrt_build import half_precision_onnx
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import open_engine
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.engines.openvino_engine import OpenVinoEngine, openvino_core
from hema.runtime.engines.precision_gate import AgreementGate
from hema.runtime.manifest import read_manifest, verify_artifact

openvino = pytest.importorskip("openvino")
SMALL_INT8 = Int8Settings(cells=40)  # 40 calibration cells keep CI's quantisation short


@pytest.fixture(scope="module")
def reference() -> OnnxRuntimeEngine:
    return OnnxRuntimeEngine(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="module")
def openvino_fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ov") / "cells.xml"
    export_openvino(DEFAULT_MODEL_PATH, out, precision="fp32")
    return out


def test_openvino_ir_carries_the_card_and_a_manifest(openvino_fp32: Path, reference: OnnxRuntimeEngine) -> None:
    engine = OpenVinoEngine(openvino_fp32)
    assert engine.card.class_names == reference.card.class_names
    assert engine.card.input == reference.card.input
    assert engine.card.precision == "fp32"
    manifest = verify_artifact(openvino_fp32)
    assert set(manifest.files) == {".xml", ".bin"}


def test_openvino_fp32_matches_onnxruntime_on_real_cells(
    openvino_fp32: Path, reference: OnnxRuntimeEngine, small_pbc_eval: Path
) -> None:
    report = compare_models(OpenVinoEngine(openvino_fp32), reference, small_pbc_eval)
    assert report.cells == 32
    assert report.label_agreement == 1.0
    assert report.max_probability_difference < 1e-3
    assert report.balanced_accuracy_drop == 0.0


def test_openvino_fp16_is_half_the_size_and_agrees(tmp_path: Path, openvino_fp32: Path, small_pbc_eval: Path) -> None:
    result = export_openvino(DEFAULT_MODEL_PATH, tmp_path / "half.xml", precision="fp16", check_data=small_pbc_eval)
    assert result.agreement is not None and result.agreement.label_agreement >= 0.99
    fp32_bytes = openvino_fp32.with_suffix(".bin").stat().st_size
    assert (tmp_path / "half.bin").stat().st_size < 0.6 * fp32_bytes
    assert OpenVinoEngine(tmp_path / "half.xml").card.quantisation["agreement"]["cells"] == 32


def test_a_failed_agreement_writes_nothing(tmp_path: Path, small_pbc_eval: Path) -> None:
    with pytest.raises(AgreementError, match="balanced accuracy drops|labels agree"):
        export_openvino(
            DEFAULT_MODEL_PATH,
            tmp_path / "half.xml",
            precision="fp16",
            check_data=small_pbc_eval,
            gate=AgreementGate(max_accuracy_drop=-1.0),
        )
    assert list(tmp_path.iterdir()) == []


def _export_int8(target: str, out: Path, calibration: Path, check: Path, gate: AgreementGate):
    common = {"calibration": calibration, "check_data": check, "gate": gate, "settings": SMALL_INT8}
    if target == "openvino":
        result = export_openvino(DEFAULT_MODEL_PATH, out.with_suffix(".xml"), precision="int8", **common)
        return result, OpenVinoEngine(result.path)
    result = export_onnx_int8(DEFAULT_MODEL_PATH, out.with_suffix(".onnx"), **common)
    return result, OnnxRuntimeEngine(result.path)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["openvino", "onnxruntime"])
def test_int8_export_is_quantised_and_records_its_agreement(
    target: str, tmp_path: Path, small_pbc: Path, small_pbc_eval: Path, reference: OnnxRuntimeEngine
) -> None:
    """Thresholds opened wide: the artifact is written, and its card holds what the check measured."""
    wide_open = AgreementGate(min_agreement=0.0, max_accuracy_drop=1.0)
    result, engine = _export_int8(target, tmp_path / "q", small_pbc, small_pbc_eval, wide_open)
    verify_artifact(result.path)
    assert engine.card.precision == "int8"
    assert "NNCF" in engine.card.quantisation["method"]
    recorded = engine.card.quantisation["agreement"]
    assert recorded["label_agreement"] == result.agreement.label_agreement
    again = compare_models(engine, reference, small_pbc_eval)
    assert again.label_agreement == pytest.approx(recorded["label_agreement"])
    assert again.label_agreement >= 0.8, again.summary()  # a working classifier, if not a faithful one
    assert engine.card.quantisation["kept_in_fp32"].startswith(f"the first {SMALL_INT8.fp32_convolutions} ")
    if target == "onnxruntime":
        graph = onnx.load(str(result.path)).graph
        assert sum(node.op_type == "QuantizeLinear" for node in graph.node) >= 20
    else:
        ops = {op.get_type_name() for op in openvino_core().read_model(str(result.path)).get_ops()}
        assert "FakeQuantize" in ops or "FakeConvert" in ops


@pytest.mark.slow
def test_int8_export_below_the_agreement_gate_writes_nothing(
    tmp_path: Path, small_pbc: Path, small_pbc_eval: Path
) -> None:
    with pytest.raises(AgreementError, match="labels agree on"):
        _export_int8("onnxruntime", tmp_path / "q", small_pbc, small_pbc_eval, AgreementGate(min_agreement=1.01))
    assert list(tmp_path.iterdir()) == []


def test_check_command_reports_agreement_and_exit_codes(openvino_fp32: Path, small_pbc_eval: Path) -> None:
    runner = CliRunner()
    args = ["check", "--model", str(openvino_fp32), "--reference", str(DEFAULT_MODEL_PATH)]
    args += ["--data", str(small_pbc_eval)]
    result = runner.invoke(export_app, args)
    assert result.exit_code == 0, result.output
    assert "labels agree 100.00%" in result.output
    strict = runner.invoke(export_app, [*args, "--max-accuracy-drop", "0", "--min-agreement", "1.0"])
    assert strict.exit_code == 0, strict.output
    missing = runner.invoke(export_app, [*args[:-1], str(small_pbc_eval / "nowhere")])
    assert missing.exit_code == 2


def test_compare_refuses_folders_that_are_not_classes_of_the_model(
    reference: OnnxRuntimeEngine, small_pbc_eval: Path, tmp_path: Path
) -> None:
    cell = next(small_pbc_eval.glob("*/*"))
    (tmp_path / "platypus").mkdir()
    shutil.copyfile(cell, tmp_path / "platypus" / cell.name)
    with pytest.raises(ValueError, match="not classes of the model"):
        compare_models(reference, reference, tmp_path, split="all")


def test_half_precision_onnx_for_tensorrt_11_agrees_on_real_cells(
    tmp_path: Path, reference: OnnxRuntimeEngine, small_pbc_eval: Path
) -> None:
    """TensorRT 11 takes precision from the graph: the FP16 ONNX it is built from must keep the answers."""
    model = half_precision_onnx(onnx.load(str(DEFAULT_MODEL_PATH)))
    path = tmp_path / "half.onnx"
    onnx.save(model, str(path))
    assert read_card(model).class_names == reference.card.class_names
    initialisers = {onnx.helper.tensor_dtype_to_np_dtype(t.data_type) for t in model.graph.initializer}
    assert np.dtype(np.float16) in initialisers
    report = compare_models(OnnxRuntimeEngine(path), reference, small_pbc_eval)
    assert report.label_agreement >= 0.96, report.summary()


def test_tensorrt_export_says_clearly_what_is_missing(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here; the gpu tests cover it")
    except ImportError:
        pass
    result = CliRunner().invoke(
        export_app, ["tensorrt", "--model", str(DEFAULT_MODEL_PATH), "--out", str(tmp_path / "cells.engine")]
    )
    assert result.exit_code == 2, result.output
    assert "TensorRT is not installed" in result.output
    assert not (tmp_path / "cells.engine").exists()


@pytest.mark.gpu
def test_tensorrt_fp16_engine_agrees_with_fp32(tmp_path: Path, small_pbc_eval: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (needs an NVIDIA GPU machine)")
    from hema.export.precision.tensorrt_build import build_tensorrt_engine

    out = build_tensorrt_engine(
        DEFAULT_MODEL_PATH, tmp_path / "cells.engine", precision="fp16", timing_cache=tmp_path / "t"
    )
    manifest = read_manifest(out)
    assert manifest is not None and manifest.card is not None
    assert json.loads(manifest.card)["precision"] == "fp16"
    assert (tmp_path / "t").stat().st_size > 0
    engine = open_engine(out, "tensorrt")
    report = compare_models(engine, OnnxRuntimeEngine(DEFAULT_MODEL_PATH), small_pbc_eval)
    assert report.label_agreement >= 0.99, report.summary()
    batch = np.zeros((70, *[engine.card.input.height, engine.card.input.width, 3]), dtype=np.uint8)
    assert engine.run(batch)["probabilities"].shape[0] == 70  # beyond the profile's max batch: run in chunks
