"""MDDClassifier and MDDInference on a tiny convolutional backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hema.train.adapt.gradient_reversal import WarmStartGradientReverseLayer
from hema.train.adapt.mdd import MDDClassifier, MDDInference, MDDOutputs

FEATURES, BOTTLENECK, WIDTH, CLASSES = 4, 8, 6, 3


def _backbone() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, FEATURES, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def _model(**kwargs) -> MDDClassifier:
    torch.manual_seed(0)
    return MDDClassifier(_backbone(), CLASSES, feature_dim=FEATURES, bottleneck_dim=BOTTLENECK, width=WIDTH, **kwargs)


def _images(batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("train", [True, False])
def test_forward_returns_the_same_type_in_both_modes(train):
    model = _model().train(train)
    outputs = model(_images())
    assert type(outputs) is MDDOutputs
    assert outputs.logits.shape == (4, CLASSES)
    assert outputs.adversarial_logits.shape == (4, CLASSES)
    assert outputs.features.shape == (4, BOTTLENECK)
    logits, adversarial_logits, features = outputs  # unpacks the same way in every mode
    assert logits is outputs.logits and features is outputs.features


def test_architecture_and_initialisation():
    model = _model()
    assert [type(m) for m in model.bottleneck] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    for head in (model.head, model.adversarial_head):
        assert [type(m) for m in head] == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
        assert head[0].weight.shape == (WIDTH, BOTTLENECK) and head[3].weight.shape == (CLASSES, WIDTH)
        assert torch.all(head[3].bias == 0)
    assert torch.all(model.bottleneck[0].bias == 0.1)
    assert model.bottleneck[3].p == 0.5
    assert isinstance(model.grl, WarmStartGradientReverseLayer) and model.grl.hi == 0.1
    assert model.head[0].weight is not model.adversarial_head[0].weight


def test_feature_dim_from_num_features():
    backbone = _backbone()
    backbone.num_features = FEATURES
    model = MDDClassifier(backbone, CLASSES, bottleneck_dim=BOTTLENECK, width=WIDTH)
    assert model.bottleneck[0].in_features == FEATURES
    with pytest.raises(ValueError, match="feature_dim"):
        MDDClassifier(_backbone(), CLASSES)


def _bottleneck_grads(model: MDDClassifier, output: torch.Tensor) -> list[torch.Tensor]:
    parameters = list(model.bottleneck.parameters()) + list(model.backbone.parameters())
    return list(torch.autograd.grad(output.pow(2).sum(), parameters, retain_graph=True))


def test_adversarial_head_sends_reversed_gradients_into_the_bottleneck():
    model = _model(grl=WarmStartGradientReverseLayer(lo=0.0, hi=1.0, max_iters=10)).eval()  # eval: no dropout
    model.grl.iteration.fill_(7)
    coeff = model.grl.coefficient
    assert 0.1 < coeff < 1.0
    x = _images()
    reversed_grads = _bottleneck_grads(model, model(x).adversarial_logits)
    plain = model.adversarial_head(model.bottleneck(model.backbone(x)))  # same computation without the GRL
    plain_grads = _bottleneck_grads(model, plain)
    for rev, ref in zip(reversed_grads, plain_grads):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(rev, -coeff * ref)
    # the adversarial head itself is trained on the loss as is
    head_params = list(model.adversarial_head.parameters())
    torch.testing.assert_close(
        torch.autograd.grad(model(x).adversarial_logits.pow(2).sum(), head_params),
        torch.autograd.grad(plain.pow(2).sum(), head_params),
    )


def test_main_head_gradients_are_not_reversed():
    model = _model(grl=WarmStartGradientReverseLayer(lo=1.0, hi=1.0)).eval()
    x = _images()
    plain = model.head(model.bottleneck(model.backbone(x)))
    torch.testing.assert_close(_bottleneck_grads(model, model(x).logits), _bottleneck_grads(model, plain))


def test_warm_start_begins_with_no_adversarial_gradient_into_features():
    model = _model().eval()
    grads = _bottleneck_grads(model, model(_images()).adversarial_logits)
    assert all(torch.count_nonzero(g) == 0 for g in grads)
    adversarial_logits = model(_images()).adversarial_logits
    (head_grad,) = torch.autograd.grad(adversarial_logits.pow(2).sum(), model.adversarial_head[3].weight)
    assert torch.count_nonzero(head_grad) > 0


def test_step_advances_schedule_and_counter_is_in_state_dict():
    model = _model()
    before = model.grl.coefficient
    for _ in range(5):
        model.step()
    assert model.grl.coefficient > before
    state = model.state_dict()
    assert int(state["grl.iteration"]) == 5
    resumed = _model()
    resumed.load_state_dict(state)
    assert int(resumed.grl.iteration) == 5


def test_inference_matches_classifier_in_eval():
    model = _model()
    model.train()
    model(_images(8))  # move BatchNorm running statistics away from their initial values
    model.step()
    model.eval()
    inference = MDDInference(model).eval()
    x = _images(5)
    with torch.no_grad():
        outputs = model(x)
        logits = inference(x)
        embedding = inference.embed(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (5, CLASSES)
    torch.testing.assert_close(logits, outputs.logits, rtol=0, atol=0)
    torch.testing.assert_close(embedding, outputs.features, rtol=0, atol=0)


def test_inference_shares_modules_and_exports_only_the_main_path():
    model = _model().eval()
    inference = MDDInference(model).eval()
    assert inference.head is model.head and inference.backbone is model.backbone
    keys = inference.state_dict().keys()
    assert not any(key.startswith(("adversarial_head", "grl")) for key in keys)
    assert {key.split(".")[0] for key in keys} == {"backbone", "bottleneck", "head"}
    with torch.no_grad():
        model.head[3].bias.add_(1.0)  # trained further: the inference module sees it
        torch.testing.assert_close(inference(_images()), model(_images()).logits, rtol=0, atol=0)


def test_parameter_groups():
    model = _model()
    groups = model.parameter_groups(base_lr=0.01)
    assert [g["name"] for g in groups] == ["backbone", "bottleneck", "head", "adversarial_head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.01, 0.01, 0.01])
    grouped = [id(p) for g in groups for p in g["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters()}
    assert model.parameter_groups(1.0, backbone_lr_scale=1.0)[0]["lr"] == 1.0
    optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    model.train()
    outputs = model(_images())
    (outputs.logits.sum() + outputs.adversarial_logits.sum()).backward()
    optimizer.step()
