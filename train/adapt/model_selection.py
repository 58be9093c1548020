"""Unsupervised model selection on the unlabelled target domain (checkpoints, hyper-parameters).

Both scores read only the model's class probabilities on target cells, so they can choose between domain
adaptation runs without target labels. numpy only.

* :func:`prediction_entropy`: mean Shannon entropy of the predictions; **lower is better**.
* :func:`soft_neighbourhood_density`: SND, Saito et al. 2021; **higher is better**.

Neither is proof of accuracy: both reward a model that puts every cell in one class with confidence. Check
the predicted class distribution beside them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["prediction_entropy", "soft_neighbourhood_density"]

_SUM_TOLERANCE = 1e-3


def _check_probabilities(probabilities: np.ndarray) -> np.ndarray:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] < 2:
        raise ValueError(f"probabilities must be (samples, classes >= 2), got shape {probabilities.shape}")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise ValueError("probabilities must be finite and non-negative (pass softmax outputs, not logits)")
    worst = float(np.abs(probabilities.sum(axis=1) - 1.0).max(initial=0.0))
    if worst > _SUM_TOLERANCE:
        raise ValueError(f"probability rows must sum to 1 (off by up to {worst:.3g}): pass softmax outputs")
    return probabilities


def _row_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row, with ``0 log 0 = 0``."""
    logs = np.log(np.where(probabilities > 0, probabilities, 1.0))
    return -(probabilities * logs).sum(axis=1)


def prediction_entropy(probabilities: np.ndarray) -> float:
    """Mean Shannon entropy of the predicted class distributions, in nats. **Lower is better.**

    :math:`\\frac{1}{N} \\sum_i -\\sum_k p_{ik} \\log p_{ik}`: 0 for one-hot predictions, :math:`\\log K` for
    uniform ones.

    Args:
        probabilities: Softmax outputs ``(samples, classes)`` on the target cells.

    Raises:
        ValueError: If the rows are not probability distributions.
    """
    return float(_row_entropy(_check_probabilities(probabilities)).mean())


def soft_neighbourhood_density(
    probabilities: np.ndarray, temperature: float = 0.05, *, block_size: int = 1024
) -> float:
    """Soft neighbourhood density (SND) of the target predictions. **Higher is better.**

    Saito et al., "Tune it the Right Way: Unsupervised Validation of Domain Adaptation via Soft Neighborhood
    Density" (ICCV 2021). As in the paper, the representation is the classifier's softmax output:

    1. :math:`F_i = p_i / \\lVert p_i \\rVert_2` (L2-normalised probability vectors);
    2. :math:`S_{ij} = F_i^\\top F_j` (cosine similarity), self-pairs :math:`j = i` excluded;
    3. :math:`P_{ij} = \\exp(S_{ij}/\\tau) / \\sum_{j' \\ne i} \\exp(S_{ij'}/\\tau)`;
    4. :math:`\\mathrm{SND} = \\frac{1}{N} \\sum_i -\\sum_{j \\ne i} P_{ij} \\log P_{ij}`.

    A model whose target predictions form dense, confident clusters spreads each row's soft-neighbour mass
    over many equally close neighbours: high entropy, high SND (about :math:`\\log(N/K - 1)` for :math:`K`
    tight, equal clusters). So SND depends on :math:`N`: compare runs on the same target cells only. The
    maximum, :math:`\\log(N-1)`, is reached when all predictions are identical; near-uniform, unconfident
    predictions and a single-class collapse are dense too and score high. The paper relies on the source loss
    to rule those out; check :func:`prediction_entropy` and the predicted class distribution beside it.

    Differences from the paper's code, all negligible: it fills the diagonal with :math:`-1/\\tau` instead of
    removing it (a change of at most about :math:`e^{-1/\\tau}`), and computes entropy with
    :math:`\\log(p + 10^{-5})` where this is exact (:math:`0 \\log 0 = 0`). The paper also tried middle-layer
    features but recommends the softmax outputs, so this function takes probabilities only.

    Args:
        probabilities: Softmax outputs ``(samples, classes)`` on the target cells, at least two samples.
        temperature: :math:`\\tau`; the paper uses 0.05.
        block_size: Rows of the similarity matrix held at once (memory ``block_size * samples`` floats); the
            result does not depend on it.

    Raises:
        ValueError: If the rows are not probability distributions, there are fewer than two samples, or
            ``temperature`` or ``block_size`` is not positive.
    """
    probabilities = _check_probabilities(probabilities)
    count = len(probabilities)
    if count < 2:
        raise ValueError(f"SND needs at least two samples, got {count}")
    if temperature <= 0 or block_size <= 0:
        raise ValueError(f"temperature and block_size must be positive, got {temperature} and {block_size}")
    normalised = probabilities / np.linalg.norm(probabilities, axis=1, keepdims=True)
    total = 0.0
    for start in range(0, count, block_size):
        rows = slice(start, min(start + block_size, count))
        scores = normalised[rows] @ normalised.T / temperature
        block = np.arange(scores.shape[0])
        scores[block, block + start] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        neighbours = weights / weights.sum(axis=1, keepdims=True)
        total += float(_row_entropy(neighbours).sum())
    return total / count
