"""Inference engines behind one interface (ONNX Runtime, OpenVINO, TensorRT) and how one is picked."""

from hema.runtime.engines.backends import BACKENDS, open_engine
from hema.runtime.engines.base import Engine, ModelError

__all__ = ["BACKENDS", "Engine", "ModelError", "open_engine"]
