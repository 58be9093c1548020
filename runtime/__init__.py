"""The lean runtime: numpy, Pillow and ONNX Runtime. Never imports torch or scikit-learn."""

from hema.runtime.card import CARD_METADATA_KEY, InputSpec, ModelCard
from hema.runtime.classify import CellResult, classify_files
from hema.runtime.default_model import DEFAULT_MODEL_PATH, resolve_model_path
from hema.runtime.discovery import find_cell_images
from hema.runtime.engines.backends import BACKENDS, open_engine
from hema.runtime.engines.base import Engine, ModelError
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine
from hema.runtime.manifest import verify_artifact, write_manifest
from hema.runtime.preprocessing import load_cell_image, resize_cell_image

__all__ = [
    "BACKENDS",
    "Engine",
    "CARD_METADATA_KEY",
    "DEFAULT_MODEL_PATH",
    "CellResult",
    "InputSpec",
    "ModelCard",
    "ModelError",
    "OnnxRuntimeEngine",
    "classify_files",
    "find_cell_images",
    "load_cell_image",
    "open_engine",
    "resize_cell_image",
    "resolve_model_path",
    "verify_artifact",
    "write_manifest",
]
