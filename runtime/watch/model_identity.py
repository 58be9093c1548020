"""Which model wrote a watch journal: the sha256 of the model's files and its class names.

A journal resumed with another model would mix two models' results in one differential, and a retrained model
usually keeps the class names, so the names alone cannot tell two models apart: the bytes do. Every file the
artifact consists of is hashed (an OpenVINO IR's weights are in the ``.bin`` beside its ``.xml``). The path is
kept only to name the model in messages: a model copied elsewhere is still the same model. The bytes hashed are
those the engine loaded (and checked against the manifest), not a second read of the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hema.runtime.engines.base import Engine
from hema.runtime.manifest import file_sha256

__all__ = ["JOURNAL_FORMAT", "ModelIdentity"]

JOURNAL_FORMAT = 1
"""The ``hema_journal`` value of the header line this hema writes and reads."""


def _artifact_files(artifact: Path) -> list[Path]:
    """The files a model artifact consists of: itself, and the weights beside an OpenVINO ``.xml``."""
    weights = artifact.with_suffix(".bin")
    return [artifact, weights] if artifact.suffix.lower() == ".xml" and weights.is_file() else [artifact]


@dataclass(frozen=True)
class ModelIdentity:
    """A model as a journal records it.

    Attributes:
        path: Where the model was loaded from (for messages; not compared).
        sha256: Hex sha256 of each file of the artifact, by suffix (``{".onnx": "9f2c..."}``).
        class_names: The model's classes, in output order.
    """

    path: str
    sha256: Mapping[str, str]
    class_names: tuple[str, ...]

    @classmethod
    def of_engine(cls, engine: Engine) -> ModelIdentity:
        """The identity of the model a loaded engine runs: the sha256 of the bytes it loaded.

        An engine that does not record them (one not loaded from an artifact's files) has its files read and hashed.
        """
        sha256 = engine.loaded_sha256
        if sha256 is None:
            sha256 = {path.suffix: file_sha256(path) for path in _artifact_files(engine.path)}
        return cls(str(engine.path), dict(sha256), engine.card.class_names)

    @classmethod
    def from_header(cls, header: Mapping[str, Any]) -> ModelIdentity | None:
        """The identity a journal header records, or ``None`` if the header does not hold one."""
        sha256, class_names = header.get("model_sha256"), header.get("class_names")
        if not isinstance(sha256, dict) or not isinstance(class_names, list):
            return None
        return cls(str(header.get("model", "")), dict(sha256), tuple(map(str, class_names)))

    def header(self) -> dict[str, Any]:
        """The journal's first line (JSON-ready)."""
        return {
            "hema_journal": JOURNAL_FORMAT,
            "model": self.path,
            "model_sha256": dict(self.sha256),
            "class_names": list(self.class_names),
        }

    def same_model(self, other: ModelIdentity) -> bool:
        """Whether both are the same bytes with the same classes (wherever each was loaded from)."""
        return dict(self.sha256) == dict(other.sha256) and self.class_names == other.class_names

    def describe(self) -> str:
        """One line naming the model: its path, the start of each sha256 and its classes."""
        digests = ", ".join(f"{suffix} sha256 {digest[:12]}" for suffix, digest in self.sha256.items())
        return f"{self.path} ({digests}; classes {', '.join(self.class_names)})"
