"""The DINO projection head: an MLP, an L2-normalised bottleneck and a weight-normalised prototype layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["DINOHead", "cancel_last_layer_gradients"]


class DINOHead(nn.Module):
    """Projection head of DINO (facebookresearch/dino ``DINOHead``) for the student and the teacher.

    ``x -> MLP (Linear [+ BatchNorm] + GELU, ..., Linear to bottleneck) -> L2 normalise -> last layer``, where the
    last layer is a bias-free linear map to ``out_dim`` prototypes, weight-normalised with
    :func:`torch.nn.utils.parametrizations.weight_norm`: each row is ``g * v / ||v||``. Its magnitude ``g``
    (``last_layer.parametrizations.weight.original0``) starts at 1 and, with ``norm_last_layer``, stays 1 (not
    trainable), so the outputs are cosine similarities to the prototypes, which DINO found to stabilise training.

    Args:
        in_dim: Length of the backbone's embedding.
        out_dim: Number of prototypes (the loss's ``out_dim``).
        hidden_dim: Width of the hidden MLP layers.
        bottleneck_dim: Width of the normalised bottleneck.
        nlayers: Linear layers in the MLP (at least 1; 1 maps straight to the bottleneck).
        use_bn: BatchNorm after each hidden linear layer.
        norm_last_layer: Fix the last layer's magnitudes to 1 and freeze them.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 4096,
        hidden_dim: int = 1024,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        use_bn: bool = False,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, max(nlayers, 1), use_bn)
        self.mlp.apply(_init_linear)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        magnitude = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            magnitude.fill_(1.0)
        magnitude.requires_grad_(not norm_last_layer)

    def forward(self, features: Tensor) -> Tensor:
        """Prototype scores ``(batch, out_dim)`` of embeddings ``(batch, in_dim)``."""
        bottleneck = F.normalize(self.mlp(features), dim=-1, p=2)
        return self.last_layer(bottleneck)


def _mlp(in_dim: int, hidden_dim: int, bottleneck_dim: int, nlayers: int, use_bn: bool) -> nn.Module:
    if nlayers == 1:
        return nn.Linear(in_dim, bottleneck_dim)
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(nlayers - 1):
        layers.append(nn.Linear(width, hidden_dim))
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
        width = hidden_dim
    layers.append(nn.Linear(hidden_dim, bottleneck_dim))
    return nn.Sequential(*layers)


def _init_linear(module: nn.Module) -> None:
    """Truncated normal weights (std 0.02) and zero biases, as DINO initialises its head's MLP."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def cancel_last_layer_gradients(model: nn.Module, epoch: int, freeze_last_layer_epochs: int) -> None:
    """Drop the gradients of every :class:`DINOHead` last layer in ``model`` during the first epochs.

    Call it between ``loss.backward()`` and ``optimizer.step()``. DINO keeps the prototypes fixed for the first
    epoch (``freeze_last_layer_epochs=1``), which helps the student avoid collapse early on. With the gradients
    ``None`` the optimizer skips those parameters altogether (no weight decay, no momentum).

    Args:
        model: A :class:`DINOHead` or any module holding one (backbone plus head, a DDP wrapper).
        epoch: Current epoch, counted from 0.
        freeze_last_layer_epochs: Epochs during which the last layer stays frozen.

    Raises:
        ValueError: If ``model`` holds no :class:`DINOHead`.
    """
    heads = [module for module in model.modules() if isinstance(module, DINOHead)]
    if not heads:
        raise ValueError(f"{type(model).__name__} holds no DINOHead whose last layer could be frozen")
    if epoch >= freeze_last_layer_epochs:
        return
    for head in heads:
        for parameter in head.last_layer.parameters():
            parameter.grad = None
