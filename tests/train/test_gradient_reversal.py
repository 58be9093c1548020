"""Gradient reversal: identity forward, -coeff * grad backward, warm-start schedule, resumable counter."""

from __future__ import annotations

import math

import pytest
import torch

from hema.train.adapt.gradient_reversal import (
    GradientReverseFunction,
    GradientReverseLayer,
    WarmStartGradientReverseLayer,
    reverse_gradient,
)


def _forward_backward(layer, x, upstream):
    x = x.clone().requires_grad_()
    out = layer(x)
    (out * upstream).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("coeff", [1.0, 0.3, 0.0, 2.5])
def test_layer_is_identity_forward_and_reverses_backward(coeff):
    x, upstream = torch.randn(4, 5), torch.randn(4, 5)
    out, grad = _forward_backward(GradientReverseLayer(coeff), x, upstream)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    torch.testing.assert_close(grad, -coeff * upstream)


def test_function_accepts_tensor_coefficient_and_default():
    x = torch.randn(3, 2, requires_grad=True)
    upstream = torch.randn(3, 2)
    (GradientReverseFunction.apply(x, torch.tensor(0.25)) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -0.25 * upstream)
    x.grad = None
    (reverse_gradient(x) * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -upstream)


def test_output_is_a_new_tensor():
    x = torch.randn(3, requires_grad=True)
    out = reverse_gradient(x, 1.0)
    out.mul_(2)  # in-place on the output must neither fail nor touch the input
    assert not torch.equal(out.detach(), x.detach())


def _schedule(i, alpha, lo, hi, n):
    return 2 * (hi - lo) / (1 + math.exp(-alpha * i / n)) - (hi - lo) + lo


@pytest.mark.parametrize("alpha, lo, hi, n", [(1.0, 0.0, 0.1, 1000), (10.0, 0.2, 0.9, 100), (2.0, 0.5, 0.0, 40)])
def test_warm_start_schedule(alpha, lo, hi, n):
    layer = WarmStartGradientReverseLayer(alpha=alpha, lo=lo, hi=hi, max_iters=n)
    assert layer.coefficient == pytest.approx(lo, abs=1e-7)
    for _ in range(n // 2):
        layer.step()
    assert int(layer.iteration) == n // 2
    assert layer.coefficient == pytest.approx(_schedule(n // 2, alpha, lo, hi, n), rel=1e-6, abs=1e-7)
    assert layer.coefficient_at(n // 2) == pytest.approx(_schedule(n // 2, alpha, lo, hi, n), rel=1e-12)
    layer.iteration.fill_(100 * n)
    assert layer.coefficient == pytest.approx(hi, abs=1e-6)
    # and the backward pass uses it
    x, upstream = torch.randn(2, 3), torch.randn(2, 3)
    layer.iteration.fill_(n // 2)
    out, grad = _forward_backward(layer, x, upstream)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    torch.testing.assert_close(grad, -_schedule(n // 2, alpha, lo, hi, n) * upstream)


def test_defaults_are_mdd_schedule():
    layer = WarmStartGradientReverseLayer()
    assert (layer.alpha, layer.lo, layer.hi, layer.max_iters, layer.auto_step) == (1.0, 0.0, 0.1, 1000, False)
    layer.iteration.fill_(1000)
    assert layer.coefficient == pytest.approx(0.2 / (1 + math.exp(-1)) - 0.1, rel=1e-6)


def test_forward_does_not_step_unless_auto_step():
    manual = WarmStartGradientReverseLayer(max_iters=10)
    manual(torch.randn(2))
    assert int(manual.iteration) == 0
    auto = WarmStartGradientReverseLayer(lo=0.0, hi=1.0, max_iters=10, auto_step=True)
    x, upstream = torch.randn(2), torch.randn(2)
    _, grad = _forward_backward(auto, x, upstream)  # first pass uses iteration 0, i.e. coefficient lo = 0
    torch.testing.assert_close(grad, torch.zeros(2))
    assert int(auto.iteration) == 1
    _, grad = _forward_backward(auto, x, upstream)
    torch.testing.assert_close(grad, -_schedule(1, 1.0, 0.0, 1.0, 10) * upstream)
    assert int(auto.iteration) == 2


def test_backward_uses_the_coefficient_of_its_forward():
    layer = WarmStartGradientReverseLayer(lo=0.0, hi=1.0, max_iters=10)
    layer.iteration.fill_(5)
    x = torch.randn(3, requires_grad=True)
    upstream = torch.randn(3)
    out = layer(x)
    for _ in range(20):
        layer.step()  # a step between forward and backward must not change this pass's gradient
    (out * upstream).sum().backward()
    torch.testing.assert_close(x.grad, -_schedule(5, 1.0, 0.0, 1.0, 10) * upstream)


def test_counter_is_saved_and_restored():
    layer = WarmStartGradientReverseLayer(max_iters=50)
    for _ in range(37):
        layer.step()
    state = layer.state_dict()
    assert "iteration" in state and int(state["iteration"]) == 37
    resumed = WarmStartGradientReverseLayer(max_iters=50)
    assert resumed.coefficient != pytest.approx(layer.coefficient)
    resumed.load_state_dict(state)
    assert int(resumed.iteration) == 37
    assert resumed.coefficient == pytest.approx(layer.coefficient, rel=1e-7)
    resumed.step()
    assert int(resumed.iteration) == 38 and int(layer.iteration) == 37  # loaded by value, not shared


def test_counter_survives_a_weights_only_checkpoint(tmp_path):
    layer = WarmStartGradientReverseLayer()
    for _ in range(3):
        layer.step()
    torch.save({"state_dict": layer.state_dict()}, tmp_path / "grl.pt")
    loaded = torch.load(tmp_path / "grl.pt", weights_only=True)
    fresh = WarmStartGradientReverseLayer()
    fresh.load_state_dict(loaded["state_dict"])
    assert int(fresh.iteration) == 3


def test_rejects_non_positive_max_iters():
    with pytest.raises(ValueError, match="max_iters"):
        WarmStartGradientReverseLayer(max_iters=0)
