"""The INT8 variant benchmark's measures and table (no quantisation here: that runs in the benchmark)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from int8_ptq_variants import markdown, noise_to_spread  # noqa: E402


def test_noise_to_spread_is_the_median_ratio_over_varying_features() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(4000, 3)) * np.array([1.0, 2.0, 4.0])
    noise = rng.normal(size=(4000, 3)) * np.array([0.5, 0.2, 4.0])  # ratios 0.5, 0.1, 1.0
    constant = np.zeros((4000, 1))
    measured = noise_to_spread(np.hstack([reference, constant]), np.hstack([reference + noise, constant + 1]))
    assert measured == pytest.approx(0.5, abs=0.03)
    assert noise_to_spread(reference, reference) == 0.0


def test_markdown_has_one_row_per_variant_with_the_drop() -> None:
    rows = [
        {
            "variant": "every layer",
            "label_agreement": 0.9186,
            "balanced_accuracy": 0.8646,
            "noise_to_spread": 0.45,
            "seconds": 29.4,
        },
        {
            "variant": "recipe",
            "label_agreement": 0.99,
            "balanced_accuracy": 0.9020,
            "noise_to_spread": 0.1,
            "openvino_label_agreement": 0.9906,
            "openvino_balanced_accuracy": 0.9004,
            "seconds": 27.0,
        },
    ]
    table = markdown(rows, 0.9014, 639)
    assert "| every layer | 91.86% | 0.8646 (-0.0368) | 0.45 |  |  | 29 |" in table
    assert "| recipe | 99.00% | 0.9020 (+0.0006) | 0.10 | 99.06% | 0.9004 (-0.0010) | 27 |" in table
    assert "639 test cells" in table
