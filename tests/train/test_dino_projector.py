"""DINOHead: shapes, the weight-normalised last layer, and freezing it in the first epochs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from hema.train.dino.projector import DINOHead, cancel_last_layer_gradients


def _magnitude(head: DINOHead) -> torch.Tensor:
    return head.last_layer.parametrizations.weight.original0


@pytest.mark.parametrize("nlayers", [1, 2, 3])
@pytest.mark.parametrize("use_bn", [False, True])
def test_output_shape(nlayers, use_bn):
    head = DINOHead(12, out_dim=40, hidden_dim=24, bottleneck_dim=8, nlayers=nlayers, use_bn=use_bn)
    assert head(torch.randn(5, 12)).shape == (5, 40)
    n_linear = sum(isinstance(module, nn.Linear) for module in head.mlp.modules())
    assert n_linear == nlayers
    assert any(isinstance(module, nn.BatchNorm1d) for module in head.mlp.modules()) == (use_bn and nlayers > 1)


def test_last_layer_uses_parametrized_weight_norm_with_unit_frozen_magnitudes():
    head = DINOHead(12, out_dim=30, hidden_dim=16, bottleneck_dim=8)
    assert parametrize.is_parametrized(head.last_layer, "weight")
    assert not hasattr(head.last_layer, "weight_g")  # not the deprecated torch.nn.utils.weight_norm
    assert head.last_layer.bias is None
    magnitude = _magnitude(head)
    assert magnitude.shape == (30, 1)
    torch.testing.assert_close(magnitude, torch.ones(30, 1))
    assert not magnitude.requires_grad
    assert magnitude not in set(p for p in head.parameters() if p.requires_grad)
    # unit magnitudes make every row of the effective weight a unit vector
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(30))


def test_outputs_are_cosine_similarities_with_norm_last_layer():
    head = DINOHead(12, out_dim=30, hidden_dim=16, bottleneck_dim=8)
    with torch.no_grad():
        head.last_layer.parametrizations.weight.original1.mul_(50)  # scaling v must not change the output
    outputs = head(torch.randn(6, 12) * 10)
    assert outputs.abs().max() <= 1 + 1e-5


def test_bottleneck_is_l2_normalised():
    head = DINOHead(12, out_dim=30, hidden_dim=16, bottleneck_dim=8)
    features = torch.randn(6, 12)
    before = head(features)
    with torch.no_grad():  # scaling the bottleneck must not change the output
        head.mlp[-1].weight.mul_(100)
    torch.testing.assert_close(head(features), before)


def test_magnitudes_trainable_without_norm_last_layer():
    head = DINOHead(12, out_dim=30, hidden_dim=16, bottleneck_dim=8, norm_last_layer=False)
    torch.testing.assert_close(_magnitude(head), torch.ones(30, 1))
    assert _magnitude(head).requires_grad


def test_mlp_initialisation_is_truncated_normal_with_zero_bias():
    torch.manual_seed(0)
    head = DINOHead(256, out_dim=16, hidden_dim=512, bottleneck_dim=64)
    first = head.mlp[0]
    assert first.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(first.bias) == 0


def test_deepcopy_gives_an_independent_teacher():
    student = DINOHead(12, out_dim=20, hidden_dim=16, bottleneck_dim=8)
    teacher = copy.deepcopy(student)
    features = torch.randn(3, 12)
    torch.testing.assert_close(teacher(features), student(features))
    with torch.no_grad():
        student.last_layer.parametrizations.weight.original1.add_(1.0)
    assert not torch.allclose(teacher(features), student(features))


def _backward(model: nn.Module) -> None:
    model.zero_grad(set_to_none=True)
    model(torch.randn(4, 12)).pow(2).sum().backward()


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_last_layer_gradients_cancelled_only_while_frozen(norm_last_layer):
    head = DINOHead(12, out_dim=20, hidden_dim=16, bottleneck_dim=8, norm_last_layer=norm_last_layer)
    direction = head.last_layer.parametrizations.weight.original1

    _backward(head)
    cancel_last_layer_gradients(head, epoch=0, freeze_last_layer_epochs=1)
    assert all(p.grad is None for p in head.last_layer.parameters())
    assert all(p.grad is not None for p in head.mlp.parameters())

    _backward(head)
    cancel_last_layer_gradients(head, epoch=1, freeze_last_layer_epochs=1)
    assert direction.grad is not None and direction.grad.abs().sum() > 0
    assert (_magnitude(head).grad is not None) == (not norm_last_layer)


def test_cancel_reaches_a_head_inside_a_larger_model():
    model = nn.Sequential(nn.Linear(12, 12), DINOHead(12, out_dim=20, hidden_dim=16, bottleneck_dim=8))
    _backward(model)
    cancel_last_layer_gradients(model, epoch=2, freeze_last_layer_epochs=3)
    assert all(p.grad is None for p in model[1].last_layer.parameters())
    assert model[0].weight.grad is not None


def test_cancel_refuses_a_model_without_head():
    with pytest.raises(ValueError):
        cancel_last_layer_gradients(nn.Linear(3, 3), epoch=0, freeze_last_layer_epochs=1)
