"""What a model manifest guarantees, and that it cannot be sidestepped (issue 13 item 10).

A manifest must list the artifact's own files (the model, and an OpenVINO IR's ``.bin``): one that lists none
verifies nothing and is refused. ONNX external data (tensors kept in another file) is refused outright, verified or
not. The bytes hashed are the bytes the engine runs: a model file replaced right after its check is not the one
loaded. A malformed manifest is a clear error (``hema-infer`` exit 2), never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import default_model_proto, edit_card, invoke, run_infer, save_with_manifest

from hema.runtime.cli import app
from hema.runtime.default_model import DEFAULT_MODEL_PATH
from hema.runtime.engines.backends import installed_backends, open_engine
from hema.runtime.engines.base import ModelError
from hema.runtime.manifest import manifest_path, write_manifest
from hema.runtime.onnx_external_data import references_external_data

ENGINES = [name for name in ("onnxruntime", "openvino") if name in installed_backends()]
DEFAULT_BYTES = DEFAULT_MODEL_PATH.read_bytes()
DEFAULT_ENTRY = {"sha256": hashlib.sha256(DEFAULT_BYTES).hexdigest(), "bytes": len(DEFAULT_BYTES)}


def write_manifest_document(artifact: Path, document: Any) -> None:
    """Write ``document`` as ``artifact``'s manifest (JSON unless it is already text or bytes)."""
    if isinstance(document, str):
        document = document.encode()
    manifest_path(artifact).write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())


def _fake_tensorrt_engine(tmp_path: Path) -> Path:
    engine = tmp_path / "cells.engine"
    engine.write_bytes(b"serialized engine bytes")
    return engine


@pytest.mark.parametrize("files", [{}, {".txt": DEFAULT_ENTRY}])
@pytest.mark.parametrize("artifact", ["onnx", "tensorrt"])
def test_a_manifest_that_does_not_list_the_model_file_is_refused(
    artifact: str, files: dict, model_copy: Path, tmp_path: Path
) -> None:
    path = model_copy if artifact == "onnx" else _fake_tensorrt_engine(tmp_path)
    card = json.loads(open_engine(DEFAULT_MODEL_PATH, "onnxruntime").card.to_json())
    write_manifest_document(path, {"schema_version": 1, "format": artifact, "files": files, "card": card})
    with pytest.raises(ModelError, match=rf"does not list the model file {path.name}"):
        open_engine(path)
    result = invoke(app, "info", "--model", path)
    assert result.exit_code == 2 and "does not list the model file" in result.output, result.output


def test_onnx_external_data_is_refused_verified_or_not(tmp_path: Path) -> None:
    import onnx

    path = tmp_path / "cells.onnx"
    onnx.save_model(
        default_model_proto(),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="cells.onnx.data",
        size_threshold=1024,
    )
    write_manifest(path, "onnx", [path])  # hashes cells.onnx only: the weights in cells.onnx.data are not checked
    for backend in ENGINES:
        with pytest.raises(ModelError, match="external data"):
            open_engine(path, backend)
    with pytest.raises(ModelError, match="external data"):
        open_engine(path, verify=False)
    manifest_path(path).unlink()
    result = invoke(app, "info", "--model", path, "--unverified")
    assert result.exit_code == 2 and "external data" in result.output, result.output


