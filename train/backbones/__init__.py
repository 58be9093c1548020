"""Backbones: timm models and EfficientNet-Lite0's ImageNet weights, local weight files, batched embeddings."""

from hema.train.backbones.cell_backbone import CellBackbone, create_backbone
from hema.train.backbones.weight_files import CheckpointMismatchError, read_backbone_weights

__all__ = ["CellBackbone", "CheckpointMismatchError", "create_backbone", "read_backbone_weights"]
