"""Why a hematologist should look at a cell: low confidence, or an image unlike any cell the model learnt.

Two flags, both calibrated by ``hema-export onnx`` on held-back training cells and stored in the model:

* **low confidence**: the top-class probability is below ``confidence_threshold`` (card field ``review``).
* **out of distribution**: the graph output ``novelty`` is above ``novelty_threshold`` (card field ``review``).
  ``novelty`` is ``1 -`` the highest cosine similarity between the cell's embedding and the L2-normalised
  centroid of each training class.

Why ``novelty`` is a graph output and not computed here from the ``embedding`` output: the class centroids
(classes x embedding size, 8 x 1280 floats for the default model) are weights, not a description. In the graph
they are 40 KB of initializer that cannot be separated from the backbone they belong to, every engine
(ONNX Runtime, OpenVINO, TensorRT) computes the score with the same plain operators (ReduceL2, Div, MatMul,
ReduceMax, Sub), and the card keeps only two numbers and how they were chosen, so ``hema-infer info`` stays
readable. Measured on the default model, nearest-centroid cosine separates PBC test cells from another lab's
cells and from non-cell images perfectly (ROC AUC 1.00); centring or standardising the embedding, or a
Mahalanobis distance, did worse or no better (``benchmarks/results/review-flags.md``).

Besides the per-cell flags, a **shift warning** (:func:`shift_warning`) judges a slide (or a run) as a whole: the
novelty threshold is the 99th percentile of held-back training cells, so about 1 % of cells from the lab the
model was trained on exceed it. When more than :data:`SHIFT_SHARE` of at least :data:`SHIFT_MIN_CELLS` classified
cells do, the cells as a whole do not look like the training cells (another lab, stain, camera or magnification)
and the differential should not be trusted before the model is adapted to that lab. Under the 1 % rate, 20 of
every 100 cells flagged by chance has a probability below 1e-20 (binomial), so the warning does not fire on the
training lab; measured: PBC test split 0.6 % flagged, BCCD 99.7 % (``benchmarks/results/review-flags.md``).

A model exported before review flags existed has no ``review`` in its card and no ``novelty`` output: it flags
nothing. A card with a novelty threshold on a graph without the output (a converter that dropped it) gives
confidence flags only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hema.runtime.card import ModelCard
from hema.runtime.engines.base import NOVELTY_OUTPUT, PROBABILITIES_OUTPUT

__all__ = ["LOW_CONFIDENCE", "OUT_OF_DISTRIBUTION", "SHIFT_MIN_CELLS", "SHIFT_SHARE", "ReviewPolicy", "shift_warning"]

LOW_CONFIDENCE = "low confidence"
OUT_OF_DISTRIBUTION = "out of distribution"
_SEPARATOR = "; "
SHIFT_SHARE = 0.2
"""Share of out-of-distribution cells above which a slide or run gets a shift warning (calibrated rate: 1 %)."""
SHIFT_MIN_CELLS = 20
"""Fewest classified cells on which a shift warning is given (fewer say too little about a lab)."""


def _threshold(value: object) -> float | None:
    """A card's threshold as a float, or ``None`` when absent (``null``) or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class ReviewPolicy:
    """The thresholds that decide whether a cell is flagged for review.

    Attributes:
        confidence_threshold: Flag ``low confidence`` when the top-class probability is below it (``None``: never).
        novelty_threshold: Flag ``out of distribution`` when ``novelty`` is above it (``None``: never).
    """

    confidence_threshold: float | None = None
    novelty_threshold: float | None = None

    @classmethod
    def from_card(cls, card: ModelCard, output_names: Sequence[str] | None = None) -> ReviewPolicy:
        """The policy a model card stores (a card without ``review`` gives a policy that flags nothing).

        Args:
            card: The model's card.
            output_names: The graph's outputs; when given and ``novelty`` is not among them, the
                out-of-distribution flag is off.
        """
        review = card.review if isinstance(card.review, dict) else {}
        novelty = _threshold(review.get("novelty_threshold"))
        if output_names is not None and NOVELTY_OUTPUT not in output_names:
            novelty = None
        return cls(_threshold(review.get("confidence_threshold")), novelty)

    @property
    def active(self) -> bool:
        """Whether any flag can be raised."""
        return self.confidence_threshold is not None or self.novelty_threshold is not None

    def reason(self, probabilities: np.ndarray, novelty: float | None = None) -> str:
        """The review reason of one cell, or ``""`` when it needs none.

        Args:
            probabilities: The cell's class probabilities ``(classes,)``.
            novelty: The cell's ``novelty`` output (``None`` when the model has none).

        Returns:
            ``"out of distribution"``, ``"low confidence"``, both joined by ``"; "``, or ``""``.
        """
        reasons = []
        if self.novelty_threshold is not None and novelty is not None and not novelty <= self.novelty_threshold:
            reasons.append(OUT_OF_DISTRIBUTION)  # NaN novelty (a broken embedding) is flagged too
        confidence = float(np.max(probabilities))
        if self.confidence_threshold is not None and not confidence >= self.confidence_threshold:
            reasons.append(LOW_CONFIDENCE)
        return _SEPARATOR.join(reasons)

    def reasons(self, outputs: dict[str, np.ndarray]) -> list[str]:
        """The review reason of every cell of a batch, from an engine's outputs (see :meth:`reason`)."""
        probabilities = outputs[PROBABILITIES_OUTPUT]
        novelty = outputs.get(NOVELTY_OUTPUT) if self.novelty_threshold is not None else None
        return [
            self.reason(row, None if novelty is None else float(novelty[index]))
            for index, row in enumerate(probabilities)
        ]


def shift_warning(reviews: Sequence[str]) -> str | None:
    """The shift warning for the review reasons of a slide's (or a run's) classified cells, or ``None``.

    Args:
        reviews: The ``review`` field of every classified cell (error rows excluded).

    Returns:
        One sentence for summary.json, the terminal and report.html, or ``None`` when the cells look like the
        model's training cells (or there are fewer than :data:`SHIFT_MIN_CELLS`).
    """
    unlike = sum(OUT_OF_DISTRIBUTION in review for review in reviews)
    if len(reviews) < SHIFT_MIN_CELLS or unlike <= SHIFT_SHARE * len(reviews):
        return None
    return (
        f"{unlike} of {len(reviews)} cells ({unlike / len(reviews):.0%}) are unlike the cells this model was trained "
        "on (about 1 % expected): this analyser, stain or lab differs from the model's. Do not trust this "
        "differential before the model is adapted to this lab (a head fitted on its labelled cells with "
        "hema-train fewshot, or with hema-train adapt)."
    )
