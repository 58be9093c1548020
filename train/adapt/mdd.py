"""Margin disparity discrepancy (MDD) for classification, Zhang et al. 2019: the loss and the network it trains.

"Bridging Theory and Algorithm for Domain Adaptation" (ICML 2019, https://arxiv.org/abs/1904.05801). The sign
conventions follow thuml Transfer-Learning-Library's ``ClassificationMarginDisparityDiscrepancy``: the module
returns the discrepancy :math:`\\mathcal{D}_\\gamma` itself, and the training loop adds its negation.

The whole method lives here, as tllib keeps one method per module: :class:`MarginDisparityDiscrepancy` (the
loss); :class:`MDDClassifier` (backbone, bottleneck, a main head and an adversarial head behind gradient
reversal), which always returns :class:`MDDOutputs`, in training and in evaluation; and :class:`MDDInference`,
what exports: it shares the trained backbone, bottleneck and main head and returns the logits only (no
adversarial head, no gradient reversal in the graph).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hema.train.adapt.gradient_reversal import WarmStartGradientReverseLayer

__all__ = ["MDDClassifier", "MDDInference", "MDDOutputs", "MarginDisparityDiscrepancy"]

_REDUCTIONS = ("mean", "sum", "none")


class MarginDisparityDiscrepancy(nn.Module):
    r"""Empirical margin disparity discrepancy between a source and a target batch.

    With :math:`\psi` the features, :math:`f` the main head, :math:`f'` the adversarial head,
    :math:`h_f(x) = \arg\max_k f(\psi(x))_k` the main head's prediction and :math:`\sigma` the softmax:

    .. math::
        \mathcal{D}_\gamma(\hat{S}, \hat{T}) =
            \gamma\, \mathbb{E}_{x \sim \hat{S}} \log \sigma_{h_f(x)}\!\left(f'(\psi(x))\right)
            + \mathbb{E}_{x \sim \hat{T}} \log\!\left(1 - \sigma_{h_f(x)}\!\left(f'(\psi(x))\right)\right)

    that is, per batch, ``-margin * cross_entropy(y_s_adv, argmax(y_s)) + log(1 - softmax(y_t_adv)[argmax(y_t)])``.
    Both terms are at most zero, so :math:`\mathcal{D}_\gamma \le 0`. The adversarial head maximises it (agree
    with the main head on the source, disagree on the target); the features minimise it. With a gradient
    reversal layer in front of the adversarial head, both happen by minimising one objective::

        mdd = MarginDisparityDiscrepancy(margin=4.0)
        out_s, out_t = model(x_s), model(x_t)  # MDDOutputs
        transfer_loss = -mdd(out_s.logits, out_s.adversarial_logits, out_t.logits, out_t.adversarial_logits)
        loss = F.cross_entropy(out_s.logits, labels_s) + trade_off * transfer_loss

    The pseudo labels :math:`h_f(x)` are argmaxes: no gradient reaches the main head's logits through this loss.

    Numerics: thuml's implementation computes :math:`\log(\min(1 - p + 10^{-6}, 1))`. Here the target term is the
    exact identity :math:`\log(1 - p_k) = \operatorname{logsumexp}_{j \ne k} y_j - \operatorname{logsumexp}_j y_j`,
    finite for finite logits, with gradients bounded by one in every logit (it does not saturate at
    :math:`\log 10^{-6}` when the heads agree). The two agree to about :math:`10^{-6} / (1 - p)`.

    Sample weights (e.g. class weights of the pseudo labels) multiply the per-sample terms before the reduction,
    as in thuml: ``mean`` is ``mean(w_s * source) + mean(w_t * target)``, not a weight-normalised mean.

    Args:
        margin: :math:`\gamma \ge 0`; 1 gives the plain disparity discrepancy. thuml uses 4 for Office-31.
        reduction: ``"mean"`` (source and target terms averaged over their own batches, which may differ in
            size), ``"sum"``, or ``"none"`` (per-pair ``source_i + target_i``; needs equal batch sizes).

    Raises:
        ValueError: For a negative margin or an unknown reduction.
    """

    def __init__(self, margin: float = 4.0, reduction: str = "mean") -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be non-negative, got {margin}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.margin = float(margin)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"

    @staticmethod
    def source_disparity(y: Tensor, y_adv: Tensor) -> Tensor:
        """Per-sample ``-log softmax(y_adv)[argmax(y)]`` (cross-entropy against the main head's prediction)."""
        return F.cross_entropy(y_adv.float(), y.detach().argmax(dim=1), reduction="none")

    @staticmethod
    def target_disparity(y: Tensor, y_adv: Tensor) -> Tensor:
        """Per-sample ``log(1 - softmax(y_adv)[argmax(y)])``, computed as a difference of log-sum-exps."""
        y_adv = y_adv.float()
        predicted = F.one_hot(y.detach().argmax(dim=1), y_adv.shape[1]).bool()
        others = torch.logsumexp(y_adv.masked_fill(predicted, float("-inf")), dim=1)
        return others - torch.logsumexp(y_adv, dim=1)

    def forward(
        self,
        y_s: Tensor,
        y_s_adv: Tensor,
        y_t: Tensor,
        y_t_adv: Tensor,
        w_s: Tensor | None = None,
        w_t: Tensor | None = None,
    ) -> Tensor:
        """The discrepancy :math:`\\mathcal{D}_\\gamma` (add its negation to the training loss).

        Args:
            y_s: Main head logits on the source batch ``(n_s, classes)``.
            y_s_adv: Adversarial head logits on the source batch ``(n_s, classes)``.
            y_t: Main head logits on the target batch ``(n_t, classes)``.
            y_t_adv: Adversarial head logits on the target batch ``(n_t, classes)``.
            w_s: Optional per-sample source weights ``(n_s,)``.
            w_t: Optional per-sample target weights ``(n_t,)``.

        Returns:
            A scalar, or ``(n,)`` per pair with ``reduction="none"``; float32 (or wider) whatever the input dtype.

        Raises:
            ValueError: If shapes disagree, there are fewer than two classes, or ``"none"`` gets unequal batches.
        """
        _check_pair(y_s, y_s_adv, w_s, "source")
        _check_pair(y_t, y_t_adv, w_t, "target")
        if y_s.shape[1] != y_t.shape[1]:
            raise ValueError(f"source has {y_s.shape[1]} classes, target {y_t.shape[1]}")
        source = -self.margin * self.source_disparity(y_s, y_s_adv)
        target = self.target_disparity(y_t, y_t_adv)
        if w_s is not None:
            source = source * w_s
        if w_t is not None:
            target = target * w_t
        if self.reduction == "mean":
            return source.mean() + target.mean()
        if self.reduction == "sum":
            return source.sum() + target.sum()
        if source.shape != target.shape:
            raise ValueError(f"reduction='none' pairs samples: got {len(source)} source and {len(target)} target")
        return source + target


def _check_pair(y: Tensor, y_adv: Tensor, weights: Tensor | None, domain: str) -> None:
    if y.ndim != 2 or y.shape != y_adv.shape:
        raise ValueError(
            f"{domain} logits must be (batch, classes) from both heads, got {tuple(y.shape)} and {tuple(y_adv.shape)}"
        )
    if y.shape[1] < 2:
        raise ValueError(f"MDD needs at least two classes, got {y.shape[1]}")
    if weights is not None and weights.shape != y.shape[:1]:
        raise ValueError(f"{domain} weights must be ({y.shape[0]},), got {tuple(weights.shape)}")


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