def test_external_data_is_found_in_a_subgraph_and_inline_tensors_are_not() -> None:
    from onnx import TensorProto, helper

    def model(external: bool) -> bytes:
        value = helper.make_tensor("value", TensorProto.FLOAT, [1], [1.0])
        if external:
            del value.float_data[:]
            value.data_location = TensorProto.EXTERNAL
            value.external_data.add(key="location", value="elsewhere.bin")
        branch = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
        then_graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=value)], "then", [], branch)
        other = helper.make_tensor("other", TensorProto.FLOAT, [1], [2.0])
        else_graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=other)], "else", [], branch)
        node = helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1])],
        )
        return helper.make_model(graph).SerializeToString()

    assert references_external_data(model(external=True))
    assert not references_external_data(model(external=False))
    assert not references_external_data(DEFAULT_BYTES)
    with pytest.raises(ValueError):
        references_external_data(DEFAULT_BYTES[: len(DEFAULT_BYTES) // 3])


@pytest.mark.parametrize("backend", ENGINES)
def test_a_model_file_replaced_right_after_its_check_is_not_the_one_loaded(
    backend: str, model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = open_engine(DEFAULT_MODEL_PATH, "onnxruntime").card.class_names
    tampered = tmp_path / "tampered.onnx"
    model = edit_card(default_model_proto(), lambda card: card.update(class_names=[f"x{n}" for n in range(8)]))
    save_with_manifest(model, tampered)
    real_sha256 = hashlib.sha256

    class Sha256ThenSwap:
        """sha256 that, once the digest is taken, replaces the checked model on disk by the tampered one."""

        def __init__(self, data: bytes = b"") -> None:
            self.digest = real_sha256(data)

        def update(self, data: bytes) -> None:
            self.digest.update(data)

        def hexdigest(self) -> str:
            if tampered.exists():
                os.replace(tampered, model_copy)
            return self.digest.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", Sha256ThenSwap)
    engine = open_engine(model_copy, backend)
    monkeypatch.undo()
    assert not tampered.exists(), "the model was not replaced between its check and its load"
    assert engine.card.class_names == original
    assert engine.loaded_sha256 == {".onnx": DEFAULT_ENTRY["sha256"]}


MALFORMED: dict[str, Any] = {
    "not JSON": "{",
    "not UTF-8": b"\xff\xfe{}",
    "not an object": [],
    "nested too deep": "[" * 100_000,
    "no files": {"schema_version": 1, "format": "onnx"},
    "no format": {"schema_version": 1, "files": {".onnx": DEFAULT_ENTRY}},
    "files not an object": {"schema_version": 1, "format": "onnx", "files": [DEFAULT_ENTRY]},
    "entry not an object": {"schema_version": 1, "format": "onnx", "files": {".onnx": "sha256"}},
    "entry without size": {"schema_version": 1, "format": "onnx", "files": {".onnx": {"sha256": "ab" * 32}}},
    "size as text": {
        "schema_version": 1,
        "format": "onnx",
        "files": {".onnx": {**DEFAULT_ENTRY, "bytes": str(DEFAULT_ENTRY["bytes"])}},
    },
    "sha256 not hex": {"schema_version": 1, "format": "onnx", "files": {".onnx": {**DEFAULT_ENTRY, "sha256": "zz"}}},
    "suffix without a dot": {"schema_version": 1, "format": "onnx", "files": {"onnx": DEFAULT_ENTRY}},
    "suffix a path": {"schema_version": 1, "format": "onnx", "files": {".onnx": DEFAULT_ENTRY, "/../x": DEFAULT_ENTRY}},
    "schema as text": {"schema_version": "1", "format": "onnx", "files": {".onnx": DEFAULT_ENTRY}},
    "card not an object": {"schema_version": 1, "format": "onnx", "files": {".onnx": DEFAULT_ENTRY}, "card": "x"},
    "newer schema": {"schema_version": 99, "format": "onnx", "files": {".onnx": DEFAULT_ENTRY}},
}


@pytest.mark.parametrize("malformed", list(MALFORMED))
def test_a_malformed_manifest_is_a_clear_error(malformed: str, model_copy: Path) -> None:
    write_manifest_document(model_copy, MALFORMED[malformed])
    reason = "is newer than this hema reads" if malformed == "newer schema" else "is malformed"
    with pytest.raises(ModelError, match=rf"{model_copy.name}\.manifest\.json {reason}"):
        open_engine(model_copy)
    for unverified in ((), ("--unverified",)):  # a manifest that is there is always checked
        result = invoke(app, "info", "--model", model_copy, *unverified)
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and reason in result.output


def test_hema_infer_reports_a_malformed_manifest_without_a_traceback(model_copy: Path, tmp_path: Path) -> None:
    write_manifest_document(model_copy, MALFORMED["entry without size"])
    process = run_infer("classify", tmp_path, "--model", model_copy, "--out", tmp_path / "out")
    assert process.returncode == 2, process.stderr
    assert "Traceback" not in process.stderr and "cells.onnx.manifest.json is malformed" in process.stderr


@pytest.fixture(scope="module")
def openvino_ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model as an OpenVINO IR (``cells.xml`` + ``cells.bin``) carrying its card, without a manifest."""
    if "openvino" not in installed_backends():
        pytest.skip("OpenVINO is not installed")
    import openvino as ov

    from hema.runtime.card import CARD_METADATA_KEY
    from hema.runtime.engines.openvino_engine import OPENVINO_CARD_KEY, openvino_core

    model = openvino_core().read_model(str(DEFAULT_MODEL_PATH))
    model.set_rt_info(model.get_rt_info(["framework", CARD_METADATA_KEY]).astype(str), list(OPENVINO_CARD_KEY))
    xml = tmp_path_factory.mktemp("openvino") / "cells.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def test_an_openvino_ir_is_checked_whole_and_runs_from_the_checked_bytes(openvino_ir: Path, tmp_path: Path) -> None:
    xml, weights = tmp_path / "cells.xml", tmp_path / "cells.bin"
    shutil.copyfile(openvino_ir, xml)
    shutil.copyfile(openvino_ir.with_suffix(".bin"), weights)
    write_manifest(xml, "openvino", [xml, weights])
    engine = open_engine(xml)
    assert set(engine.loaded_sha256) == {".xml", ".bin"}
    images = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    reference = open_engine(DEFAULT_MODEL_PATH, "onnxruntime").run(images)
    np.testing.assert_allclose(engine.run(images)["probabilities"], reference["probabilities"], atol=1e-3)

    write_manifest(xml, "openvino", [xml])  # the weights are not listed: they would run unchecked
    with pytest.raises(ModelError, match=r"does not list the model file cells\.bin"):
        open_engine(xml)

    write_manifest(xml, "openvino", [xml, weights])
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="changed after export"):
        open_engine(xml)
