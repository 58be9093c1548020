"""The manifest written beside every exported artifact: the sha256 of its files, checked before loading.

A model copied to a workstation can arrive truncated, or be changed after export. hema refuses such a model
before classifying a single cell. The manifest is ``<artifact>.manifest.json`` (``hema-default.onnx.manifest.json``)
and lists every file the artifact consists of (an OpenVINO IR is an ``.xml`` and a ``.bin``) by suffix, so an
artifact renamed together with its manifest still verifies. For a TensorRT
engine, which has no room for metadata, the manifest also carries the model card.

:func:`read_artifact` reads each file of an artifact once into memory, checks those bytes, and the engine is given
the very same bytes: nothing is read again between the check and the load. A manifest that does not list a file
the engine would load (the model itself, an IR's ``.bin``) is refused, and so is an ONNX model that keeps tensors
in other files (ONNX external data): hema's models are single self-contained files.

The manifest is an integrity check, not a signature: it catches a damaged copy or a file changed by mistake, but
whoever can change the model can write a matching manifest beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hema.runtime.engines.base import ModelError
from hema.runtime.onnx_external_data import references_external_data

__all__ = [
    "MANIFEST_SUFFIX",
    "ArtifactFiles",
    "Manifest",
    "artifact_suffixes",
    "file_sha256",
    "manifest_path",
    "read_artifact",
    "read_manifest",
    "verify_artifact",
    "write_manifest",
]

MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_SCHEMA_VERSION = 1
_SUFFIX = re.compile(r"\.[A-Za-z0-9_-]+")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


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


def artifact_suffixes(artifact: Path) -> tuple[str, ...]:
    """The files an engine loads for ``artifact``, by suffix: itself, and the weights beside an OpenVINO ``.xml``."""
    return (artifact.suffix, ".bin") if artifact.suffix.lower() == ".xml" else (artifact.suffix,)


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


@dataclass(frozen=True)
class ArtifactFiles:
    """The bytes of a model artifact, read once, and what they were checked against.

    Attributes:
        path: The artifact (``.onnx``, OpenVINO ``.xml``, TensorRT ``.engine``).
        files: The bytes of each of its files, by suffix (``{".xml": ..., ".bin": ...}``): what the engine loads.
        sha256: Hex sha256 of those bytes, by suffix.
        manifest: The manifest they were checked against; ``None`` when they were not checked.
    """

    path: Path
    files: Mapping[str, bytes]
    sha256: Mapping[str, str]
    manifest: Manifest | None = None

    @property
    def model(self) -> bytes:
        """The bytes of the artifact's own file."""
        return self.files[self.path.suffix]

    @property
    def weights(self) -> bytes:
        """The bytes of an OpenVINO IR's ``.bin``."""
        return self.files[".bin"]


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


def _file_entry(suffix: object, entry: object) -> tuple[str, dict[str, Any]] | str:
    """A valid ``files`` entry as ``(suffix, {"sha256", "bytes"})``, or what is wrong with it."""
    if not isinstance(suffix, str) or not _SUFFIX.fullmatch(suffix):
        return f"{suffix!r} is not a file suffix such as '.onnx'"
    if not isinstance(entry, dict):
        return f"files[{suffix!r}] is not an object"
    sha256, size = entry.get("sha256"), entry.get("bytes")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        return f"files[{suffix!r}]['sha256'] is not 64 hexadecimal digits"
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return f"files[{suffix!r}]['bytes'] is not a whole number of bytes"
    return suffix, {"sha256": sha256.lower(), "bytes": size}


