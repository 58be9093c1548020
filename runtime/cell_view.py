"""The cell view: a stain-standardised square crop centred on the white cell, so that labs look alike.

Two labs' exports of the same cell differ in what does not matter to its class: the illumination and white
balance of the camera, the strength of the stain, the magnification (how large the cell is in the crop) and
where the analyser put the cell. The cell view removes these before the model sees the image, in numpy, in the
lean runtime and, by calling the same function, in training (so the two are identical bit for bit by
construction; ``tests/export/test_preprocessing_parity.py`` holds them against each other on real cells).

1. **Stain standardisation** (:func:`standardise_stain`), after Beer-Lambert: a stain's optical density
   ``OD = -log(I / I0)`` scales with its amount. Per channel, the background level ``I0`` is the
   :data:`BACKGROUND_PERCENTILE` percentile of the image (plasma and glass, the brightest part of a smear) and the
   stain level the optical density of its :data:`STAIN_PERCENTILE` percentile (the darkest part: the white cell's
   nucleus). Each channel's optical density is rescaled so that both levels reach fixed targets
   (:data:`BACKGROUND_TARGET`, :data:`STAIN_TARGET`, the medians of PBC's training cells): a paler or stronger
   stain, another lamp or white balance all map onto the same colours, while the colours *within* a cell
   (orange eosinophil granules against a purple nucleus) keep their relation. It is one 256-entry lookup table
   per channel, computed from integer histograms, so it is cheap and exactly reproducible.
2. **Cell location** (:func:`locate_cell`): on the standardised image, nuclei and cytoplasm of white cells
   absorb more red than blue (``B - R`` high) while red cells and background do not. An Otsu threshold on that
   map (on a 4x subsampled grid), closed by a dilation so that the lobes of a segmented nucleus join, and the
   connected region nearest the crop's centre give the cell; its bounding box is taken between the 1st and 99th
   percentile of the region's coordinates so that a touching neighbour's spur does not stretch it.
3. **Crop** (:func:`cell_view`): a square of ``context`` times the cell's larger side, centred on the cell and
   shifted to stay inside the image (never padded), at least :data:`MIN_CROP_SHARE` of the image's shorter side
   and at most all of it. Where no cell is found (a platelet, an empty field) the crop is the centred square
   of the whole shorter side: the view never fails on an image that decoded.

The resize to the model's input that follows is the one every hema model has (:mod:`hema.runtime.preprocessing`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "BACKGROUND_PERCENTILE",
    "BACKGROUND_TARGET",
    "MIN_CROP_SHARE",
    "STAIN_PERCENTILE",
    "STAIN_TARGET",
    "CellBox",
    "cell_view",
    "locate_cell",
    "stain_tables",
    "standardise_stain",
]

BACKGROUND_PERCENTILE = 90.0
"""Percentile of each channel taken as the background level (plasma and glass are the brightest tenth)."""
STAIN_PERCENTILE = 1.0
"""Percentile of each channel taken as the stain level (the darkest 1 %: a white cell's nucleus)."""
BACKGROUND_TARGET = (255.0, 228.0, 203.0)
"""RGB background level after standardisation (median of PBC's training cells)."""
STAIN_TARGET = (1.34, 2.29, 0.45)
"""Optical density of the stain level after standardisation, per RGB channel (median of PBC's training cells)."""
MIN_CROP_SHARE = 0.35
"""Smallest crop side as a share of the image's shorter side (a mislocated speck never becomes the view)."""
_SCALE_LIMITS = (0.4, 2.5)  # most a channel's optical density is stretched or shrunk (an image without stain)
_GRID = 4  # subsampling of the location map
_CLOSING = 2  # dilation steps (in grid cells) joining the lobes of a nucleus


@dataclass(frozen=True)
class CellBox:
    """Where the white cell is in an image, in pixels: centre ``(x, y)`` and the larger side of its box."""

    x: float
    y: float
    size: float


def _stain_levels(cumulative: np.ndarray, percentile: float) -> np.ndarray:
    """Per channel, the smallest uint8 value at or below which ``percentile`` % of its pixels lie (exact), from the
    channels' cumulative histograms ``(3, 256)``."""
    return (cumulative < (percentile / 100.0) * cumulative[:, -1:]).sum(axis=1)


def stain_tables(rgb: np.ndarray) -> np.ndarray:
    """``uint8 (3, 256)``: per channel, the lookup table that standardises the image's stain (module docstring)."""
    histograms = np.asarray(Image.fromarray(rgb, "RGB").histogram(), dtype=np.int64).reshape(3, 256)
    cumulative = np.cumsum(histograms, axis=1)
    backgrounds = np.maximum(_stain_levels(cumulative, BACKGROUND_PERCENTILE), 1) + 1.0
    stains = np.minimum(_stain_levels(cumulative, STAIN_PERCENTILE) + 1.0, backgrounds)
    scales = []
    for background, stain, target in zip(backgrounds.tolist(), stains.tolist(), STAIN_TARGET):
        stain_density = np.log(background / stain)
        scales.append(float(np.clip(target / stain_density if stain_density > 0 else 1.0, *_SCALE_LIMITS)))
    density = np.log(backgrounds[:, None] / (np.arange(256, dtype=np.float64) + 1.0))  # OD, 0 at background
    targets = np.asarray(BACKGROUND_TARGET)[:, None]
    values = targets * np.exp(-np.maximum(density, 0.0) * np.asarray(scales)[:, None])
    values = np.where(density < 0, np.minimum(255.0, targets * np.exp(-density)), values)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _apply_tables(rgb: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """``rgb`` with each channel mapped through its lookup table."""
    return np.stack([tables[c][rgb[..., c]] for c in range(3)], axis=-1)


def standardise_stain(rgb: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)``: the image with its background and stain levels moved to the fixed targets."""
    return _apply_tables(np.ascontiguousarray(rgb), stain_tables(rgb))


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of integer values (the split that maximises the between-class variance)."""
    offset = int(values.min())
    counts = np.bincount((values - offset).ravel()).astype(np.float64)
    levels = np.arange(len(counts), dtype=np.float64)
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * levels)
    total, total_mass = weight[-1], mass[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * weight - total * mass) ** 2 / (weight * (total - weight))
    between[~np.isfinite(between)] = -1.0
    return float(np.argmax(between)) + offset


def _dilate(mask: np.ndarray) -> np.ndarray:
    """One step of 8-neighbour binary dilation (a 3x3 square: a row pass, then a column pass)."""
    rows = mask.copy()
    rows[:, 1:] |= mask[:, :-1]
    rows[:, :-1] |= mask[:, 1:]
    grown = rows.copy()
    grown[1:, :] |= rows[:-1, :]
    grown[:-1, :] |= rows[1:, :]
    return grown


def _region_from(seed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The connected part of ``mask`` that contains ``seed`` (morphological reconstruction)."""
    region = seed & mask
    while True:
        grown = _dilate(region) & mask
        if np.array_equal(grown, region):
            return region
        region = grown


def locate_cell(rgb: np.ndarray) -> CellBox | None:
    """The white cell nearest the image's centre, or ``None`` when the image shows none.

    Args:
        rgb: ``uint8 (H, W, 3)``, stain-standardised (:func:`standardise_stain`).
    """
    return _locate_on_grid(_grid_of(rgb))


def _grid_of(rgb: np.ndarray) -> np.ndarray:
    """The location map's subsampled pixels of an image (every ``_GRID``-th row and column)."""
    return np.ascontiguousarray(rgb[_GRID // 2 :: _GRID, _GRID // 2 :: _GRID])


def _locate_on_grid(grid_rgb: np.ndarray) -> CellBox | None:
    """:func:`locate_cell` on the already subsampled, standardised pixels (:func:`_grid_of`)."""
    grid = grid_rgb.astype(np.int16)
    stain = grid[..., 2] - grid[..., 0]
    if stain.max() - stain.min() < 8:
        return None
    mask = stain > _otsu(stain)
    closed = mask
    for _ in range(_CLOSING):
        closed = _dilate(closed)
    rows, cols = np.nonzero(closed)
    if len(rows) == 0:
        return None
    centre_row, centre_col = (grid.shape[0] - 1) / 2, (grid.shape[1] - 1) / 2
    nearest = int(np.argmin((rows - centre_row) ** 2 + (cols - centre_col) ** 2))
    seed = np.zeros_like(closed)
    seed[rows[nearest], cols[nearest]] = True
    region = _region_from(seed, closed) & mask
    rows, cols = np.nonzero(region)
    if len(rows) < 4:
        return None
    top, bottom = _percentile(rows, 1), _percentile(rows, 99)  # np.nonzero gives rows in order
    cols = np.sort(cols)
    left, right = _percentile(cols, 1), _percentile(cols, 99)
    size = (max(bottom - top, right - left) + 1) * _GRID
    return CellBox(x=(left + right) / 2 * _GRID + _GRID // 2, y=(top + bottom) / 2 * _GRID + _GRID // 2, size=size)


def _percentile(ordered: np.ndarray, percentile: float) -> float:
    """``np.percentile(ordered, percentile)`` (linear interpolation) of sorted integers, to the last bit, without
    its overhead (this runs for every cell)."""
    position = (len(ordered) - 1) * (percentile / 100.0)
    below = int(position // 1)
    weight = position - below
    low, high = int(ordered[below]), int(ordered[min(below + 1, len(ordered) - 1)])
    step = high - low
    return high - step * (1 - weight) if weight >= 0.5 else low + step * weight


def _crop_window(centre: float, side: int, length: int) -> int:
    """Start of a window of ``side`` pixels centred on ``centre`` and shifted to lie inside ``[0, length)``."""
    return int(np.clip(round(centre - side / 2), 0, length - side))


def cell_view(rgb: np.ndarray, context: float) -> np.ndarray:
    """``uint8 (S, S, 3)``: the stain-standardised square crop centred on the white cell.

    Args:
        rgb: A decoded image, ``uint8 (H, W, 3)``.
        context: Crop side as a multiple of the cell's larger side (2.0: the cell fills half of the view).
    """
    rgb = np.ascontiguousarray(rgb)
    tables = stain_tables(rgb)  # standardising only the location grid and the crop gives the same pixels
    height, width = rgb.shape[:2]
    shorter = min(height, width)
    box = _locate_on_grid(_apply_tables(_grid_of(rgb), tables))
    if box is None:
        side, x, y = shorter, width / 2, height / 2
    else:
        side = int(np.clip(round(box.size * context), round(MIN_CROP_SHARE * shorter), shorter))
        x, y = box.x, box.y
    top, left = _crop_window(y, side, height), _crop_window(x, side, width)
    return _apply_tables(np.ascontiguousarray(rgb[top : top + side, left : left + side]), tables)
