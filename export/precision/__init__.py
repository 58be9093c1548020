"""Reduced-precision artifacts (OpenVINO IR, INT8, TensorRT), each compared with FP32 on real cells before it is
written."""

from hema.export.precision.agreement import AgreementError, compare_models
from hema.export.precision.reduced_precision import ReducedPrecisionExport, export_onnx_int8

__all__ = ["AgreementError", "ReducedPrecisionExport", "compare_models", "export_onnx_int8"]
