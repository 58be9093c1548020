"""MarginDisparityDiscrepancy against an explicit float64 reference of the paper's / thuml's formula."""

from __future__ import annotations

import math

import pytest
import torch

from hema.train.adapt.mdd import MarginDisparityDiscrepancy


def _reference(y_s, y_s_adv, y_t, y_t_adv, margin, w_s=None, w_t=None, reduction="mean"):
    """D = -margin * mean_s(w * -log p_adv[h]) + mean_t(w * log(1 - p_adv[h])), loop by loop in float64."""

    def softmax_row(row):
        top = max(row)
        exps = [math.exp(v - top) for v in row]
        return [e / sum(exps) for e in exps]

    def pseudo_label(row):
        return max(range(len(row)), key=lambda k: row[k])

    source, target = [], []
    for i, (main, adv) in enumerate(zip(y_s.tolist(), y_s_adv.tolist())):
        weight = 1.0 if w_s is None else float(w_s[i])
        source.append(weight * -margin * -math.log(softmax_row(adv)[pseudo_label(main)]))
    for i, (main, adv) in enumerate(zip(y_t.tolist(), y_t_adv.tolist())):
        weight = 1.0 if w_t is None else float(w_t[i])
        target.append(weight * math.log(1.0 - softmax_row(adv)[pseudo_label(main)]))
    if reduction == "mean":
        return sum(source) / len(source) + sum(target) / len(target)
    if reduction == "sum":
        return sum(source) + sum(target)
    return [s + t for s, t in zip(source, target)]


def _batch(n_s, n_t, classes, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, classes, generator=g) * 2 for n in (n_s, n_s, n_t, n_t)]


