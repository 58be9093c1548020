"""``hema-export``: one self-contained ONNX file that reproduces torch + the fitted head on real cells.

Torch feature extraction is kept to tens of images (EfficientNet-Lite0 runs at 15-30 images/s on 2 cores).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import invoke

import hema
from hema.export.cli import app as export_app
from hema.export.graph.parity import ParityError, check_parity
from hema.runtime.card import CARD_METADATA_KEY, ModelCard
from hema.runtime.cli import app as infer_app
from hema.runtime.preprocessing import load_cell_image
from hema.train.cli import app as train_app
from hema.train.data.folders import find_labelled_images
from hema.train.fewshot.heads import FittedHead, HeadConfig, fit_head, range_violation


def card_of(path: Path) -> ModelCard:
    model = onnx.load(str(path), load_external_data=False)
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    return ModelCard.from_json(metadata[CARD_METADATA_KEY])


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def few_images(folder: Path, per_class: int) -> list[Path]:
    labelled = find_labelled_images(folder)
    chosen: list[Path] = []
    for index in range(len(labelled.class_names)):
        chosen += [path for path, label in zip(labelled.paths, labelled.labels) if label == index][:per_class]
    return chosen


def runtime_batch(paths: list[Path], card: ModelCard) -> np.ndarray:
    return np.stack([load_cell_image(path, card.input) for path in paths])


@pytest.fixture(scope="module")
def tiny_parity(small_pbc_eval: Path, make_image_folder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One test-split cell per class: parity data for the exports below (torch runs on it)."""
    labelled = find_labelled_images(small_pbc_eval)
    chosen: dict[str, list[Path]] = {}
    for path, label in zip(labelled.paths, labelled.labels):
        chosen.setdefault(labelled.class_names[label], [path.resolve()])
    return make_image_folder(tmp_path_factory.mktemp("tiny_parity"), chosen)


# --------------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 (torch, ImageNet) + logistic regression: the full path.


