"""Peak memory of decoding one image at hema's size limit, per decoding worker, for the model and for thumbnails.

    .venv/bin/python benchmarks/decode_memory.py --cell ../shared/data/pbc/basophil/BA_10387.jpg

A real cell is tiled into images of ``--megapixels`` megapixels (default 40, :data:`MAX_IMAGE_PIXELS`): an 8-bit
RGB JPEG, an 8-bit RGBA PNG, an 8-bit grey PNG, and a 16-bit grey PNG and TIFF. Each is decoded in a fresh
interpreter, once as the model's path does (:func:`~hema.runtime.preprocessing.load_cell_image`) and once for a
thumbnail (:func:`~hema.runtime.reports.thumbnails.thumbnail_data_uri`); the interpreter reports how far its
resident memory rose above what it held before (Linux: ``VmHWM`` after resetting it through
``/proc/self/clear_refs``; elsewhere ``ru_maxrss``, which may hide a rise below the import's own peak). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

MEASURE = """
import resource, sys
from pathlib import Path
from hema.runtime.card import InputSpec
from hema.runtime.preprocessing import load_cell_image
from hema.runtime.reports.thumbnails import thumbnail_data_uri

def status(field):
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

path, what = Path(sys.argv[1]), sys.argv[2]
spec = InputSpec(height=224, width=224)
run = (lambda: load_cell_image(path, spec)) if what == "model" else (lambda: thumbnail_data_uri(path))
try:
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from the present
except OSError:
    pass
before = status("VmRSS")
result = run()
print(status("VmHWM") - before if result is not None else "nan")  # nan: no thumbnail made
"""


def make_images(cell: Path, folder: Path, megapixels: float) -> dict[str, Path]:
    """The test images, tiled from ``cell`` to about ``megapixels`` megapixels (5:4)."""
    with Image.open(cell) as image:
        rgb = image.convert("RGB")
    width = int((megapixels * 1e6 * 5 / 4) ** 0.5)
    height = int(megapixels * 1e6) // width
    tiled = np.tile(np.asarray(rgb), (height // rgb.height + 1, width // rgb.width + 1, 1))[:height, :width]
    big = Image.fromarray(tiled)
    paths = {
        "8-bit RGB JPEG": folder / "rgb8.jpg",
        "8-bit RGBA PNG": folder / "rgba8.png",
        "8-bit grey PNG": folder / "grey8.png",
        "16-bit grey PNG": folder / "grey16.png",
        "16-bit grey TIFF": folder / "grey16.tif",
    }
    big.save(paths["8-bit RGB JPEG"], quality=90)
    big.convert("RGBA").save(paths["8-bit RGBA PNG"], compress_level=1)
    grey = big.convert("L")
    grey.save(paths["8-bit grey PNG"], compress_level=1)
    sixteen = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    sixteen.save(paths["16-bit grey PNG"], compress_level=1)
    sixteen.save(paths["16-bit grey TIFF"])
    return paths


def peak_mib(path: Path, what: str) -> float:
    """How far a fresh interpreter's resident memory rose while decoding ``path`` for ``what``."""
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path), what], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cell", type=Path, required=True, help="A real cell image to tile.")
    parser.add_argument("--megapixels", type=float, default=40.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_images(arguments.cell, Path(folder), arguments.megapixels)
        print(f"| image ({arguments.megapixels:g} MP) | model's path: peak MiB | thumbnail: peak MiB |")
        print("|---|--:|--:|")
        for name, path in paths.items():
            print(f"| {name} | {peak_mib(path, 'model'):.0f} | {peak_mib(path, 'thumbnail'):.0f} |")


if __name__ == "__main__":
    main()
