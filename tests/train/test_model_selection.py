"""Unsupervised model selection scores: prediction entropy and soft neighbourhood density."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hema.train.adapt.model_selection import prediction_entropy, soft_neighbourhood_density


@pytest.mark.parametrize("classes", [2, 5, 11])
def test_entropy_of_uniform_and_one_hot(classes):
    assert prediction_entropy(np.full((4, classes), 1.0 / classes)) == pytest.approx(math.log(classes))
    assert prediction_entropy(np.eye(classes)) == 0.0


def test_entropy_is_the_mean_over_samples():
    probabilities = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    per_row = [math.log(2), 0.0, -(0.2 * math.log(0.2) + 0.3 * math.log(0.3) + 0.5 * math.log(0.5))]
    assert prediction_entropy(probabilities) == pytest.approx(sum(per_row) / 3)


_NOT_PROBABILITIES = [
    np.array([0.5, 0.5]),  # 1-D
    np.array([[0.5, 0.6]]),  # does not sum to 1
    np.array([[1.5, -0.5]]),  # negative
    np.array([[2.0, 1.0]]),  # logits
    np.ones((3, 1)),  # one class
]


@pytest.mark.parametrize("bad", _NOT_PROBABILITIES)
def test_inputs_must_be_probabilities(bad):
    with pytest.raises(ValueError):
        prediction_entropy(bad)
    with pytest.raises(ValueError):
        soft_neighbourhood_density(bad)


def _snd_reference(probabilities, temperature):
    """Explicit loops: cosine similarity of probability vectors, self excluded, row softmax, mean entropy."""
    rows = probabilities.tolist()
    norms = [math.sqrt(sum(v * v for v in row)) for row in rows]
    entropies = []
    for i, row in enumerate(rows):
        scores = [
            sum(a * b for a, b in zip(row, other)) / (norms[i] * norms[j]) / temperature
            for j, other in enumerate(rows)
            if j != i
        ]
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        total = sum(weights)
        entropies.append(-sum(w / total * math.log(w / total) for w in weights if w > 0))
    return sum(entropies) / len(entropies)


@pytest.mark.parametrize("samples, classes", [(2, 2), (7, 4), (13, 3)])
@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0])
def test_snd_matches_reference(samples, classes, temperature):
    rng = np.random.default_rng(samples * classes)
    probabilities = rng.dirichlet(np.full(classes, 0.7), size=samples)
    expected = _snd_reference(probabilities, temperature)
    assert soft_neighbourhood_density(probabilities, temperature) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_snd_does_not_depend_on_block_size():
    probabilities = np.random.default_rng(0).dirichlet(np.ones(5), size=23)
    whole = soft_neighbourhood_density(probabilities)
    for block_size in (1, 4, 22, 23):
        assert soft_neighbourhood_density(probabilities, block_size=block_size) == pytest.approx(whole, rel=1e-12)


def test_snd_accepts_float32_softmax_outputs():
    probabilities = np.random.default_rng(1).dirichlet(np.ones(4), size=9).astype(np.float32)
    assert math.isfinite(soft_neighbourhood_density(probabilities))


def _clusters(rng, samples, classes, noise):
    """Predictions of ``labels = i % classes``: tight confident clusters mixed with ``noise`` of random ones."""
    labels = np.arange(samples) % classes
    centres = np.full((samples, classes), 0.02 / (classes - 1))
    centres[np.arange(samples), labels] = 0.98
    tight = np.stack([rng.dirichlet(row * 1000) for row in centres])
    return (1 - noise) * tight + noise * rng.dirichlet(np.ones(classes), size=samples)


@pytest.mark.parametrize("classes", [3, 4, 10])
def test_snd_higher_for_dense_confident_clusters(classes):
    """Same predicted classes: tight confident clusters score higher than the same clusters blurred by noise."""
    rng = np.random.default_rng(classes)
    samples = 60
    tight, blurred = _clusters(rng, samples, classes, 0.0), _clusters(rng, samples, classes, 0.5)
    assert soft_neighbourhood_density(tight) > soft_neighbourhood_density(blurred) + 0.05
    # each confident row spreads its mass evenly over the other members of its cluster
    assert soft_neighbourhood_density(tight) == pytest.approx(math.log(samples / classes - 1), abs=0.02)
    assert prediction_entropy(tight) < prediction_entropy(blurred)  # lower is better: agrees


def test_snd_caveat_near_uniform_predictions_also_score_high():
    """Documented limitation: unconfident, all-alike predictions are dense too; entropy tells them apart."""
    rng = np.random.default_rng(0)
    tight = _clusters(rng, 60, 10, 0.0)
    near_uniform = rng.dirichlet(np.full(10, 50.0), size=60)
    assert soft_neighbourhood_density(near_uniform) > soft_neighbourhood_density(tight)
    assert prediction_entropy(near_uniform) > prediction_entropy(tight) + 1.0


def test_snd_bounds_and_arguments():
    identical = np.tile([[0.7, 0.2, 0.1]], (9, 1))
    assert soft_neighbourhood_density(identical) == pytest.approx(math.log(8))  # the maximum, log(N - 1)
    with pytest.raises(ValueError, match="two samples"):
        soft_neighbourhood_density(np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="positive"):
        soft_neighbourhood_density(identical, temperature=0.0)
    with pytest.raises(ValueError, match="positive"):
        soft_neighbourhood_density(identical, block_size=0)