@pytest.fixture(scope="module")
def lite0_head(small_pbc: Path, tiny_parity: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lite0") / "head"
    result = invoke(train_app, "fewshot", "--data", small_pbc, "--eval", tiny_parity, "--out", out,
                    "--backbone", "efficientnet_lite0", "--labels-per-class", 5, "--repeats", 1,
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def lite0_export(lite0_head: Path, tiny_parity: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("lite0_export")
    before = sorted(path.name for path in lite0_head.iterdir())
    result = invoke(export_app, "onnx", "--head", lite0_head, "--out", folder / "cells.onnx",
                    "--data", tiny_parity)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in lite0_head.iterdir()) == before, "export wrote into the head folder"
    return folder / "cells.onnx", result


@pytest.mark.slow
def test_export_writes_one_self_contained_file(lite0_export, tmp_path: Path) -> None:
    path, _ = lite0_export
    assert sorted(p.name for p in path.parent.iterdir()) == ["cells.onnx", "cells.onnx.manifest.json"]
    moved = tmp_path / "elsewhere" / "model.onnx"
    moved.parent.mkdir()
    shutil.copyfile(path, moved)
    model = onnx.load(str(moved))  # would fail if weights lived in a side file
    onnx.checker.check_model(str(moved))
    for tensor in model.graph.initializer:
        assert tensor.data_location != onnx.TensorProto.EXTERNAL and not tensor.external_data, tensor.name
    assert [i.name for i in model.graph.input] == ["image"]
    assert {o.name for o in model.graph.output} == {"probabilities", "embedding", "novelty"}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert sorted(p.name for p in moved.parent.iterdir()) == ["model.onnx"]


@pytest.mark.slow
def test_exported_card(lite0_export, pbc_dir: Path) -> None:
    path, _ = lite0_export
    card = card_of(path)
    assert list(card.class_names) == sorted(p.name for p in pbc_dir.iterdir() if p.is_dir())
    assert (card.input.height, card.input.width) == (224, 224)
    assert card.input.resize == "stretch" and card.input.interpolation == "bilinear"
    assert card.backbone["arch"] == "efficientnet_lite0" and card.backbone["source"] == "imagenet"
    assert card.backbone["embedding_dim"] == 1280
    assert card.head["kind"] == "lr" and card.head["labels_per_class"] == 5
    assert "mean" in card.metrics["balanced_accuracy"]
    assert card.metrics["export_parity"]["label_agreement"] == 1.0
    assert card.hema_version == hema.__version__
    assert card.training_data["cells"] == {name: 10 for name in card.class_names}
    assert "openvino" in card.engines and "onnxruntime" in card.engines
    assert card.created
    review = card.review  # calibrated on the head's 80 training cells, out of fold
    assert review["held_back"]["cells"] == 80 and review["held_back"]["folds"] == 5
    assert 0.0 < review["confidence_threshold"] <= 1.0 and 0.0 < review["novelty_threshold"] < 1.0
    assert review["non_cell_images"]["images"] == 48


@pytest.mark.slow
def test_exported_model_matches_torch_backbone_plus_head(lite0_export, lite0_head: Path, small_pbc_eval: Path) -> None:
    """Reference computed here: training eval transform -> torch Lite0 -> head.predict_proba."""
    import torch

    from hema.train.backbones.cell_backbone import create_backbone
    from hema.train.data.eval_transform import load_eval_image

    path, _ = lite0_export
    images = few_images(small_pbc_eval, 2)
    backbone = create_backbone("efficientnet_lite0").eval()
    with torch.no_grad():
        embeddings = backbone(torch.stack([load_eval_image(p, backbone.info.input_spec()) for p in images])).numpy()
    expected = FittedHead.load(lite0_head).predict_proba(embeddings)

    probabilities, exported_embeddings = session(path).run(
        ["probabilities", "embedding"], {"image": runtime_batch(images, card_of(path))}
    )
    assert np.abs(exported_embeddings - embeddings).max() <= 1e-3 * np.abs(embeddings).max()
    assert np.abs(probabilities - expected).max() < 1e-3
    np.testing.assert_array_equal(probabilities.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_exported_model_runs_in_hema_infer(lite0_export, small_pbc_eval: Path, tmp_path: Path) -> None:
    path, _ = lite0_export
    result = invoke(infer_app, "classify", small_pbc_eval, "--model", path, "--out", tmp_path / "report")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "report" / "cells.csv").read_text().splitlines()
    assert len(lines) == 1 + 8 * 4


# --------------------------------------------------------------------------------------------------------------
# Every head kind fuses with the torch Lite0 backbone and runs in ONNX Runtime. The heads are fitted on the
# embedded model's ONNX embeddings (the same ImageNet Lite0, equal to torch within ~1e-6) to save torch time.


def _pool_features(backbone: str, small_pbc: Path):
    """``(extractor, labelled pool, pool features, pool folder)`` of the small PBC pool."""
    from hema.train.fewshot.features import open_feature_extractor

    extractor = open_feature_extractor(backbone)
    pool = find_labelled_images(small_pbc)
    return extractor, pool, extractor(pool.paths), small_pbc


@pytest.fixture(scope="module")
def lite0_features(small_pbc: Path):
    return _pool_features("efficientnet_lite0", small_pbc)  # ImageNet Lite0 in torch, as LITE0 records


@pytest.fixture(scope="module")
def default_features(small_pbc: Path):
    return _pool_features("default", small_pbc)  # the embedded model's backbone, run by ONNX Runtime


def _fit_and_save(kind: str, features_of_pool, folder: Path, backbone: dict, dims: int | None = None) -> FittedHead:
    extractor, pool, features, pool_folder = features_of_pool
    head = fit_head(features[:, :dims], pool.labels, pool.class_names, HeadConfig(kind=kind, k=5, trees=30))
    head.metadata.update(
        backbone=backbone,
        training_data={"folder": str(pool_folder), "split": "all", "cells": pool.counts()},
        labels_per_class=0,
    )
    head.save(folder)
    return head


LITE0 = {"arch": "efficientnet_lite0", "source": "imagenet", "image_size": 224, "embedding_dim": 1280}


@pytest.fixture(scope="module")
def exported_heads(lite0_features, tiny_parity: Path, tmp_path_factory: pytest.TempPathFactory):
    """knn, svm and rf heads exported with ``hema-export onnx`` (backbone: torch Lite0, from the head's record)."""
    exported = {}
    for kind in ("knn", "svm", "rf"):
        folder = tmp_path_factory.mktemp(f"head_{kind}")
        head = _fit_and_save(kind, lite0_features, folder / "head", LITE0)
        out = folder / "model.onnx"
        result = invoke(export_app, "onnx", "--head", folder / "head", "--out", out, "--data", tiny_parity)
        exported[kind] = (head, out, result)
    return exported


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["knn", "svm", "rf"])
def test_other_heads_fuse_and_run_in_onnxruntime(
    exported_heads, lite0_features, small_pbc_eval: Path, kind: str
) -> None:
    """kNN: the graph's head is held against ``vote_range`` of the graph's own embedding (exact wherever a cell's 5
    nearest neighbours are determined, either way at a tie within float32 rounding: see ``hema.train.fewshot.heads``),
    and its backbone against torch's embedding, instead of comparing votes across two slightly different embeddings.
    """
    head, out, result = exported_heads[kind]
    assert result.exit_code == 0, result.output
    extractor = lite0_features[0]
    images = few_images(small_pbc_eval, 1)
    reference_embeddings = extractor(images)
    probabilities, embeddings = session(out).run(
        ["probabilities", "embedding"], {"image": runtime_batch(images, card_of(out))}
    )
    assert probabilities.shape == (len(images), 8)
    assert card_of(out).head["kind"] == kind
    if kind == "knn":
        assert np.abs(embeddings - reference_embeddings).max() <= 1e-3 * np.abs(reference_embeddings).max()
        low, high = head.vote_range(embeddings)
        assert (low == high).all(axis=1).mean() >= 0.5  # most cells' neighbours are determined: exact there
        assert range_violation(probabilities, low, high).max() < 1e-5
        return
    expected = head.predict_proba(reference_embeddings)
    assert np.abs(probabilities - expected).max() < 1e-3
    np.testing.assert_array_equal(probabilities.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "plain"), [("svm", False), ("rf", False), ("knn", True), ("lr", True)])
