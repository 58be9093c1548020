"""Classify many cell images in batches without losing any of them.

Images are decoded one batch ahead of the engine (:mod:`hema.runtime.batches`). Every input file yields
exactly one :class:`CellResult`, in input order: an image that cannot be decoded, or for which the model answers
NaN or infinity (:data:`NOT_FINITE`), gets ``status="error"`` and the reason, and the rest of the batch is
classified as usual. A classified cell carries the reason to review it
(:class:`~hema.runtime.review.ReviewPolicy`, from the model card), empty when none applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hema.runtime.batches import decoded_batches
from hema.runtime.discovery import slide_name
from hema.runtime.engines.base import PROBABILITIES_OUTPUT, Engine
from hema.runtime.review import ReviewPolicy

__all__ = ["NOT_FINITE", "CellResult", "classify_files", "slide_of"]

NOT_FINITE = "model output not finite"
"""The error of a cell whose probabilities, embedding or novelty hold NaN or infinity: it has no trustworthy class."""


@dataclass(frozen=True)
class CellResult:
    """The outcome for one input file.

    Attributes:
        path: The file.
        slide: The slide the file belongs to: its folder's path relative to the input folder it was found in
            (:func:`hema.runtime.discovery.slide_name`; one folder per slide in a CellaVision export).
        status: ``"ok"`` or ``"error"``.
        label: Most probable class (empty on error).
        confidence: Probability of ``label`` (NaN on error).
        probabilities: Probability of every class in the model's class order (``None`` on error).
        error: Why the file could not be classified (empty when ok).
        review: Why a hematologist should look at this cell (empty when the model is sure of it).
    """

    path: Path
    slide: str
    status: str
    label: str = ""
    confidence: float = float("nan")
    probabilities: np.ndarray | None = None
    error: str = ""
    review: str = ""


def slide_of(path: Path) -> str:
    """The slide of a file named directly, not found in an input folder: named like the folder it lies in.

    The one definition of slide identity is :func:`hema.runtime.discovery.slide_name`; files found in an input
    folder get theirs from :attr:`hema.runtime.discovery.InputFiles.slides`.
    """
    return slide_name(path.parent)


def classify_files(
    engine: Engine,
    files: Sequence[Path],
    *,
    batch_size: int = 32,
    decode_threads: int = 1,
    slides: Mapping[Path, str] | None = None,
    unreadable: Mapping[Path, str] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[CellResult]:
    """Classify files in batches, yielding one result per file in input order.

    Args:
        engine: A loaded classifier model.
        files: Image files.
        slides: The slide of every file (:attr:`hema.runtime.discovery.InputFiles.slides`). Without it, every file
            is taken as named directly (:func:`slide_of`).
        unreadable: Files known to be unreadable without opening them, with the reason (folders that cannot be
            listed, named pipes, sockets: :attr:`hema.runtime.discovery.InputFiles.unreadable`). Each gets an
            error row in its place and is never opened.
        batch_size: Images per engine call.
        decode_threads: Threads decoding images.
        on_batch: Called with the number of files decoded after each batch (for progress bars).

    Raises:
        ModelError: If the model is a backbone-only export (raised when the first result is asked for).
    """
    engine.require_classifier()
    unreadable = unreadable or {}

    def slide(path: Path) -> str:
        return slides[path] if slides is not None else slide_of(path)

    decodable = [path for path in files if path not in unreadable]
    with closing(_classify_decodable(engine, decodable, slide, batch_size, decode_threads, on_batch)) as classified:
        for path in files:
            if path in unreadable:
                yield CellResult(path, slide(path), "error", error=unreadable[path])
            else:
                yield next(classified)


def _classify_decodable(
    engine: Engine,
    files: Sequence[Path],
    slide: Callable[[Path], str],
    batch_size: int,
    decode_threads: int,
    on_batch: Callable[[int], None] | None,
) -> Iterator[CellResult]:
    """:func:`classify_files` for files that may be opened."""
    class_names = engine.card.class_names
    policy = ReviewPolicy.from_card(engine.card, engine.output_names)
    for batch, images in decoded_batches(
        files, engine.card.input, batch_size=batch_size, decode_threads=decode_threads
    ):
        yield from _classify_batch(engine, batch, [slide(path) for path in batch], images, class_names, policy)
        if on_batch is not None:
            on_batch(len(batch))


def _unusable_rows(outputs: Mapping[str, np.ndarray], rows: int, classes: int) -> list[str]:
    """Why each row of an engine's outputs cannot be reported (``""`` for a usable row).

    Every output must have one entry per image and the probabilities one column per class (a model whose shapes are
    only known at run time is checked here, the rest when it is loaded); a row with NaN or infinity in any output
    is :data:`NOT_FINITE`.
    """
    probabilities = outputs[PROBABILITIES_OUTPUT]
    shapes = {name: np.shape(value) for name, value in outputs.items()}
    if (
        np.ndim(probabilities) != 2
        or probabilities.shape != (rows, classes)
        or any(not shape or shape[0] != rows for shape in shapes.values())
    ):
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        return [f"model output has the wrong shape ({described}) for {rows} images of {classes} classes"] * rows
    finite = np.ones(rows, dtype=bool)
    for value in outputs.values():
        finite &= np.isfinite(np.asarray(value)).reshape(rows, -1).all(axis=1)
    return ["" if ok else NOT_FINITE for ok in finite]


def _classify_batch(
    engine: Engine,
    batch: Sequence[Path],
    slides: Sequence[str],
    images: list[np.ndarray | str],
    class_names: tuple[str, ...],
    policy: ReviewPolicy,
) -> Iterator[CellResult]:
    """Run the decodable images of one batch through the engine; the others become error rows."""
    good = [index for index, image in enumerate(images) if isinstance(image, np.ndarray)]
    row_of = {index: row for row, index in enumerate(good)}
    outputs = engine.run(np.stack([images[index] for index in good])) if good else {}
    unusable = _unusable_rows(outputs, len(good), len(class_names)) if good else []
    reviews = policy.reasons(outputs) if good and not all(unusable) else [""] * len(good)
    for index, (path, slide) in enumerate(zip(batch, slides)):
        if index in row_of and unusable[row_of[index]]:
            yield CellResult(path, slide, "error", error=unusable[row_of[index]])
        elif index in row_of:
            p = outputs[PROBABILITIES_OUTPUT][row_of[index]]
            best = int(np.argmax(p))
            yield CellResult(path, slide, "ok", class_names[best], float(p[best]), p, review=reviews[row_of[index]])
        else:
            yield CellResult(path, slide, "error", error=str(images[index]))
