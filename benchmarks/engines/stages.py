"""Where ``hema-infer classify`` spends its time per cell: file read, JPEG decode, resize, engine, CSV row.

Each stage is timed alone on one thread over the same real cells, with the engine ``hema-infer`` picks
(``auto``). Two things that could make the pipeline faster are measured beside it, not adopted: more decoding
threads, and JPEG draft mode (libjpeg decodes at 1/2 scale; this changes the pixels, so the model would have to
be trained and exported with the same path, and its answers are compared here with the exact path's).
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hema.runtime.batches import decoded_batches
from hema.runtime.classify import CellResult, slide_of
from hema.runtime.engines.base import PROBABILITIES_OUTPUT, Engine
from hema.runtime.preprocessing import resize_cell_image
from hema.runtime.reports.tables import CsvCellWriter

__all__ = ["decode_threads", "draft_mode", "stage_profile"]


def _ms_per_cell(seconds: float, cells: int) -> float:
    return 1000.0 * seconds / max(1, cells)


def _timed(step: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = step()
    return value, time.perf_counter() - start


def _decode(blobs: Sequence[bytes], draft: tuple[int, int] | None = None) -> list[Image.Image]:
    images = []
    for blob in blobs:
        image = Image.open(io.BytesIO(blob))
        if draft is not None:
            image.draft("RGB", draft)
        image.load()
        images.append(image)
    return images


def _run_engine(engine: Engine, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate(
        [
            engine.run(images[start : start + batch_size])[PROBABILITIES_OUTPUT]
            for start in range(0, len(images), batch_size)
        ]
    )


def stage_profile(paths: Sequence[Path], engine: Engine, batch_size: int = 32) -> dict[str, object]:
    """Milliseconds per cell of every stage, one thread each (the engine with its own threads).

    Returns:
        ``ms_per_cell`` by stage, their sum, and the exact images and answers (reused by :func:`draft_mode`).
    """
    spec = engine.card.input
    blobs, read = _timed(lambda: [path.read_bytes() for path in paths])
    decoded, decode = _timed(lambda: _decode(blobs))
    resized, resize = _timed(lambda: np.stack([resize_cell_image(image, spec) for image in decoded]))
    engine.run(resized[:batch_size])  # warm-up
    answers, inference = _timed(lambda: _run_engine(engine, resized, batch_size))
    names = engine.card.class_names
    with tempfile.TemporaryDirectory() as folder:
        results = [
            CellResult(path, slide_of(path), "ok", names[int(p.argmax())], float(p.max()), p)
            for path, p in zip(paths, answers)
        ]

        def write_csv() -> None:
            with CsvCellWriter(Path(folder) / "cells.csv", names) as writer:
                for result in results:
                    writer.write(result)

        _, csv = _timed(write_csv)
    stages = {"read": read, "decode": decode, "resize": resize, "engine": inference, "csv": csv}
    ms = {name: _ms_per_cell(seconds, len(paths)) for name, seconds in stages.items()}
    return {
        "cells": len(paths),
        "engine": engine.describe(),
        "batch_size": batch_size,
        "ms_per_cell": ms,
        "total_ms_per_cell": sum(ms.values()),
        "images": resized,
        "answers": answers,
    }


def decode_threads(paths: Sequence[Path], spec: object, workers: Sequence[int]) -> list[dict[str, float]]:
    """Cells/s of the runtime's decode-and-resize pipeline alone (:func:`decoded_batches`) per thread count."""
    found = []
    for count in workers:
        start = time.perf_counter()
        cells = sum(len(images) for _, images in decoded_batches(paths, spec, batch_size=32, decode_threads=count))
        found.append({"workers": count, "cells_per_s": cells / (time.perf_counter() - start)})
    return found


def draft_mode(
    paths: Sequence[Path], engine: Engine, exact_images: np.ndarray, exact_answers: np.ndarray
) -> dict[str, float]:
    """JPEG draft decoding at 1/2 scale, then the same resize: time, pixel change and change of answers."""
    spec = engine.card.input
    blobs = [path.read_bytes() for path in paths]
    half = (spec.width // 2, spec.height // 2)  # libjpeg picks the largest 1/n scale at least this big
    start = time.perf_counter()
    images = np.stack([resize_cell_image(image, spec) for image in _decode(blobs, half)])
    seconds = time.perf_counter() - start
    answers = _run_engine(engine, images, 32)
    difference = np.abs(images.astype(np.int16) - exact_images.astype(np.int16))
    return {
        "decode_resize_ms_per_cell": _ms_per_cell(seconds, len(paths)),
        "mean_abs_pixel_difference": float(difference.mean()),
        "max_abs_pixel_difference": int(difference.max()),
        "label_agreement_with_exact": float((answers.argmax(axis=1) == exact_answers.argmax(axis=1)).mean()),
        "answers": answers,
    }
