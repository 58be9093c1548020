"""Where a backbone looks: Grad-CAM for CNNs, the last block's CLS attention for ViTs.

Grad-CAM (Selvaraju et al. 2017) here explains a *linear head's* decision: the score of image ``x`` is the
logit of the class the head predicts, ``s = e(x) @ W[:, c] + b[c]`` where ``e(x)`` is the pooled embedding and
``W, b`` the head's stored arrays (for hema's ``lr`` head the standardisation is already folded into them).
With ``A`` the feature map entering the global pooling layer (the last convolutional feature map, captured by
a forward pre-hook), the map is ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of
``ds / dA_k``. It is resampled bilinearly to the input size and min-max scaled to ``[0, 1]`` per image (a
map that is zero everywhere stays zero).

Where the map lands matters. In a CNN whose strided convolutions and poolings all pad odd kernels
symmetrically (timm's EfficientNet, MobileNet, ResNet families; the default Lite0), cell ``i`` of a stride-``s``
feature map is centred on input pixel ``s * i``: for Lite0 the exact gradient support of the centre cell of a
1024-pixel input is centred there. Plain image resizing (``align_corners=False``) would put it at
``s * i + (s - 1) / 2``, 15.5 pixels too far right and down at stride 32, so such maps are sampled at
``y / s``. Other geometries (patchify stems, TF-style dynamic padding) keep plain resizing, which is exact for
patches.

For a ViT the map is the attention the CLS token pays to each patch in the last block, averaged over heads,
recomputed from that block's ``qkv`` projection (timm's fused attention never materialises the matrix),
resized like patches and scaled the same way. It does not depend on the head; the head only names the
predicted class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hema.train.backbones.cell_backbone import CellBackbone

__all__ = [
    "SaliencyMaps",
    "cells_are_centred",
    "cls_attention",
    "find_pooling_layer",
    "grad_cam",
    "is_vit",
    "saliency_maps",
]


@dataclass(frozen=True)
class SaliencyMaps:
    """Saliency maps of a batch of images.

    Attributes:
        method: ``"grad-cam"`` or ``"cls-attention"``.
        maps: ``float32 (n, height, width)`` in ``[0, 1]``, the input images' size.
        predicted: The head's predicted class index per image.
        embeddings: ``float32 (n, dim)``: the backbone's embeddings of the images on this forward pass.
    """

    method: str
    maps: np.ndarray
    predicted: np.ndarray
    embeddings: np.ndarray


def is_vit(backbone: CellBackbone) -> bool:
    """Whether the backbone is a timm ViT whose last block has a ``qkv`` attention."""
    blocks = getattr(backbone.model, "blocks", None)
    return blocks is not None and len(blocks) > 0 and hasattr(getattr(blocks[-1], "attn", None), "qkv")


def find_pooling_layer(model: nn.Module) -> nn.Module:
    """The global pooling layer whose input is the last convolutional feature map.

    timm CNNs name it ``global_pool`` (``head.global_pool`` in ConvNeXt); other models: the last adaptive
    pooling layer (squeeze-and-excitation pools sit earlier, inside the blocks).

    Raises:
        ValueError: If the model has no adaptive pooling layer (not a CNN hema can explain).
    """
    from timm.layers import SelectAdaptivePool2d

    modules = dict(model.named_modules())
    named = [module for name, module in modules.items() if name.split(".")[-1] == "global_pool"]
    if named:
        return named[-1]
    pooling = (SelectAdaptivePool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    found = [module for module in modules.values() if isinstance(module, pooling)]
    if not found:
        raise ValueError(f"{type(model).__name__} has no global pooling layer: Grad-CAM needs a CNN")
    return found[-1]


def cells_are_centred(model: nn.Module) -> bool:
    """Whether every strided convolution and pooling pads an odd kernel symmetrically (see the module docstring).

    A convolution that pads itself at run time (timm's ``Conv2dSame``) is a subclass: only plain layers count.
    """
    from torch.nn.modules.utils import _pair

    plain = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
    for module in model.modules():
        if not isinstance(module, plain):
            continue
        stride, kernel = _pair(module.stride or module.kernel_size), _pair(module.kernel_size)
        if max(stride) == 1:
            continue
        if type(module) not in plain or isinstance(module.padding, str):
            return False
        padding, dilation = _pair(module.padding), _pair(getattr(module, "dilation", 1))
        if any(k % 2 == 0 or p != d * (k - 1) // 2 for k, p, d in zip(kernel, padding, dilation)):
            return False
    return True


def _resample(maps: torch.Tensor, size: tuple[int, int], centred: bool) -> torch.Tensor:
    """``(n, h, w)`` maps on the ``size`` pixel grid: cell ``i`` at pixel ``s * i`` if ``centred``, else resized."""
    maps = maps[:, None].float()
    if not centred:
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]
    axes = []
    for cells, pixels in zip(maps.shape[2:], size):
        position = torch.arange(pixels, device=maps.device, dtype=torch.float32) * (cells / pixels)  # y / s
        axes.append(2.0 * position / max(cells - 1, 1) - 1.0)
    rows, cols = torch.meshgrid(*axes, indexing="ij")
    grid = torch.stack([cols, rows], dim=-1).expand(len(maps), -1, -1, -1)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)[:, 0]


def _scale_to_unit(maps: torch.Tensor, size: tuple[int, int], centred: bool) -> np.ndarray:
    """``(n, h, w)`` maps resampled to ``size`` and min-max scaled per image to ``[0, 1]``."""
    resampled = _resample(maps, size, centred)
    low = resampled.amin(dim=(1, 2), keepdim=True)
    span = resampled.amax(dim=(1, 2), keepdim=True) - low
    scaled = torch.where(span > 0, (resampled - low) / span.clamp_min(1e-12), torch.zeros_like(resampled))
    return scaled.detach().cpu().numpy().astype(np.float32)


def _predict(embeddings: torch.Tensor, weight: np.ndarray, bias: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of the linear head and its predicted classes."""
    weight_t = torch.as_tensor(weight, dtype=embeddings.dtype, device=embeddings.device)
    bias_t = torch.as_tensor(bias, dtype=embeddings.dtype, device=embeddings.device)
    logits = embeddings @ weight_t + bias_t
    return logits, logits.argmax(dim=1)


def grad_cam(backbone: CellBackbone, images: torch.Tensor, weight: np.ndarray, bias: np.ndarray) -> SaliencyMaps:
    """Grad-CAM of the predicted class's logit of a linear head (see the module docstring).

    Args:
        backbone: A CNN backbone in eval mode.
        images: ``uint8 (n, height, width, 3)`` as the backbone takes them.
        weight: The head's ``(dim, classes)`` weight.
        bias: The head's ``(classes,)`` bias.
    """
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        feature_map = inputs[0].detach().requires_grad_(True)  # a leaf: gradients need no weight graph
        captured.append(feature_map)
        return (feature_map, *inputs[1:])

    handle = find_pooling_layer(backbone.model).register_forward_pre_hook(capture)
    try:
        with torch.enable_grad():
            embeddings = backbone(images)
            logits, predicted = _predict(embeddings, weight, bias)
            score = logits.gather(1, predicted[:, None]).sum()  # images are independent in eval mode
            (gradient,) = torch.autograd.grad(score, captured[-1])
    finally:
        handle.remove()
    feature_map = captured[-1].detach()
    alpha = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * feature_map).sum(dim=1))
    size = (images.shape[1], images.shape[2])
    return SaliencyMaps(
        "grad-cam",
        _scale_to_unit(cam, size, cells_are_centred(backbone.model)),
        predicted.cpu().numpy(),
        _numpy(embeddings),
    )


