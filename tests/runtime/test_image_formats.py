"""Only the formats a cell image can have are decoded; anything else is refused by name, before any decoder runs.

Pillow hands an EPS/PostScript file to Ghostscript, an external program with a history of sandbox escapes
(CVE-2023-36664, CVE-2024-29510); a PostScript file named ``cell.jpg`` must never reach it, in classification,
thumbnails or training. Every file here is written by the test from a real PBC cell.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import CELL_IMAGE_FORMATS, UnsupportedImageFormatError, load_cell_image
from hema.runtime.reports.thumbnails import thumbnail_data_uri

SPEC = InputSpec(height=224, width=224)


@pytest.fixture()
def cell(pbc_dir: Path) -> Image.Image:
    with Image.open(sorted((pbc_dir / "basophil").glob("*.jpg"))[0]) as image:
        return image.convert("RGB")


@pytest.fixture()
def ghostscript_calls(monkeypatch) -> list[tuple]:
    """Every attempt to start Ghostscript (there must be none), recorded instead of run."""
    calls: list[tuple] = []

    def record(*args: object, **keywords: object) -> None:
        calls.append(args)
        raise AssertionError("Ghostscript was started")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", record)
    return calls


def _postscript_named_jpg(cell: Image.Image, folder: Path) -> Path:
    path = folder / "cell.jpg"
    cell.save(path, "EPS")
    assert path.read_bytes().startswith(b"%!PS-Adobe")
    return path


def test_postscript_named_jpg_is_refused_by_name_and_never_reaches_ghostscript(
    cell: Image.Image, tmp_path: Path, ghostscript_calls: list
) -> None:
    path = _postscript_named_jpg(cell, tmp_path)
    with pytest.raises(UnsupportedImageFormatError, match="EPS") as refused:
        load_cell_image(path, SPEC)
    assert "JPEG, PNG, BMP, TIFF" in str(refused.value)
    assert ghostscript_calls == []


def test_postscript_gets_no_thumbnail_and_never_reaches_ghostscript(
    cell: Image.Image, tmp_path: Path, ghostscript_calls: list
) -> None:
    assert thumbnail_data_uri(_postscript_named_jpg(cell, tmp_path)) is None
    assert ghostscript_calls == []


@pytest.mark.parametrize(("format", "name"), [("GIF", "cell.png"), ("WEBP", "cell.jpg"), ("ICO", "cell.bmp")])
def test_other_image_formats_are_refused_by_name(cell: Image.Image, tmp_path: Path, format: str, name: str) -> None:
    path = tmp_path / name
    cell.resize((64, 64)).save(path, format)
    with pytest.raises(UnsupportedImageFormatError, match=format):
        load_cell_image(path, SPEC)
    assert thumbnail_data_uri(path) is None


@pytest.mark.parametrize(("format", "suffix"), [("JPEG", ".jpg"), ("PNG", ".png"), ("BMP", ".bmp"), ("TIFF", ".tif")])
def test_cell_image_formats_are_decoded(cell: Image.Image, tmp_path: Path, format: str, suffix: str) -> None:
    assert format in CELL_IMAGE_FORMATS
    path = tmp_path / f"cell{suffix}"
    cell.save(path, format)
    assert load_cell_image(path, SPEC).shape == (224, 224, 3)
    assert thumbnail_data_uri(path) is not None


def test_a_camera_jpeg_with_several_pictures_is_a_jpeg(cell: Image.Image, tmp_path: Path) -> None:
    """Cameras write MPO (a JPEG with extra pictures, e.g. a preview); Pillow reads it through its JPEG opener."""
    path = tmp_path / "cell.jpg"
    cell.save(path, "MPO", save_all=True, append_images=[cell.resize((32, 32))])
    with Image.open(path) as image:
        assert image.format == "MPO"
    np.testing.assert_array_equal(load_cell_image(path, SPEC), load_cell_image(_jpeg_copy(cell, tmp_path), SPEC))


def _jpeg_copy(cell: Image.Image, folder: Path) -> Path:
    path = folder / "plain.jpg"
    cell.save(path, "JPEG")
    return path


def test_the_training_side_decodes_the_same_formats(cell: Image.Image, tmp_path: Path, ghostscript_calls) -> None:
    from hema.train.data.eval_transform import load_eval_image

    with pytest.raises(UnsupportedImageFormatError, match="EPS"):
        load_eval_image(_postscript_named_jpg(cell, tmp_path), InputSpec(height=224, width=224))
    assert ghostscript_calls == []
