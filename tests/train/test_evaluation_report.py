"""``hema-train evaluate``: class mapping, learning curves, cross-domain scores, saliency maps, and a tiny real run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from hema.runtime.card import InputSpec
from hema.train.backbones.cell_backbone import IMAGENET_MEAN, IMAGENET_STD, BackboneInfo, CellBackbone, create_backbone
from hema.train.cli import app
from hema.train.data.domains import BCCD_TO_PBC, map_classes, restrict_to_shared
from hema.train.data.eval_transform import load_eval_image
from hema.train.data.folders import find_labelled_images, split_of
from hema.train.evaluate.cross_domain import cross_domain
from hema.train.evaluate.embedding_map import subsample_by_lab
from hema.train.evaluate.gradcam import cells_are_centred, cls_attention, grad_cam, saliency_maps
from hema.train.evaluate.learning_curves import ALL_LABELS, learning_curves
from hema.train.evaluate.saliency import torch_module_for
from hema.train.fewshot.features import FeatureExtractor

SHARED = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")


def _folders(root: Path) -> tuple[str, ...]:
    return tuple(sorted(child.name for child in root.iterdir() if child.is_dir()))


def test_pbc_and_bccd_share_five_named_classes(pbc_dir: Path, bccd_dir: Path) -> None:
    mapping = map_classes(_folders(pbc_dir), _folders(bccd_dir), BCCD_TO_PBC)
    assert mapping.shared == SHARED
    assert mapping.source_only == ("erythroblast", "ig", "platelet")
    assert mapping.target_only == ()
    assert mapping.target_to_source == {name: name for name in SHARED}


def test_mapping_renames_drops_and_refuses() -> None:
    source = ("ig", "lymphocyte", "neutrophil")
    renamed = map_classes(source, ("lymphocytes", "neutrophil", "smudge"), {"lymphocytes": "lymphocyte"})
    assert renamed.shared == ("lymphocyte", "neutrophil")
    assert renamed.target_to_source == {"lymphocytes": "lymphocyte", "neutrophil": "neutrophil"}
    assert renamed.target_only == ("smudge",) and renamed.source_only == ("ig",)
    with pytest.raises(ValueError, match="no class shared"):
        map_classes(source, ("lymphocytes",))
    with pytest.raises(ValueError, match="two target classes"):
        map_classes(source, ("lymphocyte", "lymphocytes"), {"lymphocytes": "lymphocyte"})


def test_restrict_to_shared_relabels_into_shared_order() -> None:
    indices, labels = restrict_to_shared(np.array([0, 1, 2, 3, 1]), ("a", "b", "c", "d"), ("d", "b"))
    assert indices.tolist() == [1, 3, 4] and labels.tolist() == [1, 0, 1]
    indices, labels = restrict_to_shared(np.array([0, 1, 2]), ("B", "x", "D"), ("b", "d"), {"B": "b", "D": "d"})
    assert indices.tolist() == [0, 2] and labels.tolist() == [0, 1]


def test_subsample_shares_cells_evenly_between_labs() -> None:
    labs = np.repeat([0, 1], [1000, 40])
    chosen = subsample_by_lab(labs, 200, np.random.default_rng(0))
    assert np.bincount(labs[chosen]).tolist() == [160, 40]  # the small lab gives all it has
    assert np.bincount(labs[subsample_by_lab(labs, 50, np.random.default_rng(0))]).tolist() == [25, 25]
    assert len(np.unique(chosen)) == len(chosen) == 200
    assert len(subsample_by_lab(labs, 5000, np.random.default_rng(0))) == 1040


def _blobs(classes: int, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    centres = np.random.default_rng(99).normal(0, 1, (classes, 16)) * 2.0
    return (centres[labels] + rng.normal(0, 1.5, (len(labels), 16))).astype(np.float32), labels


def test_learning_curves_rows() -> None:
    train_x, train_y = _blobs(4, 30, seed=0)
    test_x, test_y = _blobs(4, 10, seed=1)
    curves = learning_curves(train_x, train_y, tuple("abcd"), test_x, test_y, ("lr", "knn"), (5, 1, 2), repeats=3)
    assert curves.shots == (1, 2, 5, ALL_LABELS)
    assert len(curves.rows) == 2 * 4 and set(curves.all_labels) == {"lr", "knn"}
    for head in curves.heads:
        rows = [curves.row(head, n) for n in curves.shots]
        assert [row["labels_per_class_mean"] for row in rows] == [1, 2, 5, 30]
        assert [row["repeats"] for row in rows] == [3, 3, 3, 1]
        for row in rows:
            assert 0.0 <= row["balanced_accuracy_mean"] <= 1.0 and row["balanced_accuracy_std"] >= 0.0
            assert row["balanced_accuracy_mean"] == pytest.approx(
                np.mean(row["balanced_accuracy_per_repeat"]), abs=1e-5
            )
        assert rows[-1]["balanced_accuracy_std"] == 0.0
        assert rows[-1]["balanced_accuracy_mean"] > rows[0]["balanced_accuracy_mean"]
    with pytest.raises(ValueError):
        learning_curves(train_x, train_y, tuple("abcd"), test_x, test_y, ("lr",), (0,), repeats=1)


def test_cross_domain_scores_each_set_on_the_shared_classes() -> None:
    train_x, train_y = _blobs(3, 20, seed=0)
    same_x, same_y = _blobs(3, 10, seed=1)
    shifted_x, looks_like = _blobs(3, 10, seed=2)
    shifted_y = (looks_like + 1) % 3  # a lab whose cells of class k look like the source's class k - 1
    partial = shifted_y != 2
    evaluations = {"same": (same_x, same_y), "shifted": (shifted_x[partial], shifted_y[partial])}
    result = cross_domain(train_x, train_y, ("a", "b", "c"), evaluations)
    assert result.classes == result.head.class_names == ("a", "b", "c")
    assert result.train_cells == {"a": 20, "b": 20, "c": 20}
    assert result.scores["same"]["balanced_accuracy"] > result.scores["shifted"]["balanced_accuracy"]
    shifted = result.scores["shifted"]
    assert shifted["cells"] == {"a": 10, "b": 10, "c": 0} and shifted["per_class_recall"]["c"] is None
    assert np.array(shifted["confusion_matrix"]).sum() == 20
    with pytest.raises(ValueError, match="no cell"):
        cross_domain(train_x, train_y, ("a", "b", "c"), {"empty": (train_x[:0], train_y[:0])})


class _PatchNet(nn.Module):
    """Positive 1x1 convolution, ReLU, global pooling: only bright pixels reach the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        nn.init.uniform_(self.conv.weight, 0.5, 1.0)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.conv(images))).flatten(1)


