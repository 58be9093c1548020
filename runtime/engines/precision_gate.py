"""The reduced-precision gate: how closely a converted or quantised model must agree with its FP32 source.

Its two thresholds always travel together, so they are one object. ``hema-export`` applies it before it writes a
reduced-precision artifact, and ``hema-infer --backend auto`` applies it again to the agreement recorded in an
artifact's card before it runs that artifact in place of its FP32 model (:mod:`hema.runtime.engines.auto_choice`).
It imports nothing heavy: command lines show its defaults without loading onnx or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
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

    def passed_by(self, agreement: Mapping[str, object]) -> bool:
        """Whether an agreement recorded in a card (``AgreementReport.to_dict()``) meets these thresholds."""
        try:
            return float(agreement["label_agreement"]) >= self.min_agreement and (
                float(agreement["reference_balanced_accuracy"]) - float(agreement["candidate_balanced_accuracy"])
                <= self.max_accuracy_drop
            )
        except (KeyError, TypeError, ValueError):
            return False
