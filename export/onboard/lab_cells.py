"""A lab's cells through the base model: embeddings, probabilities and novelty, unreadable files counted.

Onboarding reads a lab's own exports, which may hold anything an analyser's folder holds: every file the
runtime would classify is decoded as the runtime decodes it (:func:`hema.runtime.batches.decoded_batches`), and a
file that cannot be decoded is skipped and counted with its reason, never a crash.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hema.runtime.batches import decoded_batches
from hema.runtime.discovery import find_cell_images
from hema.runtime.engines.base import EMBEDDING_OUTPUT, NOVELTY_OUTPUT, PROBABILITIES_OUTPUT, Engine

__all__ = ["EmbeddedCells", "LabelledFolder", "embed_cells", "read_labelled_folder"]


@dataclass(frozen=True)
class EmbeddedCells:
    """The readable cells of a set, through the base model, in file order.

    Attributes:
        paths: The readable files.
        embeddings: ``float32 (n, dim)``.
        probabilities: ``float32 (n, classes)`` of the base model.
        novelty: ``float32 (n,)`` of the base model (NaN where it has no novelty output).
        skipped: Unreadable file -> reason.
    """

    paths: tuple[Path, ...]
    embeddings: np.ndarray
    probabilities: np.ndarray
    novelty: np.ndarray
    skipped: dict[Path, str] = field(default_factory=dict)

    def skipped_reasons(self) -> dict[str, int]:
        """How many files were skipped for each reason."""
        return dict(Counter(self.skipped.values()))

    def subset(self, index: np.ndarray) -> EmbeddedCells:
        return EmbeddedCells(
            tuple(self.paths[i] for i in index),
            self.embeddings[index],
            self.probabilities[index],
            self.novelty[index],
        )


def embed_cells(
    engine: Engine,
    files: list[Path] | tuple[Path, ...],
    desc: str,
    *,
    unreadable: dict[Path, str] | None = None,
    batch_size: int = 32,
) -> EmbeddedCells:
    """Run the base model on ``files``; files that cannot be decoded are skipped with their reason.

    Args:
        unreadable: What discovery already found unreadable (folders that cannot be listed, FIFOs): counted as
            skipped and never opened.
    """
    kept: list[Path] = []
    skipped: dict[Path, str] = dict(unreadable or {})
    outputs: dict[str, list[np.ndarray]] = {EMBEDDING_OUTPUT: [], PROBABILITIES_OUTPUT: [], NOVELTY_OUTPUT: []}
    with tqdm(total=len(files), unit="cell", desc=desc, disable=None) as progress:
        for batch, images in decoded_batches(files, engine.card.input, batch_size=batch_size, decode_threads=2):
            readable = [i for i, image in enumerate(images) if not isinstance(image, str)]
            skipped.update({batch[i]: images[i] for i in range(len(batch)) if isinstance(images[i], str)})
            if readable:
                result = engine.run(np.stack([images[i] for i in readable]))
                kept.extend(batch[i] for i in readable)
                for name in (EMBEDDING_OUTPUT, PROBABILITIES_OUTPUT):
                    outputs[name].append(result[name])
                outputs[NOVELTY_OUTPUT].append(result.get(NOVELTY_OUTPUT, np.full(len(readable), np.nan, np.float32)))
            progress.update(len(batch))
    dim = engine.card.backbone.get("embedding_dim", 0)
    arrays = {
        name: np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, dim), np.float32)
        for name, chunks in outputs.items()
    }
    return EmbeddedCells(
        tuple(kept), arrays[EMBEDDING_OUTPUT], arrays[PROBABILITIES_OUTPUT], arrays[NOVELTY_OUTPUT], skipped
    )


@dataclass(frozen=True)
class LabelledFolder:
    """``LABELLED/<class>/**/<image>``: the image files, the class name of each, and what cannot be read."""

    files: tuple[Path, ...]
    class_names: tuple[str, ...]
    unreadable: dict[Path, str] = field(default_factory=dict)


def read_labelled_folder(folder: Path, model_classes: tuple[str, ...]) -> LabelledFolder:
    """The labelled cells of a lab, by class folder.

    Raises:
        ValueError: If ``folder`` is not a folder, has no class folders, or a class folder is not one of the
            model's classes (named, with the model's classes).
    """
    if not folder.is_dir():
        raise ValueError(f"--labelled {folder} is not a folder of class folders (LABELLED/<class>/<image>)")
    classes = sorted(child for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    unknown = [child.name for child in classes if child.name not in model_classes]
    if unknown:
        raise ValueError(
            f"--labelled {folder}: class folder(s) {', '.join(unknown)} are not classes of the model "
            f"({', '.join(model_classes)}); rename them or leave them out"
        )
    if not classes:
        raise ValueError(f"--labelled {folder} has no class folders (LABELLED/<class>/<image>)")
    files: list[Path] = []
    names: list[str] = []
    unreadable: dict[Path, str] = {}
    for child in classes:
        found = find_cell_images([child])
        files.extend(found.images)
        names.extend([child.name] * len(found.images))
        unreadable.update(found.unreadable)
    return LabelledFolder(tuple(files), tuple(names), unreadable)
