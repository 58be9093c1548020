"""The reduced-precision targets and the precisions each accepts: one table for the command line and the builders.

Torch- and onnx-free, so that ``hema-export --help`` shows and enforces the choices without loading them.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["OPENVINO_PRECISIONS", "TENSORRT_PRECISIONS", "OpenVinoPrecision", "TensorRtPrecision"]

OpenVinoPrecision = Literal["fp32", "fp16", "int8"]
OPENVINO_PRECISIONS = get_args(OpenVinoPrecision)
"""OpenVINO IR: FP32, FP16 weights (computed in f32 on CPUs), INT8 from hema's Q/DQ model."""

TensorRtPrecision = Literal["fp16", "int8"]
TENSORRT_PRECISIONS = get_args(TensorRtPrecision)
"""TensorRT engines, built on the NVIDIA GPU they will run on."""
