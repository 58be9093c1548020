"""Why a hematologist should look at a cell: low confidence, or an image unlike any cell the model learnt.

Two flags, both calibrated by ``hema-export onnx`` on held-back training cells and stored in the model:

* **low confidence**: the top-class probability is below ``confidence_threshold`` (card field ``review``).
* **unknown cell type**: the graph output ``novelty`` is above ``novelty_threshold`` (card field ``review``):
  the cell is unlike every class the model knows (a blast, a smudge cell, a plasma cell, an artefact), so it is
  flagged instead of being named. ``novelty`` is ``1 -`` the highest cosine similarity between the cell's
  embedding and the L2-normalised centroid of each training class.

Why ``novelty`` is a graph output and not computed here from the ``embedding`` output: the class centroids
(classes x embedding size, 8 x 1280 floats for the default model) are weights, not a description. In the graph
they are 40 KB of initializer that cannot be separated from the backbone they belong to, every engine
(ONNX Runtime, OpenVINO, TensorRT) computes the score with the same plain operators (ReduceL2, Div, MatMul,
ReduceMax, Sub), and the card keeps only two numbers and how they were chosen, so ``hema-infer info`` stays
readable. Measured on the default model, nearest-centroid cosine separates PBC test cells from another lab's
cells and from non-cell images perfectly (ROC AUC 1.00); centring or standardising the embedding, or a
Mahalanobis distance, did worse or no better (``benchmarks/results/review-flags.md``).

Besides the per-cell flags, a **shift warning** (:func:`shift_warning`) judges a slide (or a run) as a whole: the
novelty threshold flags a set share of the cells of the lab the model was trained or onboarded on (the card's
``review`` says which: at most 10 %). When more than :data:`SHIFT_SHARE` of at least :data:`SHIFT_MIN_CELLS`
classified cells are flagged unknown, the cells as a whole do not look like the training cells (another lab,
stain, camera or magnification) and the differential should not be trusted before the model is onboarded at that
lab. At a 10 % rate, 8 or more of 20 cells flagged by chance has a probability of 4e-4 and 36 of 100 below 1e-12
(binomial), so the warning does not fire on the lab the model knows.

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

__all__ = ["LOW_CONFIDENCE", "SHIFT_MIN_CELLS", "SHIFT_SHARE", "UNKNOWN_CELL_TYPE", "ReviewPolicy", "shift_warning"]

LOW_CONFIDENCE = "low confidence"
UNKNOWN_CELL_TYPE = "unknown cell type"
_SEPARATOR = "; "
SHIFT_SHARE = 0.35
"""Share of cells flagged unknown above which a slide or run gets a shift warning (calibrated rate: at most 10 %)."""
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
        novelty_threshold: Flag ``unknown cell type`` when ``novelty`` is above it (``None``: never).
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
            ``"unknown cell type"``, ``"low confidence"``, both joined by ``"; "``, or ``""``.
        """
        reasons = []
        if self.novelty_threshold is not None and novelty is not None and not novelty <= self.novelty_threshold:
            reasons.append(UNKNOWN_CELL_TYPE)  # NaN novelty (a broken embedding) is flagged too
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
    unlike = sum(UNKNOWN_CELL_TYPE in review for review in reviews)
    if len(reviews) < SHIFT_MIN_CELLS or unlike <= SHIFT_SHARE * len(reviews):
        return None
    return (
        f"{unlike} of {len(reviews)} cells ({unlike / len(reviews):.0%}) are unlike every cell type this model "
        "knows, far more than at the lab it was trained or onboarded on: this analyser, stain or lab differs from "
        "the model's. Do not trust this differential before the model is onboarded at this lab (hema-train "
        "onboard --cells with the lab's cells, ideally --labelled with 20 labelled cells per class)."
    )