def _parse_manifest(data: bytes, path: Path) -> Manifest:
    """The manifest in ``data`` (the bytes of ``path``), checked for every key and type this runtime relies on."""

    def malformed(detail: str) -> ModelError:
        return ModelError(f"the model manifest {path} is malformed ({detail}): re-export the model with hema-export")

    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError, JSONDecodeError, absurdly deep nesting
        raise malformed(f"not UTF-8 JSON: {error}") from error
    if not isinstance(raw, dict):
        raise malformed(f"a JSON {type(raw).__name__}, not an object")
    version = raw.get("schema_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise malformed(f"schema_version {version!r} is not an integer")
    if version > MANIFEST_SCHEMA_VERSION:
        raise ModelError(
            f"the model manifest {path} is newer than this hema reads (schema {version}, this hema reads "
            f"{MANIFEST_SCHEMA_VERSION}): upgrade hema"
        )
    artifact_format, files, card, details = (raw.get(key) for key in ("format", "files", "card", "details"))
    if not isinstance(artifact_format, str) or not artifact_format:
        raise malformed("no 'format' text")
    if not isinstance(files, dict):
        raise malformed("no 'files' object of file suffix to sha256 and bytes")
    entries = [_file_entry(suffix, entry) for suffix, entry in files.items()]
    problems = [entry for entry in entries if isinstance(entry, str)]
    if problems:
        raise malformed("; ".join(problems))
    for key, value in (("card", card), ("details", details)):
        if value is not None and not isinstance(value, dict):
            raise malformed(f"'{key}' is not an object")
    listed = dict(entry for entry in entries if isinstance(entry, tuple))
    return Manifest(artifact_format, listed, json.dumps(card) if card else None, details)


def read_manifest(artifact: Path) -> Manifest | None:
    """The manifest of ``artifact``, or ``None`` when there is none.

    Raises:
        ModelError: If the manifest exists but cannot be read, or is malformed (bad JSON, wrong types, missing
            keys).
    """
    path = manifest_path(artifact)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ModelError(f"cannot read the model manifest {path}: {error}") from error
    return _parse_manifest(data, path)


def _read_file(path: Path, manifest_name: str | None) -> bytes:
    """The bytes of one file of an artifact (listed in the manifest ``manifest_name``, if any), read once."""
    if not path.is_file():
        raise ModelError(f"model file {path}{f' listed in {manifest_name}' if manifest_name else ''} is missing")
    try:
        return path.read_bytes()
    except OSError as error:
        raise ModelError(f"cannot read model file {path}: {error}") from error


def _check_file(path: Path, data: bytes, sha256: str, expected: dict[str, Any]) -> None:
    """Compare the bytes read from ``path`` with its manifest entry."""
    if len(data) != expected["bytes"]:
        raise ModelError(
            f"model file {path} is {len(data)} bytes, the export wrote {expected['bytes']}: the copy is damaged "
            "(truncated?); copy it again"
        )
    if sha256 != expected["sha256"]:
        raise ModelError(f"model file {path} was changed after export (sha256 differs): refusing to run it")


def _refuse_onnx_external_data(artifact: Path, model: bytes) -> None:
    try:
        external = references_external_data(model)
    except ValueError as error:
        raise ModelError(f"cannot load model {artifact}: not a well-formed ONNX file ({error})") from error
    if external:
        raise ModelError(
            f"{artifact} keeps tensors in ONNX external data (files beside it that its manifest does not check): "
            "hema runs only self-contained models; save it as one file (onnx.save without save_as_external_data)"
        )


def read_artifact(artifact: Path, verify: bool = True) -> ArtifactFiles:
    """Read every file of ``artifact`` once into memory, check it, and return the bytes an engine must load.

    Args:
        artifact: ``.onnx``, OpenVINO ``.xml`` (its ``.bin`` is read too) or TensorRT ``.engine`` file.
        verify: Check the bytes against the artifact's manifest (size and sha256 of every file it lists).

    Raises:
        ModelError: If a file is missing or unreadable; an ONNX model keeps tensors in external data or is not
            well-formed; or, with ``verify``: the manifest is missing or malformed, does not list a file the engine
            loads, or a size or sha256 differs (a truncated copy, a changed file).
    """
    artifact = Path(artifact)
    suffixes = loaded = artifact_suffixes(artifact)
    manifest = read_manifest(artifact) if verify else None
    if verify:
        name = manifest_path(artifact).name
        if manifest is None:
            raise ModelError(
                f"{artifact} has no manifest ({name}), so its integrity cannot be checked: "
                "re-export it with hema-export, or pass --unverified to run it anyway"
            )
        unlisted = [suffix for suffix in suffixes if suffix not in manifest.files]
        if unlisted:
            raise ModelError(
                f"the manifest {name} does not list the model file {artifact.with_suffix(unlisted[0]).name}, which "
                "would be loaded unchecked: refusing the model; re-export it with hema-export"
            )
        suffixes = (*loaded, *(suffix for suffix in manifest.files if suffix not in loaded))  # all listed are checked
    files, sha256 = {}, {}
    for suffix in suffixes:
        path = artifact.with_suffix(suffix)
        data = _read_file(path, manifest_path(artifact).name if manifest is not None else None)
        digest = hashlib.sha256(data).hexdigest()
        if manifest is not None:
            _check_file(path, data, digest, manifest.files[suffix])
        if suffix in loaded:
            files[suffix], sha256[suffix] = data, digest
    if artifact.suffix.lower() == ".onnx":
        _refuse_onnx_external_data(artifact, files[artifact.suffix])
    return ArtifactFiles(artifact, files, sha256, manifest)


def verify_artifact(artifact: Path) -> Manifest:
    """Check every file of ``artifact`` against its manifest (see :func:`read_artifact`).

    To run the model, load the bytes :func:`read_artifact` returns instead: a file read again after this check
    may have changed meanwhile.

    Raises:
        ModelError: If the manifest is missing or malformed, does not list the artifact's files, a file is
            missing, or a size or sha256 differs (a truncated copy, a changed file).
    """
    return cast(Manifest, read_artifact(artifact).manifest)  # read_artifact refuses an artifact without one
