"""Export: one self-contained ONNX file, then OpenVINO IR and TensorRT engines."""
