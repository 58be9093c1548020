"""DINOLoss against an independent float64 reference, its centre update, and its gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hema.train.dino.loss import DINOLoss


def _softmax(row: np.ndarray) -> np.ndarray:
    exps = np.array([math.exp(value - row.max()) for value in row])
    return exps / exps.sum()


def _log_softmax(row: np.ndarray) -> np.ndarray:
    log_normaliser = row.max() + math.log(sum(math.exp(value - row.max()) for value in row))
    return row - log_normaliser


def reference_dino_loss(
    student: np.ndarray,
    teacher: np.ndarray,
    center: np.ndarray,
    n_crops: int,
    student_temp: float,
    teacher_temp: float,
) -> float:
    """The DINO loss written out: loop over (teacher crop, student crop) pairs and over samples, in float64."""
    student, teacher, center = (np.asarray(a, dtype=np.float64) for a in (student, teacher, center))
    batch = teacher.shape[0] // 2
    pair_losses = []
    for teacher_crop in range(2):
        for student_crop in range(n_crops):
            if teacher_crop == student_crop:
                continue
            sample_losses = []
            for sample in range(batch):
                t = teacher[teacher_crop * batch + sample]
                s = student[student_crop * batch + sample]
                p_teacher = _softmax((t - center[0]) / teacher_temp)
                log_p_student = _log_softmax(s / student_temp)
                sample_losses.append(-sum(p * q for p, q in zip(p_teacher, log_p_student)))
            pair_losses.append(sum(sample_losses) / batch)
    return sum(pair_losses) / len(pair_losses)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("out_dim", [5, 64])
@pytest.mark.parametrize("local_crops", [0, 2, 6])
@pytest.mark.parametrize("student_temp", [0.1, 0.3])
@pytest.mark.parametrize("teacher_temp", [0.04, 0.07])
def test_loss_matches_reference(batch, out_dim, local_crops, student_temp, teacher_temp):
    generator = torch.Generator().manual_seed(batch * 1000 + out_dim * 10 + local_crops)
    n_crops = 2 + local_crops
    student = torch.randn(n_crops * batch, out_dim, generator=generator) * 3
    teacher = torch.randn(2 * batch, out_dim, generator=generator) * 3
    center = torch.randn(1, out_dim, generator=generator) * 0.5
    # the temperature of epoch 1 must be used, not its neighbours
    loss_fn = DINOLoss(out_dim, [0.5, teacher_temp, 0.9], student_temp=student_temp)
    loss_fn.center.copy_(center)

    loss = loss_fn(student, teacher, epoch=1)

    expected = reference_dino_loss(
        student.numpy(), teacher.numpy(), center.numpy(), n_crops, student_temp, teacher_temp
    )
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_center_follows_ema_of_teacher_mean():
    generator = torch.Generator().manual_seed(0)
    loss_fn = DINOLoss(8, [0.04], center_momentum=0.8)
    initial = torch.randn(1, 8, generator=generator)
    loss_fn.center.copy_(initial)
    first = torch.randn(6, 8, generator=generator)
    second = torch.randn(6, 8, generator=generator) + 2

    loss_fn(torch.randn(12, 8, generator=generator), first, epoch=0)
    after_first = 0.8 * initial + 0.2 * first.mean(dim=0, keepdim=True)
    torch.testing.assert_close(loss_fn.center, after_first)
    loss_fn(torch.randn(12, 8, generator=generator), second, epoch=0)
    torch.testing.assert_close(loss_fn.center, 0.8 * after_first + 0.2 * second.mean(dim=0, keepdim=True))


def test_center_is_a_buffer_used_before_its_update():
    loss_fn = DINOLoss(4, [0.1])
    assert loss_fn.center.shape == (1, 4)
    assert "center" in loss_fn.state_dict()
    student, teacher = torch.randn(4, 4), torch.randn(4, 4) * 5
    # the loss of this step uses the centre as it was (zero), not the one updated from this teacher batch
    expected = reference_dino_loss(student.numpy(), teacher.numpy(), np.zeros((1, 4)), 2, 0.1, 0.1)
    assert loss_fn(student, teacher, epoch=0).item() == pytest.approx(expected, rel=1e-5)
    assert loss_fn.center.abs().sum() > 0


def test_center_update_averages_over_all_processes(monkeypatch):
    """Simulated two-process run: all_reduce adds the other rank's sum, the mean is over both ranks' rows."""
    generator = torch.Generator().manual_seed(1)
    ours, theirs = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator) + 3
    reduced = []

    def fake_all_reduce(tensor):
        reduced.append(tensor.clone())
        tensor.add_(theirs.sum(dim=0, keepdim=True))

    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", fake_all_reduce)
    loss_fn = DINOLoss(6, [0.04], center_momentum=0.5)
    loss_fn.update_center(ours)

    assert len(reduced) == 1
    torch.testing.assert_close(reduced[0], ours.sum(dim=0, keepdim=True))
    torch.testing.assert_close(loss_fn.center, 0.5 * torch.cat([ours, theirs]).mean(dim=0, keepdim=True))


def test_single_process_needs_no_process_group():
    assert not torch.distributed.is_initialized()
    loss_fn = DINOLoss(3, [0.04])
    loss_fn.update_center(torch.ones(2, 3))
    torch.testing.assert_close(loss_fn.center, torch.full((1, 3), 0.1))


def test_teacher_gets_no_gradient_and_student_does():
    student = torch.randn(8, 10, requires_grad=True)
    teacher = torch.randn(4, 10, requires_grad=True)
    loss = DINOLoss(10, [0.04])(student, teacher, epoch=0)
    loss.backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_student_matching_teacher_beats_random_students():
    generator = torch.Generator().manual_seed(2)
    batch, out_dim, n_crops, student_temp, teacher_temp = 4, 16, 4, 0.1, 0.05
    teacher = torch.randn(batch, out_dim, generator=generator).repeat(2, 1)
    # student logits whose softmax at student_temp equals the teacher's softmax at teacher_temp, in every crop
    matching = (teacher[:batch] / teacher_temp * student_temp).repeat(n_crops, 1)
    loss_fn = DINOLoss(out_dim, [teacher_temp], student_temp=student_temp, center_momentum=1.0)

    best = loss_fn(matching, teacher, epoch=0).item()
    probs = torch.softmax(teacher[:batch].double() / teacher_temp, dim=-1)
    entropy = -(probs * probs.log()).sum(dim=-1).mean().item()
    assert best == pytest.approx(entropy, rel=1e-4, abs=1e-6)
    for _ in range(5):
        random_student = torch.randn(n_crops * batch, out_dim, generator=generator)
        assert loss_fn(random_student, teacher, epoch=0).item() > best + 0.1


def test_confident_agreement_gives_near_zero_loss():
    out_dim = 7
    classes = torch.tensor([0, 4, 6])
    one_hot = torch.nn.functional.one_hot(classes, out_dim).float()
    teacher, student = (one_hot * 10).repeat(2, 1), (one_hot * 10).repeat(4, 1)
    loss_fn = DINOLoss(out_dim, [0.04])
    assert loss_fn(student, teacher, epoch=0).item() < 1e-6
    disagreeing = (torch.nn.functional.one_hot((classes + 1) % out_dim, out_dim).float() * 10).repeat(4, 1)
    assert loss_fn(disagreeing, teacher, epoch=0).item() > 10


@pytest.mark.parametrize(
    ("student_rows", "teacher_rows", "out_dim"),
    [(8, 3, 5), (7, 4, 5), (2, 4, 5), (8, 4, 6)],
    ids=["odd-teacher", "student-not-multiple", "fewer-student-crops", "wrong-out-dim"],
)
def test_inconsistent_shapes_are_refused(student_rows, teacher_rows, out_dim):
    loss_fn = DINOLoss(5, [0.04])
    with pytest.raises(ValueError):
        loss_fn(torch.randn(student_rows, out_dim), torch.randn(teacher_rows, out_dim), epoch=0)


def test_epoch_outside_schedule_is_refused():
    loss_fn = DINOLoss(5, np.array([0.04, 0.05]))
    with pytest.raises(IndexError):
        loss_fn(torch.randn(4, 5), torch.randn(4, 5), epoch=2)


@pytest.mark.parametrize("kwargs", [{"teacher_temp_schedule": []}, {"student_temp": 0.0}, {"center_momentum": 1.5}])
def test_invalid_parameters_are_refused(kwargs):
    arguments = {"out_dim": 5, "teacher_temp_schedule": [0.04], **kwargs}
    with pytest.raises(ValueError):
        DINOLoss(**arguments)