def _tiny_backbone(model: nn.Module, size: int, dim: int) -> CellBackbone:
    return CellBackbone(model, BackboneInfo("tiny", "scratch", size, IMAGENET_MEAN, IMAGENET_STD, dim)).eval()


def test_grad_cam_lights_up_the_only_region_that_drives_the_class() -> None:
    images = torch.zeros((2, 32, 32, 3), dtype=torch.uint8)
    images[0, 4:12, 6:14] = 255
    images[1, 20:30, 18:26] = 255
    weight = np.stack([np.ones(4), -np.ones(4)], axis=1).astype(np.float32)  # class 0 rises with every channel
    maps = grad_cam(_tiny_backbone(_PatchNet(), 32, 4), images, weight, np.zeros(2, np.float32))
    assert maps.method == "grad-cam" and maps.predicted.tolist() == [0, 0]
    assert maps.maps.shape == (2, 32, 32) and np.isfinite(maps.maps).all()
    assert maps.maps.min() >= 0.0 and maps.maps.max() <= 1.0
    for heat, (rows, cols) in zip(maps.maps, [(slice(4, 12), slice(6, 14)), (slice(20, 30), slice(18, 26))]):
        inside = np.zeros(heat.shape, bool)
        inside[rows, cols] = True
        assert heat[inside].mean() > 0.8 and heat[~inside].mean() < 0.2  # bilinear upsampling blurs the edge only


class _StridedNet(nn.Module):
    """Bright pixels only (1x1 convolution, ReLU), then a 9x9 convolution at stride 8 padded 4 ("same")."""

    def __init__(self, kernel: int = 9, padding: int = 4) -> None:
        super().__init__()
        self.point = nn.Conv2d(3, 4, 1, bias=False)
        self.conv = nn.Conv2d(4, 4, kernel, stride=8, padding=padding, bias=False)
        nn.init.constant_(self.point.weight, 0.5)
        nn.init.constant_(self.conv.weight, 0.1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.conv(torch.relu(self.point(images))))).flatten(1)


def test_grad_cam_of_a_strided_cnn_lands_on_the_patch_not_half_a_stride_off() -> None:
    assert cells_are_centred(_StridedNet()) and not cells_are_centred(_StridedNet(kernel=8, padding=0))
    backbone = _tiny_backbone(_StridedNet(), 64, 4)
    rows, cols = np.mgrid[:64, :64]
    for top, left in [(11, 19), (28, 38)]:
        images = torch.zeros((1, 64, 64, 3), dtype=torch.uint8)
        images[0, top : top + 4, left : left + 4] = 255
        heat = grad_cam(backbone, images, np.ones((4, 1), np.float32), np.zeros(1, np.float32)).maps[0]
        centre = ((heat * rows).sum() / heat.sum(), (heat * cols).sum() / heat.sum())
        assert np.allclose(centre, (top + 1.5, left + 1.5), atol=1.5), centre  # plain resizing: 3.5 px off


