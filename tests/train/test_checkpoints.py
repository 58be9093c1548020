"""Backbone checkpoints from files: plain state dicts, safetensors, DINO and DinoBloom/DINOv2 layouts.

Models are tiny (``resnet10t`` at 32 px, a ViT-S/14 at 56-98 px) so that everything runs in seconds on a CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from hema.train.backbones.cell_backbone import create_backbone
from hema.train.backbones.weight_files import CheckpointMismatchError, read_backbone_weights

CNN = "resnet10t"
VIT = "vit_small_patch14_dinov2"


def _images(size: int, count: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, size, size, 3), dtype=torch.uint8, generator=generator)


def _randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Perturb every float tensor (BatchNorm statistics included), so loaded weights cannot be init by chance."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
                if tensor.ndim == 1:
                    tensor.abs_()  # keep running variances positive
    return model.eval()


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    """A scratch resnet10t with randomised weights, without classifier."""
    torch.manual_seed(0)
    return _randomised(timm.create_model(CNN, pretrained=False, num_classes=0), seed=1)


def _embed(backbone, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return backbone(images)


def _reference(cnn: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    backbone = create_backbone(CNN, pretrained=False)
    backbone.model.load_state_dict(cnn.state_dict())
    return _embed(backbone, images)


def test_plain_pth_and_safetensors_state_dicts_give_identical_outputs(cnn, tmp_path: Path) -> None:
    state = cnn.state_dict()
    torch.save(state, tmp_path / "weights.pth")
    save_file({key: value.contiguous() for key, value in state.items()}, str(tmp_path / "weights.safetensors"))
    images = _images(32)
    from_pth = create_backbone(str(tmp_path / "weights.pth"), arch=CNN)
    from_safetensors = create_backbone(str(tmp_path / "weights.safetensors"), arch=CNN)
    out_pth, out_safetensors = _embed(from_pth, images), _embed(from_safetensors, images)
    assert torch.equal(out_pth, out_safetensors)
    torch.testing.assert_close(out_pth, _reference(cnn, images), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out_pth, _embed(create_backbone(CNN, pretrained=False), images), atol=1e-3)
    assert from_pth.info.source == str(tmp_path / "weights.pth")
    assert from_pth.info.arch == CNN


def test_wrapped_prefixed_state_dict_with_classifier_loads(cnn, tmp_path: Path) -> None:
    state = {f"module.{key}": value for key, value in cnn.state_dict().items()}
    state["module.fc.weight"] = torch.randn(10, 512)
    state["module.fc.bias"] = torch.randn(10)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")
    images = _images(32, seed=2)
    loaded = create_backbone(str(tmp_path / "wrapped.pt"), arch=CNN)
    torch.testing.assert_close(_embed(loaded, images), _reference(cnn, images), atol=1e-5, rtol=1e-5)


def test_hema_checkpoint_names_its_architecture(cnn, tmp_path: Path) -> None:
    torch.save({"config": {"arch": CNN, "epochs": 1}, "backbone": cnn.state_dict()}, tmp_path / "hema.pth")
    weights = read_backbone_weights(tmp_path / "hema.pth")
    assert weights.arch == CNN and weights.layout == "hema checkpoint"
    loaded = create_backbone(str(tmp_path / "hema.pth"))  # no arch needed
    images = _images(32, seed=3)
    torch.testing.assert_close(_embed(loaded, images), _reference(cnn, images), atol=1e-5, rtol=1e-5)


def test_plain_state_dict_without_arch_is_refused(cnn, tmp_path: Path) -> None:
    torch.save(cnn.state_dict(), tmp_path / "weights.pth")
    with pytest.raises(ValueError, match="arch"):
        create_backbone(str(tmp_path / "weights.pth"))


def _dino_checkpoint(cnn: torch.nn.Module, with_head: bool) -> dict:
    student = _randomised(timm.create_model(CNN, pretrained=False, num_classes=0), seed=7)
    teacher = {f"backbone.{key}": value for key, value in cnn.state_dict().items()}
    if with_head:
        teacher["head.mlp.0.weight"] = torch.randn(64, 512)
        teacher["head.mlp.0.bias"] = torch.randn(64)
        teacher["head.last_layer.weight_g"] = torch.randn(100, 1)
    return {
        "teacher": teacher,
        "student": {f"module.backbone.{key}": value for key, value in student.state_dict().items()},
        "optimizer": {"lr": torch.tensor(0.1)},
        "epoch": 100,
    }


@pytest.mark.parametrize(
    "with_head",
    [
        pytest.param(False, id="teacher-backbone-only"),
        pytest.param(True, id="teacher-with-dino-head"),
    ],
)
def test_dino_teacher_checkpoint_loads_the_teacher_backbone(cnn, tmp_path: Path, with_head: bool) -> None:
    torch.save(_dino_checkpoint(cnn, with_head), tmp_path / "checkpoint.pth")
    weights = read_backbone_weights(tmp_path / "checkpoint.pth")
    assert weights.layout.startswith("DINO teacher")
    assert set(weights.state_dict) == set(cnn.state_dict())
    images = _images(32, seed=4)
    loaded = create_backbone(str(tmp_path / "checkpoint.pth"), arch=CNN)
    torch.testing.assert_close(_embed(loaded, images), _reference(cnn, images), atol=1e-5, rtol=1e-5)


def _dinov2_layout(state: dict[str, torch.Tensor], chunk: int = 3) -> dict[str, torch.Tensor]:
    """timm ViT keys renamed as DINOv2/DinoBloom store them: ``mask_token``, chunked blocks, ``backbone.``."""
    import re

    renamed = {}
    for key, value in state.items():
        match = re.match(r"^blocks\.(\d+)\.(.*)$", key)
        if match:
            index = int(match.group(1))
            key = f"blocks.{index // chunk}.{index}.{match.group(2)}"
        renamed[f"backbone.{key}"] = value
    renamed["backbone.mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    return renamed


@pytest.fixture(scope="module")
def vit_state() -> dict[str, torch.Tensor]:
    """Randomised weights of a ViT-S/14 built at 98 px (7x7 patches), under timm's keys."""
    torch.manual_seed(0)
    source = timm.create_model(VIT, pretrained=False, num_classes=0, img_size=98)
    return {key: value.clone() for key, value in _randomised(source, seed=5).state_dict().items()}


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(False, id="teacher-backbone-only"),
        pytest.param(True, id="teacher-with-dino-and-ibot-heads"),
    ],
)
def dinobloom(request, vit_state, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A DinoBloom/DINOv2-layout checkpoint of the ViT; as released, its teacher also holds the projection heads."""
    teacher = _dinov2_layout(vit_state)
    if request.param:
        teacher["dino_head.mlp.0.weight"] = torch.randn(32, 384)
        teacher["ibot_head.mlp.0.weight"] = torch.randn(32, 384)
    path = tmp_path_factory.mktemp("dinobloom") / "dinobloom-s.pth"
    torch.save({"teacher": teacher, "student": {"backbone.cls_token": torch.zeros(1, 1, 384)}}, path)
    return path, vit_state


def test_dinobloom_checkpoint_is_recognised_and_renamed_to_timm_keys(dinobloom) -> None:
    path, state = dinobloom
    weights = read_backbone_weights(path)
    assert "DINOv2" in weights.layout
    assert set(weights.state_dict) == set(state)
    for key, value in state.items():
        assert torch.equal(weights.state_dict[key], value), key


def test_dinobloom_checkpoint_loads_at_another_image_size(dinobloom) -> None:
    path, state = dinobloom
    backbone = create_backbone(str(path), arch=VIT, image_size=56)
    loaded = backbone.model.state_dict()
    assert backbone.info.image_size == 56 and backbone.info.embedding_dim == 384
    for key, value in state.items():
        if key != "pos_embed":
            assert torch.equal(loaded[key], value), key
    expected_pos = resample_abs_pos_embed(state["pos_embed"], new_size=[4, 4], num_prefix_tokens=1)
    assert loaded["pos_embed"].shape == (1, 1 + 16, 384)
    torch.testing.assert_close(loaded["pos_embed"], expected_pos)
    embeddings = _embed(backbone, _images(56))
    assert embeddings.shape == (2, 384) and torch.isfinite(embeddings).all()


def test_dinobloom_checkpoint_at_its_own_size_reproduces_the_source_model(dinobloom) -> None:
    path, state = dinobloom
    backbone = create_backbone(str(path), arch=VIT, image_size=98)
    reference = create_backbone(VIT, pretrained=False, image_size=98)
    reference.model.load_state_dict(state)
    images = _images(98, seed=6)
    torch.testing.assert_close(_embed(backbone, images), _embed(reference, images), atol=1e-5, rtol=1e-5)


def test_checkpoint_that_does_not_fit_names_missing_and_unexpected_keys(cnn, tmp_path: Path) -> None:
    state = dict(cnn.state_dict())
    del state["layer4.0.conv2.weight"]
    state["extra.adapter.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointMismatchError) as caught:
        create_backbone(str(tmp_path / "broken.pth"), arch=CNN)
    message = str(caught.value)
    assert "missing keys: layer4.0.conv2.weight" in message
    assert "unexpected keys: extra.adapter.weight" in message


def test_checkpoint_of_another_architecture_is_a_mismatch(cnn, tmp_path: Path) -> None:
    torch.save(cnn.state_dict(), tmp_path / "resnet10t.pth")
    with pytest.raises(CheckpointMismatchError, match="missing keys: .*unexpected keys: "):
        create_backbone(str(tmp_path / "resnet10t.pth"), arch="resnet18")


def test_checkpoint_with_wrong_shapes_names_them(cnn, tmp_path: Path) -> None:
    state = dict(cnn.state_dict())
    state["conv1.0.weight"] = torch.zeros(1, 1, 1, 1)
    torch.save(state, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointMismatchError, match="conv1.0.weight"):
        create_backbone(str(tmp_path / "shapes.pth"), arch=CNN)


class _Payload:
    """Unpickling this runs os.makedirs: a stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_pickled_objects_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": _Payload(marker), "conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="weights_only"):
        read_backbone_weights(path)
    with pytest.raises(ValueError):
        create_backbone(str(path), arch=CNN)
    assert not marker.exists()


def test_non_dict_and_tensorless_files_are_refused(tmp_path: Path) -> None:
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        read_backbone_weights(tmp_path / "tensor.pth")
    torch.save({"epoch": 3, "note": "no weights"}, tmp_path / "empty.pth")
    with pytest.raises(ValueError, match="no tensors"):
        read_backbone_weights(tmp_path / "empty.pth")
    with pytest.raises(FileNotFoundError):
        read_backbone_weights(tmp_path / "absent.pth")