def test_card_engines_by_head(exported_heads, lite0_export, kind: str, plain: bool) -> None:
    out, result = lite0_export if kind == "lr" else exported_heads[kind][1:]
    assert result.exit_code == 0, result.output
    engines = card_of(out).engines
    if plain:
        assert {"onnxruntime", "openvino"} <= set(engines)
    else:
        assert list(engines) == ["onnxruntime"]
    assert "runs on: " + ", ".join(engines) in result.output


@pytest.mark.slow
def test_check_parity_passes_on_the_true_reference(
    lite0_export, lite0_head: Path, lite0_features, small_pbc_eval: Path
) -> None:
    path, _ = lite0_export
    head = FittedHead.load(lite0_head)
    report = check_parity(path.read_bytes(), few_images(small_pbc_eval, 1), lite0_features[0], head.predict_proba)
    assert report.images == 8 and report.label_agreement == 1.0
    assert report.max_probability_difference < 1e-3


@pytest.mark.slow
def test_broken_reference_raises_parity_error(
    lite0_export, lite0_head: Path, lite0_features, small_pbc_eval: Path
) -> None:
    path, _ = lite0_export
    head = FittedHead.load(lite0_head)
    images = few_images(small_pbc_eval, 1)
    extractor = lite0_features[0]
    with pytest.raises(ParityError, match="probabilities differ"):
        check_parity(path.read_bytes(), images, extractor, lambda e: head.predict_proba(e)[:, ::-1])
    with pytest.raises(ParityError, match="embeddings differ"):
        check_parity(path.read_bytes(), images, lambda paths: extractor(paths) * 1.1, None)
    with pytest.raises(ParityError):
        check_parity(path.read_bytes(), [], extractor, head.predict_proba)


