"""Making any decoded image 8-bit RGB as training does (16-bit scaled, not clipped), and refusing huge images.

Bit-for-bit parity with the training eval transform on real cells is held in ``tests/export``; whole files of
every kind, bad ones included, in ``test_bad_input_corpus.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hema.runtime.preprocessing import (
    MAX_IMAGE_PIXELS,
    MAX_IMAGE_SIDE,
    ImageTooLargeError,
    check_image_size,
    to_rgb,
)


def _gradient(mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8), "RGB").convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA", "PA", "CMYK", "YCbCr", "1"])
def test_8_bit_images_convert_as_pillow_does(mode: str) -> None:
    """What the training eval transform does (``convert("RGB")``), so parity holds for these kinds."""
    image = _gradient(mode)
    np.testing.assert_array_equal(np.asarray(to_rgb(image)), np.asarray(image.convert("RGB")))


def test_rgb_comes_back_as_it_is() -> None:
    image = _gradient()
    assert to_rgb(image) is image


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_16_bit_grey_is_scaled_to_8_bits_not_clipped(mode: str) -> None:
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    wide = grey.astype(np.int32) * 257
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4"}[mode]
    image = Image.frombytes(mode, (16, 16), wide.astype(dtype).tobytes())
    assert image.mode == mode
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (16, 16, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], grey)


def test_16_bit_values_round_to_the_nearest_8_bit_value() -> None:
    image = Image.fromarray(np.array([[0, 128, 129, 65535, 65407, 32896]], dtype=np.uint16))
    assert np.asarray(to_rgb(image))[0, :, 0].tolist() == [0, 0, 1, 255, 255, 128]


def test_alpha_is_dropped_as_the_training_eval_transform_drops_it() -> None:
    pixels = np.zeros((1, 2, 4), dtype=np.uint8)
    pixels[0, 0] = (200, 20, 20, 255)
    pixels[0, 1] = (10, 30, 50, 0)  # transparent: its colour is kept, as in training
    rgb = np.asarray(to_rgb(Image.fromarray(pixels, "RGBA")))
    assert rgb[0].tolist() == [[200, 20, 20], [10, 30, 50]]


@pytest.mark.parametrize(
    "size", [(360, 363), (1, 1), (MAX_IMAGE_SIDE, MAX_IMAGE_PIXELS // MAX_IMAGE_SIDE), (MAX_IMAGE_SIDE, 1)]
)
def test_cell_sized_images_pass(size: tuple[int, int]) -> None:
    check_image_size(size)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((20_000, 20_000), "20000x20000 pixels"),
        ((7_000, 7_000), "7000x7000 pixels"),
        ((1, 100_000), "1x100000 pixels"),
        ((MAX_IMAGE_SIDE + 1, 1), f"{MAX_IMAGE_SIDE + 1}x1 pixels"),
    ],
)
def test_larger_images_are_refused_with_the_declared_size(size: tuple[int, int], message: str) -> None:
    with pytest.raises(ImageTooLargeError, match=f"image too large: {message} \\(limit 40 megapixels"):
        check_image_size(size)
