"""Deterministic images that are not white blood cells, to check that the review flags catch them.

A workstation will be fed things that are not single leukocytes: an empty field, a scanner test card, a
screenshot, a file of noise. The out-of-distribution flag is meant to catch them, so the export measures it on
these kinds and the tests and ``benchmarks/review_flags.py`` hold it to that:

* ``noise``: uniform RGB noise.
* ``smooth``: low-frequency random colour fields (like a smear far out of focus).
* ``solid``: one colour, from black and white to slide-background pink.
* ``gradient``: a linear ramp between two random colours at a random angle.
* ``checkerboard``: two colours in squares of 8 to 56 pixels.
* ``text``: lines of dark text on a light background, rendered with Pillow's default font.

The same ``seed`` gives the same pixels with the same Pillow (text is drawn by its bundled font).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["NON_CELL_KINDS", "non_cell_images", "write_non_cell_images"]

NON_CELL_KINDS = ("noise", "smooth", "solid", "gradient", "checkerboard", "text")
_WORDS = "cell smear stain slide field lens focus sample report batch label count review blood plate".split()


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3)


def _noise(rng: np.random.Generator, size: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))


def _smooth(rng: np.random.Generator, size: int) -> Image.Image:
    coarse = rng.integers(0, 256, size=(int(rng.integers(3, 9)),) * 2 + (3,), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)


def _solid(rng: np.random.Generator, size: int, index: int) -> Image.Image:
    fixed = [(255, 255, 255), (0, 0, 0), (236, 214, 218), (128, 128, 128)]  # white, black, slide pink, grey
    colour = fixed[index] if index < len(fixed) else tuple(int(c) for c in _colour(rng))
    return Image.new("RGB", (size, size), colour)


def _gradient(rng: np.random.Generator, size: int) -> Image.Image:
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    ramp = x * np.cos(angle) + y * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
    start, end = _colour(rng), _colour(rng)
    pixels = start + ramp[..., None] * (end - start)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _checkerboard(rng: np.random.Generator, size: int) -> Image.Image:
    square = int(rng.integers(8, 57))
    y, x = np.mgrid[0:size, 0:size] // square
    mask = ((x + y) % 2).astype(bool)[..., None]
    return Image.fromarray(np.where(mask, _colour(rng), _colour(rng)).astype(np.uint8))


def _text(rng: np.random.Generator, size: int) -> Image.Image:
    background = tuple(int(c) for c in rng.integers(215, 256, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=int(rng.integers(14, 29)))
    top = 4
    while top < size:
        line = " ".join(str(rng.choice(_WORDS)) for _ in range(6))
        draw.text((4, top), line, fill=tuple(int(c) for c in rng.integers(0, 80, size=3)), font=font)
        top += font.size + 6
    return image


def non_cell_images(per_kind: int = 8, size: int = 256, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """``per_kind`` images of every kind in :data:`NON_CELL_KINDS`, as ``(kind, RGB image)`` pairs.

    Args:
        per_kind: Images of each kind.
        size: Side of the square images in pixels (the runtime resizes them like any cell).
        seed: Seed of the random colours, angles and words.
    """
    rng = np.random.default_rng(seed)
    images: list[tuple[str, Image.Image]] = []
    for kind in NON_CELL_KINDS:
        for index in range(per_kind):
            if kind == "solid":
                image = _solid(rng, size, index)
            else:
                image = {
                    "noise": _noise,
                    "smooth": _smooth,
                    "gradient": _gradient,
                    "checkerboard": _checkerboard,
                    "text": _text,
                }[kind](rng, size)
            images.append((kind, image))
    return images


def write_non_cell_images(folder: Path, per_kind: int = 8, size: int = 256, seed: int = 0) -> list[Path]:
    """Write :func:`non_cell_images` as PNG files ``folder/<kind>_<index>.png`` and return their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, seen = [], dict.fromkeys(NON_CELL_KINDS, 0)
    for kind, image in non_cell_images(per_kind, size, seed):
        path = folder / f"{kind}_{seen[kind]:02d}.png"
        seen[kind] += 1
        image.save(path)
        paths.append(path)
    return paths