@pytest.mark.parametrize("batch", [(1, 1), (5, 5), (16, 7)])
@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("margin", [1.0, 4.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_reference(batch, classes, margin, weighted):
    n_s, n_t = batch
    y_s, y_s_adv, y_t, y_t_adv = _batch(n_s, n_t, classes, seed=classes * 100 + n_s)
    w_s = torch.rand(n_s) * 2 if weighted else None
    w_t = torch.rand(n_t) * 2 if weighted else None
    value = MarginDisparityDiscrepancy(margin)(y_s, y_s_adv, y_t, y_t_adv, w_s, w_t)
    expected = _reference(y_s, y_s_adv, y_t, y_t_adv, margin, w_s, w_t)
    assert value.shape == ()
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_other_reductions_match_reference(reduction):
    y_s, y_s_adv, y_t, y_t_adv = _batch(6, 6, 4, seed=7)
    w_s, w_t = torch.rand(6), torch.rand(6)
    value = MarginDisparityDiscrepancy(3.0, reduction)(y_s, y_s_adv, y_t, y_t_adv, w_s, w_t)
    expected = torch.tensor(_reference(y_s, y_s_adv, y_t, y_t_adv, 3.0, w_s, w_t, reduction), dtype=torch.float32)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-5)


def test_none_reduction_needs_paired_batches():
    y_s, y_s_adv, y_t, y_t_adv = _batch(4, 3, 3, seed=0)
    with pytest.raises(ValueError, match="pairs"):
        MarginDisparityDiscrepancy(reduction="none")(y_s, y_s_adv, y_t, y_t_adv)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="margin"):
        MarginDisparityDiscrepancy(margin=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        MarginDisparityDiscrepancy(reduction="max")
    loss = MarginDisparityDiscrepancy()
    with pytest.raises(ValueError, match="both heads"):
        loss(torch.randn(4, 3), torch.randn(4, 2), torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="weights"):
        loss(*[torch.randn(4, 3) for _ in range(4)], w_s=torch.ones(3))


def test_single_class_rejected():
    with pytest.raises(ValueError, match="two classes"):
        MarginDisparityDiscrepancy()(*[torch.randn(3, 1) for _ in range(4)])


def test_discrepancy_is_never_positive():
    y_s, y_s_adv, y_t, y_t_adv = _batch(32, 32, 5, seed=3)
    assert MarginDisparityDiscrepancy(4.0)(y_s, y_s_adv, y_t, y_t_adv).item() <= 0.0


def test_pseudo_labels_carry_no_gradient():
    y_s, y_s_adv, y_t, y_t_adv = (t.requires_grad_() for t in _batch(5, 5, 4, seed=1))
    loss = MarginDisparityDiscrepancy(4.0)
    value = loss(y_s, y_s_adv, y_t, y_t_adv)
    value.backward()
    assert y_s.grad is None and y_t.grad is None
    assert y_s_adv.grad is not None and y_t_adv.grad is not None
    # moving the main logits without changing their argmax leaves the value unchanged
    with torch.no_grad():
        shifted = loss(y_s * 3 + 1, y_s_adv, y_t * 0.5 - 2, y_t_adv)
    assert shifted.item() == pytest.approx(value.item(), rel=1e-6)


def test_gradient_signs_on_adversarial_logits():
    """D rises when the adversarial head agrees with the main head on source and falls when it does on target."""
    margin, n = 4.0, 6
    y_s, y_s_adv, y_t, y_t_adv = _batch(n, n, 5, seed=2)
    y_s_adv.requires_grad_()
    y_t_adv.requires_grad_()
    MarginDisparityDiscrepancy(margin)(y_s, y_s_adv, y_t, y_t_adv).backward()
    rows = torch.arange(n)
    h_s, h_t = y_s.argmax(1), y_t.argmax(1)
    p_s, p_t = y_s_adv.detach().softmax(1), y_t_adv.detach().softmax(1)
    assert (y_s_adv.grad[rows, h_s] > 0).all()
    assert (y_t_adv.grad[rows, h_t] < 0).all()
    # analytic values: dD/dy_s_adv = margin/n (onehot - p); dD/dy_t_adv[h] = -p[h]/n
    onehot = torch.nn.functional.one_hot(h_s, 5).float()
    torch.testing.assert_close(y_s_adv.grad, margin / n * (onehot - p_s), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(y_t_adv.grad[rows, h_t], -p_t[rows, h_t] / n, rtol=1e-4, atol=1e-6)


def test_descending_the_transfer_loss_trains_the_adversary():
    """Minimising -D over the adversarial logits raises agreement on source and disagreement on target."""
    y_s, y_s_adv, y_t, y_t_adv = _batch(8, 8, 3, seed=4)
    y_s_adv.requires_grad_()
    y_t_adv.requires_grad_()
    loss = MarginDisparityDiscrepancy(4.0)
    optimizer = torch.optim.SGD([y_s_adv, y_t_adv], lr=1.0)
    rows, h_s, h_t = torch.arange(8), y_s.argmax(1), y_t.argmax(1)
    agree_s, agree_t = y_s_adv.softmax(1)[rows, h_s].mean().item(), y_t_adv.softmax(1)[rows, h_t].mean().item()
    for _ in range(20):
        optimizer.zero_grad()
        (-loss(y_s, y_s_adv, y_t, y_t_adv)).backward()
        optimizer.step()
    assert y_s_adv.softmax(1)[rows, h_s].mean().item() > agree_s + 0.1
    assert y_t_adv.softmax(1)[rows, h_t].mean().item() < agree_t - 0.1


def test_saturated_target_term_is_exact_and_finite():
    """When the adversary fully agrees on target (p -> 1 in float32) the term stays finite and exact."""
    y_s = y_s_adv = torch.zeros(2, 3)
    y_t = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    y_t_adv = torch.tensor([[60.0, 0.0, 0.0], [0.0, 0.0, 40.0]], requires_grad=True)
    value = MarginDisparityDiscrepancy(1.0)(y_s, y_s_adv, y_t, y_t_adv)
    # log(1 - p) = log(2 e^0) - logsumexp(row) ~ log 2 - top logit
    expected = -math.log(3.0) + ((math.log(2) - 60.0) + (math.log(2) - 40.0)) / 2
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert torch.isfinite(y_t_adv.grad).all()
    assert y_t_adv.grad.abs().max().item() <= 0.5 + 1e-6  # |dD/dy| <= 1 per sample, averaged over 2