@pytest.fixture(scope="module")
def two_cells(pbc_test_split) -> list[Path]:
    names = pbc_test_split.class_names
    return [pbc_test_split.paths[int(np.flatnonzero(pbc_test_split.labels == names.index(c))[0])] for c in SHARED[:2]]


def test_grad_cam_on_lite0_at_small_size(two_cells: list[Path]) -> None:
    backbone = create_backbone("efficientnet_lite0", image_size=96)
    images = torch.stack([load_eval_image(path, InputSpec(height=96, width=96)) for path in two_cells])
    weight = np.random.default_rng(0).normal(0, 1, (backbone.info.embedding_dim, 3)).astype(np.float32)
    maps = saliency_maps(backbone, images, weight, np.zeros(3, np.float32))
    assert maps.method == "grad-cam" and maps.maps.shape == (2, 96, 96)
    assert np.isfinite(maps.maps).all() and maps.maps.min() >= 0.0 and maps.maps.max() <= 1.0
    assert (maps.maps.std(axis=(1, 2)) > 0.05).all()  # not constant
    with torch.no_grad():
        np.testing.assert_allclose(maps.embeddings, backbone(images).numpy(), atol=1e-5)


def test_cls_attention_equals_timms_own_attention_matrix() -> None:
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=64)
    backbone = _tiny_backbone(model, 64, model.num_features)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    weight = np.random.default_rng(0).normal(0, 1, (model.num_features, 3)).astype(np.float32)
    maps = saliency_maps(backbone, images, weight, np.zeros(3, np.float32))
    assert maps.method == "cls-attention" and maps.maps.shape == (2, 64, 64)
    assert np.isfinite(maps.maps).all() and maps.maps.min() >= 0.0 and maps.maps.max() <= 1.0
    assert (maps.maps.std(axis=(1, 2)) > 0.05).all()

    attention = model.blocks[-1].attn
    attention.fused_attn = False  # timm then materialises the matrix and passes it through attn_drop
    seen = []
    attention.attn_drop.register_forward_hook(lambda _m, _i, output: seen.append(output))
    with torch.no_grad():
        backbone(images)
    reference = seen[-1][:, :, 0, model.num_prefix_tokens :].mean(dim=1).reshape(2, 1, 4, 4)
    reference = torch.nn.functional.interpolate(reference, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    low, high = reference.amin(dim=(1, 2), keepdim=True), reference.amax(dim=(1, 2), keepdim=True)
    np.testing.assert_allclose(maps.maps, ((reference - low) / (high - low)).numpy(), atol=1e-4)
    assert (
        cls_attention(backbone, images, weight, np.zeros(3, np.float32)).predicted.tolist() == maps.predicted.tolist()
    )


def test_saliency_module_for_onnx_backbones() -> None:
    default_card = {"arch": "efficientnet_lite0", "source": "imagenet", "image_size": 224}
    module, origin = torch_module_for(FeatureExtractor(default_card))
    assert isinstance(module, CellBackbone) and "rebuilt" in origin
    module, reason = torch_module_for(FeatureExtractor({"arch": "vit_small_patch16_224", "source": "dino.pth"}))
    assert module is None and "skipped" in reason


def test_saliency_module_for_a_backbone_whose_checkpoint_is_here(tmp_path: Path) -> None:
    trained = create_backbone("efficientnet_lite0", pretrained=False, image_size=64)
    checkpoint = tmp_path / "best.pt"
    torch.save(trained.model.state_dict(), checkpoint)
    card = {"arch": "efficientnet_lite0", "source": str(checkpoint), "image_size": 64}
    module, origin = torch_module_for(FeatureExtractor(card))
    assert isinstance(module, CellBackbone) and str(checkpoint) in origin
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(module.eval()(images), trained.eval()(images))


@pytest.mark.parametrize(
    "option, value", [("--heads", "lr,bogus"), ("--shots", "1,two"), ("--shots", "0,5"), ("--heads", ",")]
)
def test_bad_options_exit_2(tmp_path: Path, option: str, value: str) -> None:
    args = ["evaluate", "--data", str(tmp_path), "--eval", str(tmp_path), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, option, value])
    assert result.exit_code == 2 and "error" in result.output, result.output


