"""The pictures the review page shows: a large JPEG thumbnail per cell, and the image at full size as PNG.

Only images that ``cells.csv`` lists are ever served, by row number, never by a path the browser sends; each is
opened as the model opens it (:func:`~hema.runtime.preprocessing.open_cell_image`: cell image formats only, size
checked before decoding), made 8-bit RGB by the model's rule, and encoded again: the gallery's thumbnails by
:func:`~hema.runtime.reports.thumbnails.thumbnail_data_uri`, the full size losslessly (PNG: the pixels as decoded,
to judge morphology: :func:`full_size_png`), so no file's bytes are ever sent as they are. A cell whose image has gone
is shown from the thumbnail that ``RUN_DIR/report.html`` saved of it (:func:`saved_thumbnails`), when there is one.
"""

from __future__ import annotations

import base64
import io
import threading
from collections import OrderedDict
from collections.abc import Collection
from html.parser import HTMLParser
from pathlib import Path

from PIL import Image

from hema.runtime.preprocessing import open_cell_image, to_eight_bit, to_rgb
from hema.runtime.reports.run_output import HTML_NAME
from hema.runtime.reports.thumbnails import thumbnail_data_uri
from hema.runtime.verification.run_table import Cell, RunTable

__all__ = ["FULL_SIZE", "GALLERY_SIZE", "CellImages", "full_size_png", "saved_thumbnails"]

GALLERY_SIZE = 180
"""Longest side of a gallery thumbnail in pixels (PBC's cells are 360 pixels: JPEG draft decodes them at 1/2)."""
FULL_SIZE = 4096
"""Longest side of the image shown at full size (larger images are shrunk to it)."""
_GALLERY_QUALITY = 85
_CACHED = 8192
"""Gallery thumbnails kept in memory (about 10 KB each)."""
_JPEG_URI = "data:image/jpeg;base64,"


class _FigureThumbnails(HTMLParser):
    """Collects ``path -> data URI`` from report.html's ``<figure class="cell">`` (image, then file title)."""

    def __init__(self, wanted: Collection[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.wanted = wanted
        self.found: dict[str, str] = {}
        self._source: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "figure" and "cell" in classes:
            self._source = None
        elif tag == "img" and "cell" in classes:
            self._source = attributes.get("src")
        elif tag == "span" and "file" in classes and self._source and self._source.startswith(_JPEG_URI):
            title = attributes.get("title") or ""
            if title in self.wanted:
                self.found[title] = self._source


def saved_thumbnails(report: Path, paths: Collection[str]) -> dict[str, bytes]:
    """The JPEG thumbnails that ``report.html`` holds of the cells ``paths`` (``{}`` without a readable page)."""
    if not paths:
        return {}
    try:
        text = report.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    parser = _FigureThumbnails(set(paths))
    parser.feed(text)
    saved = {}
    for path, uri in parser.found.items():
        try:
            saved[path] = base64.b64decode(uri[len(_JPEG_URI) :], validate=True)
        except ValueError:
            continue
    return saved


def full_size_png(path: Path, longest: int) -> bytes | None:
    """The image as 8-bit RGB PNG (lossless), its longer side shrunk to at most ``longest`` pixels; ``None`` if it
    cannot be decoded."""
    try:
        with open_cell_image(path) as image:
            rgb = to_rgb(to_eight_bit(image))
            rgb.thumbnail((longest, longest), Image.Resampling.BILINEAR, reducing_gap=2.0)  # only ever shrinks
            rgb.load()  # decoded while the file is open, even when nothing was shrunk
        buffer = io.BytesIO()
        rgb.save(buffer, "PNG", compress_level=1)
    except Exception:  # any decoder failure: no picture, never a failed request
        return None
    return buffer.getvalue()


class CellImages:
    """Pictures of each cell of a run, made on demand; the last few thousand gallery thumbnails are kept.

    Args:
        table: The run.
    """

    def __init__(self, table: RunTable) -> None:
        self._cells = table.cells
        self._saved = saved_thumbnails(table.run_dir / HTML_NAME, {cell.path for cell in table.missing})
        self._cache: OrderedDict[int, bytes | None] = OrderedDict()
        self._lock = threading.Lock()

    def has_saved(self, cell: Cell) -> bool:
        """Whether ``report.html`` saved a thumbnail of ``cell`` (shown when its image has gone)."""
        return cell.path in self._saved

    def thumbnail(self, cell_id: int) -> bytes | None:
        """The cell's gallery thumbnail (JPEG), or the saved one when its image has gone; ``None`` if neither."""
        with self._lock:
            if cell_id in self._cache:
                self._cache.move_to_end(cell_id)
                return self._cache[cell_id]
        cell = self._cells[cell_id]
        made = None
        if cell.image is not None:
            uri = thumbnail_data_uri(cell.image, GALLERY_SIZE, _GALLERY_QUALITY)
            made = base64.b64decode(uri[len(_JPEG_URI) :]) if uri else None
        made = made or self._saved.get(cell.path)
        with self._lock:
            self._cache[cell_id] = made
            while len(self._cache) > _CACHED:
                self._cache.popitem(last=False)
        return made

    def full_size(self, cell_id: int) -> tuple[bytes, str] | None:
        """The cell's image at full size and its media type: PNG, or the saved JPEG thumbnail when it has gone."""
        cell = self._cells[cell_id]
        picture = None if cell.image is None else full_size_png(cell.image, FULL_SIZE)
        if picture is not None:
            return picture, "image/png"
        saved = self._saved.get(cell.path)
        return None if saved is None else (saved, "image/jpeg")
