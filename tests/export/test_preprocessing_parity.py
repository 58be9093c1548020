"""The runtime's resize equals the training eval transform bit for bit (what the exported graph was checked on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import load_cell_image
from hema.train.data.eval_transform import load_eval_image

SIZES = (224, 96, 400)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def _one_per_size(folder: Path, limit: int) -> list[Path]:
    """The first image of each distinct (size, mode), up to ``limit`` images."""
    chosen: dict[tuple, Path] = {}
    for path in sorted(folder.rglob("*.jpg")):
        with Image.open(path) as image:
            key = (image.size, image.mode)
        chosen.setdefault(key, path)
        if len(chosen) >= limit:
            break
    return list(chosen.values())


@pytest.fixture(scope="module")
def real_images(pbc_dir: Path, bccd_dir: Path) -> list[Path]:
    pbc = []
    for name in ("basophil", "ig", "neutrophil", "platelet"):
        pbc.extend(_one_per_size(pbc_dir / name, 3))
    bccd = _one_per_size(bccd_dir, 6)
    images = pbc + bccd
    sizes = set()
    for path in images:
        with Image.open(path) as image:
            sizes.add(image.size)
    assert len(sizes) >= 6, sizes  # several source sizes, PBC's and BCCD's
    return images


def _both(path: Path, size: int, interpolation: str, **view: object) -> tuple[np.ndarray, np.ndarray]:
    spec = InputSpec(height=size, width=size, interpolation=interpolation, **view)
    return load_cell_image(path, spec), load_eval_image(path, spec).numpy()


def _assert_identical(runtime: np.ndarray, training: np.ndarray, size: int) -> None:
    assert runtime.dtype == np.uint8 and training.dtype == np.uint8
    assert runtime.shape == training.shape == (size, size, 3)
    difference = np.abs(runtime.astype(np.int16) - training.astype(np.int16))
    assert difference.max() == 0, f"{int((difference > 0).sum())} values differ, up to {int(difference.max())}"


@pytest.mark.parametrize("size", SIZES)
def test_real_cells_bilinear_bit_for_bit(real_images: list[Path], size: int) -> None:
    for path in real_images:
        _assert_identical(*_both(path, size, "bilinear"), size)


@pytest.mark.parametrize("interpolation", INTERPOLATIONS[1:])
def test_real_cells_other_interpolations_bit_for_bit(real_images: list[Path], interpolation: str) -> None:
    for path in real_images[::2]:
        _assert_identical(*_both(path, 224, interpolation), 224)


@pytest.mark.parametrize(
    "view", [{"stain": "standardised"}, {"stain": "standardised", "view": "cell", "cell_context": 2.0}]
)
@pytest.mark.parametrize("size", (160, 224))
def test_real_cells_stain_and_cell_view_bit_for_bit(real_images: list[Path], size: int, view: dict) -> None:
    """The view rules (stain standardisation, the cell view) are one computation in training and at the microscope."""
    for path in real_images:
        _assert_identical(*_both(path, size, "bilinear", **view), size)


@pytest.mark.parametrize("min_side", (96, 128, 180))
def test_reduced_decoding_bit_for_bit(real_images: list[Path], min_side: int) -> None:
    """Half-size decoding (libjpeg-turbo's DCT scaling) is the same in training and at the microscope, and it does
    halve the larger cells: both sides decode through one function, whatever the rule halves."""
    view = {"stain": "standardised", "view": "cell", "decode_min_side": min_side}
    for path in real_images:
        _assert_identical(*_both(path, 128, "bilinear", **view), 128)


def test_cell_view_is_not_the_whole_image(real_images: list[Path]) -> None:
    """Guard: the cell view parity above compares crops, which differ from the whole image's resize."""
    whole, _ = _both(real_images[0], 160, "bilinear", stain="standardised")
    cell, _ = _both(real_images[0], 160, "bilinear", stain="standardised", view="cell")
    assert np.abs(whole.astype(np.int16) - cell.astype(np.int16)).mean() > 5


def test_resize_is_not_a_no_op(real_images: list[Path]) -> None:
    """Guard: the two paths are compared on resized pixels, which differ between interpolations."""
    bilinear, _ = _both(real_images[0], 224, "bilinear")
    nearest, _ = _both(real_images[0], 224, "nearest")
    assert not np.array_equal(bilinear, nearest)


def _synthetic(path: Path, mode: str, size: tuple[int, int]) -> Path:
    rng = np.random.default_rng([*mode.encode(), *size])  # deterministic across processes
    width, height = size
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    # smooth structure plus noise, so that interpolation matters
    rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image = Image.fromarray(rgb, "RGB")
    if mode == "L":
        image = image.convert("L")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    elif mode == "RGBA":
        alpha = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), "L")
        image = image.convert("RGBA")
        image.putalpha(alpha)
    image.save(path)
    with Image.open(path) as check:
        assert check.mode == mode
    return path


@pytest.mark.parametrize(
    ("mode", "size"),
    [("L", (50, 40)), ("P", (64, 64)), ("RGBA", (120, 90)), ("RGB", (16, 9)), ("L", (16, 9)), ("RGBA", (9, 16))],
)
@pytest.mark.parametrize("target", [224, 33])
def test_synthetic_pngs_bit_for_bit(tmp_path: Path, mode: str, size: tuple[int, int], target: int) -> None:
    path = _synthetic(tmp_path / f"cell_{mode}_{size[0]}x{size[1]}.png", mode, size)
    for interpolation in INTERPOLATIONS:
        _assert_identical(*_both(path, target, interpolation), target)
