"""Reduced-precision artifacts (OpenVINO IR, INT8, TensorRT), each compared with FP32 on real cells before it is
written.

:mod:`.gate` (the thresholds), :mod:`.targets` (precisions per target), :mod:`.agreement` (the comparison),
:mod:`.reduced_precision` (check, then write; the ONNX Runtime INT8 export), :mod:`.int8_quantisation` and
:mod:`.onnx_int8` (NNCF Q/DQ), :mod:`.calibration_cells`, :mod:`.openvino_ir`, :mod:`.tensorrt_build`. Nothing is
imported here, so that ``hema-export --help`` loads neither onnx nor torch.
"""
