"""Schedules against DINO's formulas at known steps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hema.train.run.schedules import cosine_schedule, teacher_temperature_schedule


def test_cosine_schedule_with_warmup_at_known_steps():
    base, final, epochs, steps_per_epoch, warmup_epochs, start = 5e-4, 1e-6, 10, 7, 2, 1e-5
    schedule = cosine_schedule(base, final, epochs, steps_per_epoch, warmup_epochs, start)
    warmup_steps, cosine_steps = 14, 56

    assert schedule.shape == (70,)
    assert schedule[0] == pytest.approx(start)
    assert schedule[warmup_steps - 1] == pytest.approx(base)  # the warm-up ends on the base value
    assert schedule[1] - schedule[0] == pytest.approx((base - start) / (warmup_steps - 1))
    assert schedule[warmup_steps] == pytest.approx(base)  # cosine step 0
    half = warmup_steps + cosine_steps // 2
    assert schedule[half] == pytest.approx((base + final) / 2)
    last = final + 0.5 * (base - final) * (1 + math.cos(math.pi * (cosine_steps - 1) / cosine_steps))
    assert schedule[-1] == pytest.approx(last, rel=1e-12)
    assert schedule[-1] > final
    assert np.all(np.diff(schedule[warmup_steps:]) < 0)


def test_cosine_schedule_without_warmup_can_rise():
    schedule = cosine_schedule(0.996, 1.0, epochs=3, steps_per_epoch=4)  # teacher momentum goes up
    assert schedule.shape == (12,)
    assert schedule[0] == pytest.approx(0.996)
    assert schedule[6] == pytest.approx(0.998)
    assert schedule[-1] == pytest.approx(1.0 - 0.5 * 0.004 * (1 + math.cos(math.pi * 11 / 12)))
    assert np.all(np.diff(schedule) > 0)


def test_cosine_schedule_all_warmup():
    schedule = cosine_schedule(1.0, 0.0, epochs=2, steps_per_epoch=3, warmup_epochs=2)
    np.testing.assert_allclose(schedule, np.linspace(0.0, 1.0, 6))


@pytest.mark.parametrize(("epochs", "steps", "warmup"), [(2, 3, 3), (-1, 3, 0), (2, -1, 0)])
def test_cosine_schedule_refuses_bad_counts(epochs, steps, warmup):
    with pytest.raises(ValueError):
        cosine_schedule(1.0, 0.0, epochs, steps, warmup)


def test_teacher_temperature_warms_up_then_stays():
    schedule = teacher_temperature_schedule(0.04, 0.07, warmup_epochs=4, epochs=10)
    assert schedule.shape == (10,)
    assert schedule[0] == pytest.approx(0.04)
    assert schedule[1] == pytest.approx(0.05)
    assert schedule[3] == pytest.approx(0.07)
    np.testing.assert_allclose(schedule[3:], 0.07)


def test_teacher_temperature_without_warmup_is_constant():
    np.testing.assert_allclose(teacher_temperature_schedule(0.04, 0.06, 0, 5), np.full(5, 0.06))


@pytest.mark.parametrize(("warmup_temp", "temp", "warmup", "epochs"), [(0.04, 0.07, 6, 5), (0.0, 0.07, 1, 5)])
def test_teacher_temperature_refuses_bad_arguments(warmup_temp, temp, warmup, epochs):
    with pytest.raises(ValueError):
        teacher_temperature_schedule(warmup_temp, temp, warmup, epochs)
