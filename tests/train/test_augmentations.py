"""Multi-crop augmentation: crop count, sizes, uint8 HWC layout, reproducibility, background fill, collation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hema.train.data.augmentations import (
    CellAugmentation,
    MultiCropAugmentation,
    MultiCropConfig,
    border_colour,
    collate_multicrop,
)

SMALL = MultiCropConfig(global_size=64, local_size=32, local_crops=3)
# every random step off except what a test switches on
PLAIN = replace(
    SMALL,
    rotation_degrees=0.0,
    flip_p=0.0,
    color_jitter_p=0.0,
    grayscale_p=0.0,
    global_blur_p=(0.0, 0.0),
    local_blur_p=0.0,
    global_solarize_p=(0.0, 0.0),
    global_scale=(1.0, 1.0),
)


@pytest.fixture(scope="module")
def cell(pbc_dir: Path) -> Image.Image:
    """The first PBC neutrophil (``pbc_dir`` fails the test when the data is missing: no silent skips)."""
    paths = sorted((pbc_dir / "neutrophil").glob("*.jpg"))
    assert paths, f"no neutrophil images under {pbc_dir}"
    with Image.open(paths[0]) as image:
        return image.convert("RGB")


def _assert_crops(crops, config: MultiCropConfig):
    assert len(crops) == 2 + config.local_crops
    sizes = [config.global_size] * 2 + [config.local_size] * config.local_crops
    for crop, size in zip(crops, sizes):
        assert isinstance(crop, torch.Tensor)
        assert crop.dtype == torch.uint8
        assert crop.shape == (size, size, 3)
        assert crop.is_contiguous()


def test_default_config_on_a_real_cell(cell):
    augment = MultiCropAugmentation()
    assert augment.n_crops == 8
    crops = augment(cell)
    _assert_crops(crops, MultiCropConfig())
    assert crops[0].shape == (224, 224, 3) and crops[2].shape == (96, 96, 3)
    # real image content, not a constant fill
    assert all(crop.float().std() > 5 for crop in crops)


@pytest.mark.parametrize("local_crops", [0, 2])
def test_number_and_size_of_crops(cell, local_crops):
    config = replace(SMALL, local_crops=local_crops)
    _assert_crops(MultiCropAugmentation(config)(cell), config)


def test_deterministic_under_a_fixed_seed(cell):
    augment = MultiCropAugmentation(SMALL)
    torch.manual_seed(123)
    first = augment(cell)
    torch.manual_seed(123)
    second = augment(cell)
    torch.manual_seed(124)
    other = augment(cell)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_crops_differ_from_each_other(cell):
    torch.manual_seed(0)
    crops = MultiCropAugmentation(SMALL)(cell)
    assert not torch.equal(crops[0], crops[1])
    assert not torch.equal(crops[2], crops[3])


def test_input_is_converted_to_rgb(cell):
    torch.manual_seed(0)
    crops = MultiCropAugmentation(SMALL)(cell.convert("RGBA"))
    _assert_crops(crops, SMALL)


def test_border_colour_is_median_of_the_frame():
    pixels = np.zeros((20, 30, 3), dtype=np.uint8)
    pixels[:] = (10, 20, 30)  # interior, must be ignored
    frame = np.zeros(pixels.shape[:2], dtype=bool)
    frame[0], frame[-1], frame[:, 0], frame[:, -1] = True, True, True, True
    pixels[frame] = (240, 210, 190)
    pixels[0, :3] = (0, 0, 0)  # a few outliers on the border do not move the median
    assert border_colour(Image.fromarray(pixels)) == (240, 210, 190)


def test_rotation_fills_corners_with_the_background():
    colour = (232, 201, 188)
    uniform = Image.new("RGB", (80, 80), colour)
    config = replace(PLAIN, rotation_degrees=180.0, local_crops=6)
    torch.manual_seed(0)
    crops = MultiCropAugmentation(config)(uniform)
    assert all((crop.int() - torch.tensor(colour)).abs().max() <= 1 for crop in crops)

    torch.manual_seed(0)
    black_corners = MultiCropAugmentation(replace(config, rotation_fill=(0, 0, 0)))(uniform)
    assert any(crop.int().sum(dim=-1).min() < 300 for crop in black_corners)


def test_plain_global_crop_is_the_resized_image_in_hwc_layout(cell):
    crop = MultiCropAugmentation(PLAIN)(cell)[0]
    expected = np.asarray(cell.resize((64, 64), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(crop.numpy(), expected)


def test_flips_on_both_axes(cell):
    plain = MultiCropAugmentation(PLAIN)(cell)[0]
    flipped = MultiCropAugmentation(replace(PLAIN, flip_p=1.0))(cell)[0]
    assert torch.equal(flipped, plain.flip(0).flip(1))


def test_first_global_crop_blurred_and_second_solarised(cell):
    plain = [crop.clone() for crop in MultiCropAugmentation(PLAIN)(cell)]
    config = replace(PLAIN, global_blur_p=(1.0, 0.0), global_solarize_p=(0.0, 1.0), blur_sigma=(1.5, 2.0))
    torch.manual_seed(0)
    crops = MultiCropAugmentation(config)(cell)

    assert not torch.equal(crops[0], plain[0])
    assert crops[0].float().diff(dim=1).abs().mean() < plain[0].float().diff(dim=1).abs().mean()
    solarised = torch.where(plain[1] >= 128, 255 - plain[1], plain[1])
    assert torch.equal(crops[1], solarised)
    assert not torch.equal(crops[1], plain[1])


def test_single_view_augmentation(cell):
    augment = CellAugmentation(48)
    torch.manual_seed(5)
    view = augment(cell)
    assert view.dtype == torch.uint8 and view.shape == (48, 48, 3)
    torch.manual_seed(5)
    assert torch.equal(augment(cell), view)
    assert not torch.equal(augment(cell), view)


def test_single_view_keeps_colour_and_background_fill(cell):
    plain = CellAugmentation(64, PLAIN)(cell)
    np.testing.assert_array_equal(plain.numpy(), np.asarray(cell.resize((64, 64), Image.Resampling.BICUBIC)))
    # greyscale would hide the stain: CellAugmentation never applies it, whatever the config says
    grey = replace(PLAIN, grayscale_p=1.0)
    assert torch.equal(CellAugmentation(64, grey)(cell), plain)
    colour = (232, 201, 188)
    torch.manual_seed(0)
    rotated = CellAugmentation(40, replace(PLAIN, rotation_degrees=180.0))(Image.new("RGB", (50, 50), colour))
    assert (rotated.int() - torch.tensor(colour)).abs().max() <= 1


def test_collate_stacks_each_crop_over_the_batch(cell):
    augment = MultiCropAugmentation(SMALL)
    torch.manual_seed(0)
    items = [augment(cell) for _ in range(3)]
    batch = collate_multicrop(items)
    assert len(batch) == 5
    assert [tuple(crops.shape) for crops in batch] == [(3, 64, 64, 3)] * 2 + [(3, 32, 32, 3)] * 3
    assert all(crops.dtype == torch.uint8 for crops in batch)
    assert torch.equal(batch[3][2], items[2][3])

    loader = torch.utils.data.DataLoader(items, batch_size=2, collate_fn=collate_multicrop)
    assert [tuple(crops.shape) for crops in next(iter(loader))][:3] == [(2, 64, 64, 3)] * 2 + [(2, 32, 32, 3)]


def test_collate_refuses_ragged_or_empty_batches():
    crop = torch.zeros(4, 4, 3, dtype=torch.uint8)
    with pytest.raises(ValueError):
        collate_multicrop([[crop, crop], [crop]])
    with pytest.raises(ValueError):
        collate_multicrop([])


def test_config_is_frozen_and_validated():
    with pytest.raises(AttributeError):
        MultiCropConfig().local_crops = 2  # type: ignore[misc]
    with pytest.raises(ValueError):
        MultiCropConfig(local_scale=(0.4, 0.05))
    with pytest.raises(ValueError):
        MultiCropConfig(global_blur_p=(1.0,))
