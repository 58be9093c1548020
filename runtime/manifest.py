"""The manifest written beside every exported artifact: the sha256 of its files, checked before loading.

A model copied to a workstation can arrive truncated, or be changed after export. hema refuses such a model
before classifying a single cell. The manifest is ``<artifact>.manifest.json`` (``hema-default.onnx.manifest.json``)
and lists every file the artifact consists of (an OpenVINO IR is an ``.xml`` and a ``.bin``) by suffix, so an
artifact renamed together with its manifest still verifies. For a TensorRT
engine, which has no room for metadata, the manifest also carries the model card.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hema.runtime.engines.base import ModelError

__all__ = [
    "MANIFEST_SUFFIX",
    "Manifest",
    "file_sha256",
    "manifest_path",
    "read_manifest",
    "verify_artifact",
    "write_manifest",
]

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_SCHEMA_VERSION = 1


def manifest_path(artifact: Path) -> Path:
    """Where the manifest of ``artifact`` lies."""
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What an export recorded about its artifact.

    Attributes:
        format: ``onnx``, ``openvino`` or ``tensorrt``.
        files: Suffix of each file (beside the artifact, same stem) to ``{"sha256": ..., "bytes": ...}``.
        card: The model card as JSON text, for formats that cannot carry it themselves; else ``None``.
        details: Anything else the exporter recorded (precision, TensorRT version, calibration).
    """

    format: str
    files: dict[str, dict[str, Any]]
    card: str | None = None
    details: dict[str, Any] | None = None


def write_manifest(
    artifact: Path, format: str, files: list[Path], card: str | None = None, details: dict[str, Any] | None = None
) -> Path:
    """Hash ``files`` (``artifact`` and companions with its stem, e.g. the ``.bin``) and write the manifest.

    Returns:
        The manifest's path.
    """
    foreign = [path for path in files if path.parent != artifact.parent or path.stem != artifact.stem]
    if foreign:
        raise ValueError(f"manifest files must lie beside {artifact} with its stem: {foreign}")
    entry = {path.suffix: {"sha256": file_sha256(path), "bytes": path.stat().st_size} for path in files}
    document: dict[str, Any] = {"schema_version": MANIFEST_SCHEMA_VERSION, "format": format, "files": entry}
    if card is not None:
        document["card"] = json.loads(card)
    if details:
        document["details"] = details
    path = manifest_path(artifact)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(artifact: Path) -> Manifest | None:
    """The manifest of ``artifact``, or ``None`` when there is none.

    Raises:
        ModelError: If the manifest exists but cannot be read.
    """
    path = manifest_path(artifact)
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("schema_version", 0) > MANIFEST_SCHEMA_VERSION:
            raise ValueError(f"manifest schema {raw['schema_version']} is newer than this hema reads")
        card = raw.get("card")
        return Manifest(raw["format"], dict(raw["files"]), json.dumps(card) if card else None, raw.get("details"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelError(f"cannot read the manifest {path}: {error}") from error


def verify_artifact(artifact: Path) -> Manifest:
    """Check every file of ``artifact`` against its manifest.

    Raises:
        ModelError: If the manifest is missing, a file is missing, or a size or sha256 differs (a truncated
            copy, a changed file).
    """
    manifest = read_manifest(artifact)
    if manifest is None:
        raise ModelError(
            f"{artifact} has no manifest ({manifest_path(artifact).name}), so its integrity cannot be checked: "
            "re-export it with hema-export, or pass --unverified to run it anyway"
        )
    for suffix, expected in manifest.files.items():
        path = artifact.with_suffix(suffix)
        if not path.is_file():
            raise ModelError(f"model file {path} listed in {manifest_path(artifact).name} is missing")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise ModelError(
                f"model file {path} is {size} bytes, the export wrote {expected['bytes']}: the copy is damaged "
                "(truncated?); copy it again"
            )
        if file_sha256(path) != expected["sha256"]:
            raise ModelError(f"model file {path} was changed after export (sha256 differs): refusing to run it")
    return manifest
