"""16-bit grey images: thumbnails that look like the cell, and bounded memory per decoding worker (issue 13 item 9).

Pillow's own ``convert("RGB")`` clips 16-bit grey to white and Pillow cannot shrink a 16-bit image, so
``report.html`` showed 16-bit cells as white squares, or none at all; thumbnails now scale them by the model's own
rule (:func:`hema.runtime.preprocessing.to_eight_bit`). Scaling a 40-megapixel 16-bit image with numpy all at once
took about 730 MiB per decoding worker; it now takes what an 8-bit grey image of the same size takes
(``benchmarks/decode_memory.py``). Every image is written by the test from a real PBC cell.
"""

from __future__ import annotations

import base64
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hema.runtime import preprocessing
from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import load_cell_image, to_rgb
from hema.runtime.reports.thumbnails import thumbnail_data_uri

SPEC = InputSpec(height=224, width=224)


@pytest.fixture(scope="module")
def grey_cell(pbc_dir: Path) -> np.ndarray:
    """A real PBC cell as 8-bit grey pixels."""
    with Image.open(sorted((pbc_dir / "lymphocyte").glob("*.jpg"))[0]) as image:
        return np.asarray(image.convert("L"))


def save_pair(pixels: np.ndarray, folder: Path, name: str) -> tuple[Path, Path]:
    """The same grey pixels as an 8-bit PNG and as a 16-bit PNG (``v * 257``), written to ``folder``."""
    eight, sixteen = folder / f"{name}_8.png", folder / f"{name}_16.png"
    Image.fromarray(pixels, "L").save(eight, compress_level=1)
    Image.fromarray(pixels.astype(np.uint16) * 257).save(sixteen, compress_level=1)
    with Image.open(sixteen) as image:
        assert image.mode == "I;16"
    return eight, sixteen


def decoded_thumbnail(path: Path) -> np.ndarray:
    uri = thumbnail_data_uri(path)
    assert uri is not None, f"{path.name}: no thumbnail"
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64)


def tiled(cell: np.ndarray, height: int, width: int) -> np.ndarray:
    return np.tile(cell, (height // cell.shape[0] + 1, width // cell.shape[1] + 1))[:height, :width]


@pytest.mark.parametrize("side", [None, 1600], ids=["one cell", "tiled 1600x1600"])
def test_sixteen_bit_thumbnail_shows_the_cell_as_the_eight_bit_one_does(
    grey_cell: np.ndarray, tmp_path: Path, side: int | None
) -> None:
    """A 16-bit cell's thumbnail is no white square, and matches its 8-bit twin's (large ones had none at all)."""
    pixels = grey_cell if side is None else tiled(grey_cell, side, side)
    eight, sixteen = save_pair(pixels, tmp_path, "cell")
    shown, expected = decoded_thumbnail(sixteen), decoded_thumbnail(eight)
    assert shown.shape == expected.shape
    assert shown.mean() < 230 and shown.std() > 10, "near-uniform white"
    assert np.abs(shown - expected).mean() < 2.0  # JPEG noise only


def test_thumbnail_and_model_scale_sixteen_bit_by_the_same_rule(grey_cell: np.ndarray) -> None:
    """One rule, :func:`to_eight_bit`: ``v / 257`` rounded, clipped to 0-65535 (32-bit grey included)."""
    every_value = Image.fromarray(np.arange(65536, dtype=np.uint16).reshape(256, 256))
    expected = ((np.arange(65536, dtype=np.int64) * 255 + 32767) // 65535).reshape(256, 256)
    np.testing.assert_array_equal(np.asarray(preprocessing.to_eight_bit(every_value)), expected)
    np.testing.assert_array_equal(np.asarray(to_rgb(every_value))[..., 0], expected)
    wide = Image.fromarray(np.array([[-7, 0, 128, 129, 65535, 70000]], dtype=np.int32), "I")
    np.testing.assert_array_equal(np.asarray(preprocessing.to_eight_bit(wide)), [[0, 0, 0, 1, 255, 255]])
    sixteen = Image.fromarray(grey_cell.astype(np.uint16) * 257)
    np.testing.assert_array_equal(np.asarray(preprocessing.to_eight_bit(sixteen)), grey_cell)


def test_large_sixteen_bit_image_is_scaled_in_strips_exactly(grey_cell: np.ndarray, tmp_path: Path) -> None:
    """An image of several strips gives the model the same pixels as its 8-bit twin."""
    eight, sixteen = save_pair(tiled(grey_cell, 1500, 1400), tmp_path, "strips")  # 2.1 megapixels: 3 strips
    np.testing.assert_array_equal(load_cell_image(sixteen, SPEC), load_cell_image(eight, SPEC))


PEAK = """
import resource, sys
from pathlib import Path
from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import load_cell_image

def kib(field):
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in lines if line.startswith(field)).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux; can only under-report
try:
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to what the process holds now
except OSError:
    pass
before = kib("VmRSS:")
load_cell_image(Path(sys.argv[1]), InputSpec(height=224, width=224))
print((kib("VmHWM:") - before) * 1024)
"""


def peak_bytes(path: Path) -> int:
    """How far a fresh interpreter's resident memory rises while it decodes ``path`` for the model."""
    done = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.strip())


def test_sixteen_bit_decoding_needs_no_more_memory_than_eight_bit(grey_cell: np.ndarray, tmp_path: Path) -> None:
    """Per decoding worker, a 16-bit grey image costs what an 8-bit grey one does (about 5 bytes per pixel).

    Scaling with numpy all at once rose by about 19 bytes per pixel (int64 temporaries): 730 MiB at 40 megapixels.
    """
    pixels = tiled(grey_cell, 2500, 4000)  # 10 megapixels
    eight, sixteen = save_pair(pixels, tmp_path, "large")
    eight_bit, sixteen_bit = peak_bytes(eight), peak_bytes(sixteen)
    assert sixteen_bit < 7 * pixels.size, f"{sixteen_bit / 2**20:.0f} MiB for {pixels.size / 1e6:g} megapixels"
    assert sixteen_bit < eight_bit + pixels.size, f"16-bit {sixteen_bit / 2**20:.0f} MiB, 8-bit {eight_bit / 2**20:.0f}"
