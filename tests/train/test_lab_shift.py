"""Lab-shift augmentation on a real cell: reproducible from the seed, different between draws, sizes as drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hema.runtime.card import InputSpec
from hema.train.data.augmentations import CellAugmentation
from hema.train.data.lab_shift import LabShift


def _cell(pbc_dir: Path) -> Image.Image:
    with Image.open(sorted((pbc_dir / "eosinophil").glob("*.jpg"))[0]) as image:
        return image.convert("RGB")


def _draw(shift: LabShift, image: Image.Image, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    return np.asarray(shift(image))


def test_a_seed_fixes_the_shift_and_seeds_differ(pbc_dir: Path) -> None:
    cell = _cell(pbc_dir)
    first, again, other = _draw(LabShift(), cell, 1), _draw(LabShift(), cell, 1), _draw(LabShift(), cell, 2)
    assert np.array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_no_shift_keeps_the_image_up_to_colour_deconvolution_rounding(pbc_dir: Path) -> None:
    cell = _cell(pbc_dir)
    none = LabShift(stain_scale=0, stain_shift=0, white_balance=0, gamma=(1, 1), blur_p=0, scale=(1, 1), jpeg_p=0)
    unchanged = _draw(none, cell, 0).astype(np.int16)
    assert unchanged.shape == np.asarray(cell).shape
    assert np.abs(unchanged - np.asarray(cell, dtype=np.int16)).mean() < 1.0


def test_magnification_is_drawn_from_its_range(pbc_dir: Path) -> None:
    cell = _cell(pbc_dir)
    sides = {_draw(LabShift(scale=(0.5, 0.8)), cell, seed).shape[1] for seed in range(5)}
    assert all(0.5 * cell.width - 1 <= side <= 0.8 * cell.width + 1 for side in sides) and len(sides) > 1


def test_cell_augmentation_takes_the_cell_view_after_the_shift(pbc_dir: Path) -> None:
    cell = _cell(pbc_dir)
    augment = CellAugmentation(
        64, view=InputSpec(height=64, width=64, stain="standardised", view="cell"), lab_shift=LabShift()
    )
    torch.manual_seed(0)
    view = augment(cell)
    assert view.shape == (64, 64, 3) and view.dtype == torch.uint8
