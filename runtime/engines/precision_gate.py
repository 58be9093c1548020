"""The reduced-precision gate: how closely a converted or quantised model must agree with its FP32 source.

Its two thresholds always travel together, so they are one object. It imports nothing heavy: command lines show
its defaults without loading onnx or torch.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AgreementGate"]


@dataclass(frozen=True)
class AgreementGate:
    """Thresholds a candidate must meet on labelled check cells (the test split) to be written.

    Attributes:
        min_agreement: Least share of check cells that must keep the class FP32 gives them.
        max_accuracy_drop: Largest balanced-accuracy loss allowed (0.005 is half a point).
    """

    min_agreement: float = 0.99
    max_accuracy_drop: float = 0.005
