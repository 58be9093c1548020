"""Training schedules computed up front as arrays and indexed by step or epoch, as in facebookresearch/dino."""

from __future__ import annotations

import numpy as np

__all__ = ["cosine_schedule", "teacher_temperature_schedule"]


def cosine_schedule(
    base_value: float,
    final_value: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int = 0,
    start_warmup_value: float = 0.0,
) -> np.ndarray:
    r"""One value per optimisation step: linear warm-up, then a cosine from ``base_value`` to ``final_value``.

    DINO's ``utils.cosine_scheduler``, used for the learning rate, the weight decay and the teacher momentum.
    With ``W = warmup_epochs * steps_per_epoch`` warm-up steps and ``n = epochs * steps_per_epoch - W`` cosine
    steps, step ``W + i`` (``0 <= i < n``) takes

    .. math:: f + \tfrac{1}{2} (b - f) \big(1 + \cos(\pi i / n)\big),

    so the last value is close to, not exactly, ``final_value``. The warm-up is
    ``np.linspace(start_warmup_value, base_value, W)``: it ends on ``base_value``.

    Args:
        base_value: Value after the warm-up (peak learning rate, initial momentum...).
        final_value: Value the cosine tends to at the end of training.
        epochs: Training epochs.
        steps_per_epoch: Optimisation steps per epoch.
        warmup_epochs: Epochs of linear warm-up.
        start_warmup_value: First warm-up value.

    Returns:
        ``(epochs * steps_per_epoch,)`` float64 array; index it with the global step.

    Raises:
        ValueError: If a count is negative or the warm-up is longer than training.
    """
    if epochs < 0 or steps_per_epoch < 0 or not 0 <= warmup_epochs <= epochs:
        raise ValueError(
            f"need 0 <= warmup_epochs <= epochs and steps_per_epoch >= 0, got {warmup_epochs}, {epochs}, "
            f"{steps_per_epoch}"
        )
    warmup_steps = warmup_epochs * steps_per_epoch
    warmup = np.linspace(start_warmup_value, base_value, warmup_steps)
    steps = np.arange(epochs * steps_per_epoch - warmup_steps)
    cosine = final_value + 0.5 * (base_value - final_value) * (1.0 + np.cos(np.pi * steps / max(len(steps), 1)))
    return np.concatenate((warmup, cosine)).astype(np.float64)


def teacher_temperature_schedule(
    warmup_teacher_temp: float, teacher_temp: float, warmup_epochs: int, epochs: int
) -> np.ndarray:
    """One teacher temperature per epoch: linear from ``warmup_teacher_temp`` to ``teacher_temp``, then constant.

    As DINO builds it for :class:`hema.train.losses.DINOLoss`: ``np.linspace(warmup_teacher_temp, teacher_temp,
    warmup_epochs)`` (the warm-up's last epoch already at ``teacher_temp``) followed by ``teacher_temp`` for the
    remaining epochs.

    Args:
        warmup_teacher_temp: Temperature of the first epoch (DINO: 0.04).
        teacher_temp: Temperature after the warm-up (DINO: 0.04 to 0.07).
        warmup_epochs: Epochs of warm-up (DINO: 30).
        epochs: Training epochs.

    Returns:
        ``(epochs,)`` float64 array; index it with the epoch.

    Raises:
        ValueError: If the warm-up is longer than training or a temperature is not positive.
    """
    if not 0 <= warmup_epochs <= epochs:
        raise ValueError(f"need 0 <= warmup_epochs <= epochs, got {warmup_epochs} and {epochs}")
    if warmup_teacher_temp <= 0 or teacher_temp <= 0:
        raise ValueError(f"temperatures must be positive, got {warmup_teacher_temp} and {teacher_temp}")
    warmup = np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)
    return np.concatenate((warmup, np.full(epochs - warmup_epochs, float(teacher_temp))))
