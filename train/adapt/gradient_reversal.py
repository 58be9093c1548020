r"""Gradient reversal (Ganin & Lempitsky 2015), with the warm-start schedule used by MDD and DANN.

The layer :math:`\mathcal{R}` is the identity going forward and multiplies the gradient by :math:`-\lambda`
going backward, so the modules before it ascend the loss that the modules after it descend.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["GradientReverseFunction", "GradientReverseLayer", "WarmStartGradientReverseLayer", "reverse_gradient"]


class GradientReverseFunction(torch.autograd.Function):
    """Autograd function: ``forward(x, coeff) = x``, ``backward(g) = -coeff * g``.

    ``coeff`` is a float or a 0-d tensor (no gradient flows to it). It is captured at forward time: changing a
    schedule between ``forward`` and ``backward`` does not change this pass's gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float | Tensor = 1.0) -> Tensor:  # noqa: D102
        ctx.coeff = coeff.detach() if isinstance(coeff, Tensor) else float(coeff)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        coeff = ctx.coeff
        if isinstance(coeff, Tensor):
            coeff = coeff.to(device=grad_output.device, dtype=grad_output.dtype)
        return grad_output.neg() * coeff, None


def reverse_gradient(x: Tensor, coeff: float | Tensor = 1.0) -> Tensor:
    """Identity on ``x`` whose gradient is multiplied by ``-coeff``."""
    return GradientReverseFunction.apply(x, coeff)


class GradientReverseLayer(nn.Module):
    """Gradient reversal with a fixed coefficient.

    Args:
        coeff: :math:`\\lambda`, the factor the reversed gradient is scaled by.
    """

    def __init__(self, coeff: float = 1.0) -> None:
        super().__init__()
        self.coeff = float(coeff)

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}"

    def forward(self, x: Tensor) -> Tensor:
        """``x`` unchanged; its gradient becomes ``-coeff * grad``."""
        return reverse_gradient(x, self.coeff)


class WarmStartGradientReverseLayer(nn.Module):
    r"""Gradient reversal whose coefficient rises smoothly from ``lo`` to ``hi``.

    At iteration :math:`i`:

    .. math::
        \lambda_i = \frac{2(hi - lo)}{1 + \exp(-\alpha\, i / N)} - (hi - lo) + lo

    so :math:`\lambda_0 = lo` and :math:`\lambda_i \to hi` as :math:`i \to \infty` (at :math:`i = N` with
    :math:`\alpha = 1` it has covered about 46% of the way). The iteration counter is a buffer: it is in
    ``state_dict`` and a resumed run continues the schedule where it stopped.

    The coefficient is computed as a tensor on the counter's device, so a forward pass needs no host sync and
    ``torch.compile`` does not specialise on a changing Python float. Read :attr:`coefficient` to log it.

    Args:
        alpha: :math:`\alpha`, steepness.
        lo: Initial coefficient.
        hi: Final coefficient (MDD uses 0.1).
        max_iters: :math:`N`, the iteration scale.
        auto_step: Advance the counter after every ``forward`` (the pass itself uses the value before the
            step). Otherwise call :meth:`step` once per optimisation step.

    Raises:
        ValueError: If ``max_iters`` is not positive.
    """

    iteration: Tensor

    def __init__(
        self, alpha: float = 1.0, lo: float = 0.0, hi: float = 0.1, max_iters: int = 1000, auto_step: bool = False
    ) -> None:
        super().__init__()
        if max_iters <= 0:
            raise ValueError(f"max_iters must be positive, got {max_iters}")
        self.alpha, self.lo, self.hi = float(alpha), float(lo), float(hi)
        self.max_iters = max_iters
        self.auto_step = auto_step
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, lo={self.lo}, hi={self.hi}, max_iters={self.max_iters}, auto_step={self.auto_step}"

    def coefficient_at(self, iteration: int | float) -> float:
        """:math:`\\lambda` at a given iteration, as a Python float (for schedules and plots)."""
        span = self.hi - self.lo
        return 2.0 * span / (1.0 + math.exp(-self.alpha * iteration / self.max_iters)) - span + self.lo

    def _coefficient(self) -> Tensor:
        span = self.hi - self.lo
        progress = self.iteration.to(torch.float32) * (self.alpha / self.max_iters)
        return 2.0 * span * torch.sigmoid(progress) - span + self.lo

    @property
    def coefficient(self) -> float:
        """The coefficient the next ``forward`` uses."""
        return float(self._coefficient())

    def step(self) -> None:
        """Advance the iteration counter by one."""
        self.iteration.add_(1)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` unchanged; its gradient becomes ``-coefficient * grad``."""
        coeff = self._coefficient()
        if self.auto_step:
            self.step()
        return reverse_gradient(x, coeff)
