"""The pieces of the fused ONNX file: backbone and head graphs, the novelty score, fusion with the card, parity."""

from hema.export.graph.fuse import attach_card, fuse_backbone_and_head, read_card
from hema.export.graph.parity import ParityError, check_parity

__all__ = ["ParityError", "attach_card", "check_parity", "fuse_backbone_and_head", "read_card"]
