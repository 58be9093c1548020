"""Inference engines behind one interface (ONNX Runtime, OpenVINO, TensorRT) and how one is picked."""

from hema.runtime.engines.backends import BACKENDS, open_engine
from hema.runtime.engines.base import Engine, ModelError
from hema.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

__all__ = ["BACKENDS", "Engine", "ModelError", "OnnxRuntimeEngine", "open_engine"]
