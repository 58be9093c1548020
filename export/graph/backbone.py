"""A torch :class:`~hema.train.backbones.cell_backbone.CellBackbone` as an ONNX graph: ``uint8`` image in, embedding
out."""

from __future__ import annotations

import io
import warnings

import onnx
import torch

from hema.runtime.engines.base import EMBEDDING_OUTPUT, IMAGE_INPUT
from hema.train.backbones.cell_backbone import CellBackbone

__all__ = ["IR_VERSION", "OPSET", "backbone_to_onnx"]

OPSET = 17
IR_VERSION = 8  # what ONNX Runtime, OpenVINO and TensorRT 10 all read for opset 17


def backbone_to_onnx(backbone: CellBackbone) -> onnx.ModelProto:
    """Trace the backbone (normalisation included) into ONNX with a dynamic batch dimension.

    The graph's input ``image`` is ``uint8 (batch, size, size, 3)`` RGB; its output ``embedding`` is
    ``float32 (batch, dim)``. BatchNorm is folded into the convolutions (eval mode, constant folding).
    """
    size = backbone.info.image_size
    example = torch.zeros(2, size, size, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            backbone.eval().cpu(),
            (example,),
            buffer,
            dynamo=False,
            input_names=[IMAGE_INPUT],
            output_names=[EMBEDDING_OUTPUT],
            dynamic_axes={IMAGE_INPUT: {0: "batch"}, EMBEDDING_OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    return model
