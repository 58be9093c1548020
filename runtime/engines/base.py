"""What every inference engine offers hema: load an exported model, read its card, run a batch of cells."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from hema.runtime.card import ModelCard

__all__ = [
    "IMAGE_INPUT",
    "PROBABILITIES_OUTPUT",
    "EMBEDDING_OUTPUT",
    "NOVELTY_OUTPUT",
    "Engine",
    "ModelError",
    "parse_card",
]

IMAGE_INPUT = "image"
PROBABILITIES_OUTPUT = "probabilities"
EMBEDDING_OUTPUT = "embedding"
NOVELTY_OUTPUT = "novelty"  # 1 - cosine similarity to the nearest training-class centroid


class ModelError(RuntimeError):
    """The model cannot be used: missing, unreadable, without a hema model card, or its engine is absent."""


def parse_card(text: str | None, path: Path) -> ModelCard:
    """The card a model artifact carries, or :class:`ModelError` naming the file."""
    if text is None:
        raise ModelError(f"{path} carries no hema model card: export it with hema-export")
    try:
        return ModelCard.from_json(text)
    except ValueError as error:
        raise ModelError(f"{path}: {error}") from error


class Engine(ABC):
    """A loaded hema model on one inference engine.

    Attributes:
        backend: The engine's name on the command line (``onnxruntime``, ``openvino``, ``tensorrt``).
        path: The artifact the model was loaded from.
        card: The model card it carries.
        output_names: The graph outputs: ``probabilities``, ``embedding`` and (models exported with review
            flags) ``novelty`` for a classifier.
        loaded_sha256: Hex sha256 of the bytes the engine loaded, by file suffix (``{".xml": ..., ".bin": ...}``):
            the bytes checked against the manifest, never read again. ``None`` for an engine that did not load an
            artifact's files.
        passed_over: Faster artifacts ``--backend auto`` found beside the model and did not run, each with why
            (:mod:`hema.runtime.engines.auto_choice`).
    """

    backend: ClassVar[str]
    path: Path
    card: ModelCard
    output_names: tuple[str, ...]
    loaded_sha256: Mapping[str, str] | None = None
    passed_over: tuple[str, ...] = ()

    def require_classifier(self) -> None:
        """Raise :class:`ModelError` unless the model outputs class probabilities (not a backbone-only export)."""
        if PROBABILITIES_OUTPUT not in self.output_names:
            raise ModelError(f"{self.path} is a backbone-only model (no class probabilities): export a classifier")

    @abstractmethod
    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Run a batch.

        Args:
            images: ``uint8`` array ``(batch, height, width, 3)``, RGB, resized as the card says.

        Returns:
            Every graph output by name as ``float32``: ``probabilities`` ``(batch, classes)``, ``embedding``
            ``(batch, dim)`` and, when the model has it, ``novelty`` ``(batch,)`` for a classifier; only
            ``embedding`` for a backbone-only export.
        """

    def describe(self) -> str:
        """One line for logs and reports: engine and settings."""
        return self.backend
