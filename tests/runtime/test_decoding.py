"""The one decoder of cell images: libjpeg-turbo for colour JPEGs (Pillow's pixels at full size), half-size
decoding by the model's rule, Pillow for everything else, and the errors of damaged JPEGs in Pillow's words."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hema.runtime.batches import decode_or_reason
from hema.runtime.card import InputSpec
from hema.runtime.jpeg_decoding import colour_jpeg_size, reduction_factor
from hema.runtime.preprocessing import decode_cell_image


@pytest.fixture(scope="module")
def cells(pbc_dir: Path, bccd_dir: Path) -> list[Path]:
    """JPEGs of both labs: PBC's 360x363 crops and BCCD's smaller ones of several sizes."""
    pbc = [
        sorted((pbc_dir / name).glob("*.jpg"))[0] for name in sorted(p.name for p in pbc_dir.iterdir() if p.is_dir())
    ]
    bccd = sorted(bccd_dir.rglob("*.jpg"))[::40]
    return pbc + bccd


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_full_size_colour_jpegs_decode_to_pillows_pixels(cells: list[Path]) -> None:
    for path in cells:
        np.testing.assert_array_equal(np.asarray(decode_cell_image(path)), _pillow(path), err_msg=str(path))


@pytest.mark.parametrize(
    ("size", "min_side", "factor"),
    [
        ((360, 363), 128, 2),
        ((360, 363), 180, 2),
        ((360, 363), 181, 1),
        ((257, 300), 129, 2),
        ((255, 300), 129, 1),
        ((360, 363), 0, 1),
    ],
)
def test_an_image_is_halved_only_while_its_shorter_side_keeps_min_side(size, min_side, factor) -> None:
    assert reduction_factor(size, min_side) == factor


def test_half_size_decoding_is_the_same_picture_at_half_size(cells: list[Path]) -> None:
    for path in cells:
        full = _pillow(path)
        half = np.asarray(decode_cell_image(path, min_side=64))
        height, width = full.shape[:2]
        assert half.shape == ((height + 1) // 2, (width + 1) // 2, 3)
        averaged = np.asarray(Image.fromarray(full).reduce(2)).astype(np.int16)
        assert np.abs(half.astype(np.int16) - averaged).mean() < 3.0, path  # DCT scaling vs 2x2 means: close


def test_other_formats_and_grey_jpegs_go_through_pillow_and_are_halved_by_2x2_means(
    cells: list[Path], tmp_path: Path
) -> None:
    full = _pillow(cells[0])
    png, grey = tmp_path / "cell.png", tmp_path / "grey.jpg"
    Image.fromarray(full).save(png)
    Image.fromarray(full).convert("L").save(grey, quality=95)
    assert colour_jpeg_size(png.read_bytes()) is None and colour_jpeg_size(grey.read_bytes()) is None
    np.testing.assert_array_equal(
        np.asarray(decode_cell_image(png, min_side=128)), np.asarray(Image.fromarray(full).reduce(2))
    )
    with Image.open(grey) as image:
        expected = np.asarray(image.convert("RGB").reduce(2))
    np.testing.assert_array_equal(np.asarray(decode_cell_image(grey, min_side=128)), expected)


def test_a_damaged_jpeg_is_an_error_row_in_pillows_words(cells: list[Path], tmp_path: Path) -> None:
    data = cells[0].read_bytes()
    truncated, scrambled = tmp_path / "truncated.jpg", tmp_path / "scrambled.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    body = bytearray(data)
    body[len(body) // 2 : len(body) // 2 + 400] = bytes(400)  # zeros inside the entropy-coded data
    scrambled.write_bytes(bytes(body))
    spec = InputSpec(height=128, width=128, view="cell", stain="standardised", decode_min_side=128)
    assert decode_or_reason(truncated, spec) == "cannot read image: truncated file (the image data ends early)"
    scrambled_result = decode_or_reason(scrambled, spec)  # libjpeg-turbo may repair zeros, or refuse them: never crash
    assert isinstance(scrambled_result, np.ndarray) or scrambled_result.startswith("cannot read image: ")


def test_a_huge_jpeg_header_is_refused_before_decoding(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 50)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    marker = data.index(b"\xff\xc0")  # start of frame: height and width follow the length and the precision
    data[marker + 5 : marker + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(bytes(data))
    reason = decode_or_reason(bomb, InputSpec(height=128, width=128))
    assert reason.startswith("cannot read image: image too large: 60000x60000"), reason
