"""Where the embedded default model lives inside the installed package."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_MODEL_PATH", "resolve_model_path"]

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "models" / "hema-default.onnx"


def resolve_model_path(path: str | Path | None) -> Path:
    """The model the user asked for, or the embedded default model when ``path`` is ``None``."""
    return DEFAULT_MODEL_PATH if path is None else Path(path)