@torch.no_grad()
def cls_attention(backbone: CellBackbone, images: torch.Tensor, weight: np.ndarray, bias: np.ndarray) -> SaliencyMaps:
    """The last block's CLS-to-patch attention, averaged over heads (see the module docstring).

    Args:
        backbone: A timm ViT backbone in eval mode (see :func:`is_vit`).
        images: ``uint8 (n, height, width, 3)``.
        weight: The head's ``(dim, classes)`` weight (names the predicted class only).
        bias: The head's ``(classes,)`` bias.
    """
    model = backbone.model
    attention = model.blocks[-1].attn
    captured: list[torch.Tensor] = []
    handle = attention.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0]))
    try:
        embeddings = backbone(images)
    finally:
        handle.remove()
    tokens = captured[-1]
    batch, count, _ = tokens.shape
    qkv = attention.qkv(tokens).reshape(batch, count, 3, attention.num_heads, -1).permute(2, 0, 3, 1, 4)
    query, key = attention.q_norm(qkv[0]), attention.k_norm(qkv[1])
    weights = ((query[:, :, :1] * attention.scale) @ key.transpose(-2, -1)).softmax(dim=-1)  # (n, heads, 1, count)
    prefix = getattr(model, "num_prefix_tokens", 1)
    grid = model.patch_embed.grid_size
    cls_map = weights[:, :, 0, prefix:].mean(dim=1).reshape(batch, *grid)
    _, predicted = _predict(embeddings, weight, bias)
    size = (images.shape[1], images.shape[2])
    return SaliencyMaps(
        "cls-attention", _scale_to_unit(cls_map, size, centred=False), predicted.cpu().numpy(), _numpy(embeddings)
    )


def _numpy(embeddings: torch.Tensor) -> np.ndarray:
    return embeddings.detach().float().cpu().numpy()


def saliency_maps(backbone: CellBackbone, images: torch.Tensor, weight: np.ndarray, bias: np.ndarray) -> SaliencyMaps:
    """CLS attention for a ViT, Grad-CAM for anything else (see :func:`grad_cam`, :func:`cls_attention`)."""
    explain = cls_attention if is_vit(backbone) else grad_cam
    return explain(backbone.eval(), images, weight, bias)