def test_head_and_backbone_of_different_sizes_exit_2(lite0_features, tiny_parity: Path, tmp_path: Path) -> None:
    backbone = {"arch": "resnet10t", "source": "scratch", "image_size": 224, "embedding_dim": 512}
    _fit_and_save("lr", lite0_features, tmp_path / "head", backbone, dims=64)
    result = invoke(export_app, "onnx", "--head", tmp_path / "head", "--out", tmp_path / "model.onnx",
                    "--data", tiny_parity)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "512" in result.output and "64" in result.output
    assert not (tmp_path / "model.onnx").exists()


def test_head_fitted_on_the_default_onnx_backbone_exports(default_features, tiny_parity: Path, tmp_path: Path) -> None:
    extractor = default_features[0]
    assert extractor.onnx_engine is not None
    head = _fit_and_save("lr", default_features, tmp_path / "head", extractor.description)
    result = invoke(export_app, "onnx", "--head", tmp_path / "head", "--out", tmp_path / "model.onnx",
                    "--data", tiny_parity)  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    images = few_images(tiny_parity, 1)
    probabilities = session(tmp_path / "model.onnx").run(
        ["probabilities"], {"image": runtime_batch(images, card_of(tmp_path / "model.onnx"))}
    )[0]
    assert np.abs(probabilities - head.predict_proba(extractor(images))).max() < 1e-3


# --------------------------------------------------------------------------------------------------------------
# Backbone-only export.


@pytest.fixture(scope="module")
def backbone_onnx(tiny_parity: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("backbone") / "resnet10t.onnx"
    result = invoke(export_app, "backbone", "--backbone", "resnet10t", "--image-size", 64, "--out", out,
                    "--data", tiny_parity)  # fmt: skip
    return out, result


def test_backbone_export_writes_an_embedding_only_model(backbone_onnx) -> None:
    out, result = backbone_onnx
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["embedding"]
    card = card_of(out)
    assert card.class_names == () and card.input.height == 64 and card.backbone["arch"] == "resnet10t"
    assert "export_parity" in card.metrics
    embedding = session(out).run(["embedding"], {"image": np.zeros((2, 64, 64, 3), np.uint8)})[0]
    assert embedding.shape == (2, 512)


def test_fewshot_accepts_the_exported_backbone(backbone_onnx, small_pbc_eval: Path, tmp_path: Path) -> None:
    out, result = backbone_onnx
    assert result.exit_code == 0, result.output
    head_dir = tmp_path / "head"
    run = invoke(train_app, "fewshot", "--data", small_pbc_eval, "--eval", small_pbc_eval, "--out", head_dir,
                 "--backbone", out, "--labels-per-class", 2, "--repeats", 1)  # fmt: skip
    assert run.exit_code == 0, run.output
    head = FittedHead.load(head_dir)
    assert head.embedding_dim == 512
    assert head.metadata["backbone"]["onnx"] == str(out)


def test_hema_infer_refuses_a_backbone_only_model_cleanly(backbone_onnx, small_pbc_eval: Path, tmp_path: Path) -> None:
    """Exit 2 with an error naming the backbone, and never a classification row."""
    out, _ = backbone_onnx
    result = invoke(infer_app, "classify", small_pbc_eval, "--model", out, "--out", tmp_path / "report")
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "backbone" in result.output and "error" in result.output
    cells = tmp_path / "report" / "cells.csv"
    assert not cells.exists() or len(cells.read_text().splitlines()) <= 1
