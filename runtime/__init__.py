"""The lean runtime: numpy, Pillow and ONNX Runtime. Never imports torch or scikit-learn.

An engine's package (onnxruntime, openvino, tensorrt) is imported only when a model is opened on it
(:func:`open_engine`), so that starting ``hema-infer`` pays for the one engine it runs.
"""

from hema.runtime.card import CARD_METADATA_KEY, InputSpec, ModelCard
from hema.runtime.classify import CellResult, classify_files
from hema.runtime.default_model import DEFAULT_MODEL_PATH, resolve_model_path
from hema.runtime.discovery import find_cell_images
from hema.runtime.engines.backends import BACKENDS, open_engine
from hema.runtime.engines.base import Engine, ModelError
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
    "classify_files",
    "find_cell_images",
    "load_cell_image",
    "open_engine",
    "resize_cell_image",
    "resolve_model_path",
    "verify_artifact",
    "write_manifest",
]