def test_missing_data_exits_2(tmp_path: Path) -> None:
    args = ["evaluate", "--data", str(tmp_path / "absent"), "--eval", str(tmp_path), "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "not a folder" in result.output, result.output


@pytest.fixture(scope="module")
def tiny_run(small_pbc: Path, small_pbc_eval: Path, bccd_dir: Path, make_image_folder, tmp_path_factory):
    """5 train + 4 test PBC cells per class, 3 + up to 3 BCCD cells per class; 1 repeat, shots 1 and 2.

    ImageNet Lite0 in torch: a backbone every machine has, with the torch module Grad-CAM needs.
    """
    root = tmp_path_factory.mktemp("evaluate")
    pbc = {
        name: [p.resolve() for p in sorted((small_pbc / name).iterdir())[:5]]
        + [p.resolve() for p in sorted((small_pbc_eval / name).iterdir())]
        for name in _folders(small_pbc)
    }
    bccd_cells = find_labelled_images(bccd_dir)
    bccd: dict[str, list[Path]] = {}
    taken: dict[tuple[str, str], int] = {}
    for path, label in zip(bccd_cells.paths, bccd_cells.labels):
        key = (bccd_cells.class_names[label], split_of(path))
        if taken.get(key, 0) < 3:
            taken[key] = taken.get(key, 0) + 1
            bccd.setdefault(key[0], []).append(path)
    pbc_root, bccd_root = make_image_folder(root / "pbc", pbc), make_image_folder(root / "bccd", bccd)
    out = root / "report"
    args = ["evaluate", "--data", pbc_root, "--eval", bccd_root, "--out", out, "--repeats", 1,
            "--shots", "1,2", "--umap-cells", 40, "--gradcam-per-class", 1,
            "--backbone", "efficientnet_lite0"]  # fmt: skip
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    return result, out


@pytest.mark.slow
def test_evaluate_writes_every_file(tiny_run) -> None:
    result, out = tiny_run
    assert result.exit_code == 0, result.output
    expected = {
        "report.md", "report.json", "learning_curves.png", "learning_curves.md", "learning_curves.json",
        "cross_domain.md", "umap.png", "saliency.png", "confusion_pbc_test.png", "confusion_pbc_test_shared.png",
        "confusion_bccd_test_shared.png",
    }  # fmt: skip
    assert {path.name for path in out.iterdir()} == expected
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))
    assert linked == {name for name in expected if name.endswith(".png")}
    assert "| labels per class | lr | linear-svm | knn |" in markdown


@pytest.mark.slow
def test_evaluate_report_numbers_are_consistent(tiny_run) -> None:
    result, out = tiny_run
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    curves = report["learning_curves"]
    assert curves["heads"] == ["lr", "linear-svm", "knn"] and curves["shots"] == [1, 2, ALL_LABELS]
    for head in curves["heads"]:
        rows = [row for row in curves["rows"] if row["head"] == head]
        assert [row["labels_per_class"] for row in rows] == curves["shots"]
        assert [row["labels_per_class_mean"] for row in rows] == [1, 2, 5]  # increasing along the curve
        for row in rows:
            assert 0.0 <= row["balanced_accuracy_mean"] <= 1.0 and row["balanced_accuracy_std"] >= 0.0
            assert 0.0 <= row["macro_f1_mean"] <= 1.0 and row["macro_f1_std"] >= 0.0
    assert report["all_labels_lr"]["balanced_accuracy"]["mean"] == curves["rows"][2]["balanced_accuracy_mean"]

    domains = report["cross_domain"]
    assert domains["shared_classes"] == list(SHARED)
    assert domains["train_cells"] == dict.fromkeys(SHARED, 5)
    assert set(domains["results"]) == {"pbc test", "bccd test", "bccd all (no bccd cell is used for fitting)"}
    for score in domains["results"].values():
        assert list(score["cells"]) == list(SHARED) and list(score["per_class_recall"]) == list(SHARED)
        assert 0.0 <= score["balanced_accuracy"] <= 1.0 and 0.0 <= score["macro_f1"] <= 1.0
        confusion = np.array(score["confusion_matrix"])
        assert confusion.shape == (5, 5) and confusion.sum(axis=1).tolist() == list(score["cells"].values())
    assert domains["results"]["pbc test"]["cells"] == dict.fromkeys(SHARED, 4)
    assert domains["results"]["bccd test"]["cells"]["basophil"] == 0  # all 3 BCCD basophils are train-split

    assert sum(report["umap"]["cells"].values()) == 40 and report["umap"]["cells"]["bccd"] == 20
    saliency = report["saliency"]
    assert saliency["method"] == "grad-cam" and saliency["max_embedding_difference"] < 1e-3
    assert [cell["class"] for cell in saliency["cells"]] == list(_folders(out.parent / "pbc"))
    assert set(report["seconds"]) >= {"feature_extraction", "learning_curves", "umap", "saliency", "total"}
