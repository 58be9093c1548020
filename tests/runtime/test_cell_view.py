"""The cell view on real cells: the white cell is found, the crop follows it, and lab differences are undone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hema.runtime.cell_view import MIN_CROP_SHARE, cell_view, locate_cell, standardise_stain

CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")


def _cells(folder: Path, per_class: int) -> list[np.ndarray]:
    images = []
    for name in CLASSES:
        for path in sorted((folder / name).glob("*.jpg"))[:per_class]:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
    return images


@pytest.fixture(scope="module")
def pbc_cells(pbc_dir: Path) -> list[np.ndarray]:
    return _cells(pbc_dir, 4)


def test_the_white_cell_is_found_near_the_centre_of_pbc_crops(pbc_cells: list[np.ndarray]) -> None:
    """PBC's analyser centres the white cell, which spans roughly a third of the 360-pixel crop."""
    for rgb in pbc_cells:
        box = locate_cell(standardise_stain(rgb))
        assert box is not None
        height, width = rgb.shape[:2]
        assert abs(box.x - width / 2) < width / 4 and abs(box.y - height / 2) < height / 4
        assert 0.15 * width < box.size < 0.8 * width


def test_the_view_is_a_square_inside_the_image_and_scales_with_the_cell(pbc_cells: list[np.ndarray]) -> None:
    """At another magnification (the crop resized by 0.7) the view's side follows the cell, not the image."""
    for rgb in pbc_cells[::5]:
        view = cell_view(rgb, 2.0)
        side = view.shape[0]
        assert view.shape == (side, side, 3) and view.dtype == np.uint8
        assert MIN_CROP_SHARE * min(rgb.shape[:2]) - 1 <= side <= min(rgb.shape[:2])
        height, width = rgb.shape[:2]
        smaller = np.asarray(Image.fromarray(rgb).resize((round(0.7 * width), round(0.7 * height))))
        assert abs(cell_view(smaller, 2.0).shape[0] - 0.7 * side) <= 0.1 * side + 4


def test_a_field_without_a_cell_gives_the_centred_square() -> None:
    plain = np.full((120, 200, 3), 230, dtype=np.uint8)
    assert locate_cell(standardise_stain(plain)) is None
    assert cell_view(plain, 2.0).shape == (120, 120, 3)


def test_stain_standardisation_undoes_a_lamp_and_stain_change(pbc_cells: list[np.ndarray]) -> None:
    """Another lamp (channel gains) and a weaker stain (optical density scaled) map onto nearly the same image."""
    for rgb in pbc_cells[::4]:
        density = -np.log((rgb.astype(np.float64) + 1) / 256)
        other_lab = np.clip(256 * np.exp(-0.75 * density) * np.array([0.92, 1.0, 1.06]) - 1, 0, 255)
        other_lab = np.rint(other_lab).astype(np.uint8)
        raw_difference = np.abs(rgb.astype(float) - other_lab).mean()
        standard_difference = np.abs(
            standardise_stain(rgb).astype(float) - standardise_stain(other_lab).astype(float)
        ).mean()
        assert standard_difference < raw_difference / 3, (raw_difference, standard_difference)
