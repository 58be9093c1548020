"""The MDD network: backbone, bottleneck, a main head and an adversarial head behind gradient reversal.

:class:`MDDClassifier` is what trains; it always returns :class:`MDDOutputs`, in training and in evaluation.
:class:`MDDInference` is what exports: it shares the trained backbone, bottleneck and main head and returns
the logits only (no adversarial head, no gradient reversal in the graph).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from torch import Tensor, nn

from hema.train.gradient_reversal import WarmStartGradientReverseLayer

__all__ = ["MDDClassifier", "MDDInference", "MDDOutputs"]


class MDDOutputs(NamedTuple):
    """What :meth:`MDDClassifier.forward` returns, in every mode.

    Attributes:
        logits: Main head logits ``(batch, classes)``: the predictions.
        adversarial_logits: Adversarial head logits ``(batch, classes)``, only for the MDD loss.
        features: Bottleneck features ``(batch, bottleneck_dim)``: the embedding.
    """

    logits: Tensor
    adversarial_logits: Tensor
    features: Tensor


def _head(in_dim: int, width: int, num_classes: int, dropout: float) -> nn.Sequential:
    head = nn.Sequential(nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, num_classes))
    for layer in (head[0], head[3]):
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)
    return head


class MDDClassifier(nn.Module):
    """Classifier for margin disparity discrepancy training (thuml's ``mdd.ImageClassifier``).

    ``backbone -> bottleneck (Linear, BatchNorm1d, ReLU, Dropout) -> head``, and in parallel
    ``bottleneck -> gradient reversal -> adversarial head``. Initialisation as in thuml: bottleneck weights
    ``N(0, 0.005)`` with bias 0.1, head weights ``N(0, 0.01)`` with bias 0.

    Call :meth:`step` once per optimisation step so the reversal coefficient follows its warm-start schedule.

    Args:
        backbone: Maps a normalised float NCHW batch to ``(batch, feature_dim)`` features, e.g.
            ``CellBackbone.model`` (a timm model with ``num_classes=0``).
        num_classes: Number of classes.
        feature_dim: Length of the backbone's features; read from ``backbone.num_features`` (timm) if omitted.
        bottleneck_dim: Width of the bottleneck (the embedding).
        width: Hidden width of both heads.
        dropout: Dropout probability in the bottleneck and heads.
        grl: The gradient reversal in front of the adversarial head; thuml's MDD schedule
            (``alpha=1, lo=0, hi=0.1, max_iters=1000``) if omitted.

    Raises:
        ValueError: If ``feature_dim`` is omitted and the backbone has no ``num_features``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        feature_dim: int | None = None,
        bottleneck_dim: int = 1024,
        width: int = 1024,
        dropout: float = 0.5,
        grl: WarmStartGradientReverseLayer | None = None,
    ) -> None:
        super().__init__()
        if feature_dim is None:
            feature_dim = getattr(backbone, "num_features", None)
            if not isinstance(feature_dim, int):
                raise ValueError("the backbone has no integer num_features: pass feature_dim")
        self.num_classes = num_classes
        self.backbone = backbone
        self.bottleneck = nn.Sequential(
            nn.Linear(feature_dim, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.ReLU(), nn.Dropout(dropout)
        )
        nn.init.normal_(self.bottleneck[0].weight, 0.0, 0.005)
        nn.init.constant_(self.bottleneck[0].bias, 0.1)
        self.head = _head(bottleneck_dim, width, num_classes, dropout)
        self.adversarial_head = _head(bottleneck_dim, width, num_classes, dropout)
        self.grl = grl if grl is not None else WarmStartGradientReverseLayer(alpha=1.0, lo=0.0, hi=0.1, max_iters=1000)

    def forward(self, x: Tensor) -> MDDOutputs:
        """Logits of both heads and the bottleneck features of a normalised NCHW batch."""
        features = self.bottleneck(self.backbone(x))
        logits = self.head(features)
        adversarial_logits = self.adversarial_head(self.grl(features))
        return MDDOutputs(logits, adversarial_logits, features)

    def step(self) -> None:
        """Advance the gradient reversal's warm-start schedule by one iteration."""
        self.grl.step()

    def parameter_groups(self, base_lr: float, backbone_lr_scale: float = 0.1) -> list[dict[str, Any]]:
        """Optimizer parameter groups: the backbone at ``backbone_lr_scale * base_lr``, the rest at ``base_lr``.

        Each group also carries its ``name`` (``backbone``, ``bottleneck``, ``head``, ``adversarial_head``); a
        schedule that rescales rates should keep the 0.1x ratio (e.g. ``LambdaLR`` scales each group's own rate).

        Args:
            base_lr: Learning rate of the new layers.
            backbone_lr_scale: Factor for the pretrained backbone (thuml fine-tunes it at 0.1x).
        """
        groups = [
            ("backbone", self.backbone, backbone_lr_scale * base_lr),
            ("bottleneck", self.bottleneck, base_lr),
            ("head", self.head, base_lr),
            ("adversarial_head", self.adversarial_head, base_lr),
        ]
        return [{"name": name, "params": list(module.parameters()), "lr": lr} for name, module, lr in groups]


class MDDInference(nn.Module):
    """The deployable part of a trained :class:`MDDClassifier`: backbone, bottleneck and main head.

    The modules are shared, not copied: parameters stay tied to the classifier, and ``eval()`` / ``train()`` on
    this module switch the shared modules too. Put it in eval mode before exporting (BatchNorm and dropout).
    Its ``state_dict`` holds only ``backbone.*``, ``bottleneck.*`` and ``head.*``.

    Args:
        classifier: The trained classifier.
    """

    def __init__(self, classifier: MDDClassifier) -> None:
        super().__init__()
        self.num_classes = classifier.num_classes
        self.backbone = classifier.backbone
        self.bottleneck = classifier.bottleneck
        self.head = classifier.head

    def embed(self, x: Tensor) -> Tensor:
        """Bottleneck features ``(batch, bottleneck_dim)`` of a normalised NCHW batch."""
        return self.bottleneck(self.backbone(x))

    def forward(self, x: Tensor) -> Tensor:
        """Main head logits ``(batch, classes)`` of a normalised NCHW batch."""
        return self.head(self.embed(x))
