"""Learning-rate schedules: Keras's formulas at chosen steps (golden numbers), configs, and their use
by an optimizer."""

import math

import numpy as np
import pytest

from shenjing import optimizers
from shenjing.autodiff import Variable
from shenjing.optimizers import schedules


@pytest.mark.parametrize("step, expected",
                         [(0, 0.1), (5, 0.1 * 0.5 ** 0.5), (10, 0.05), (20, 0.025), (15, 0.1 * 0.5 ** 1.5)])
def test_exponential_decay(step, expected):
    assert schedules.ExponentialDecay(0.1, 10, 0.5)(step) == pytest.approx(expected, rel=1e-12)


def test_exponential_decay_numbers_and_staircase():
    s = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert s(5) == pytest.approx(0.07071067811865475, rel=1e-12)
    st = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert [st(k) for k in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-12)


def test_inverse_time_decay():
    s = schedules.InverseTimeDecay(0.1, 10, 0.5)
    assert [s(0), s(5), s(10), s(15)] == pytest.approx([0.1, 0.08, 0.1 / 1.5, 0.1 / 1.75], rel=1e-12)
    st = schedules.InverseTimeDecay(0.1, 10, 0.5, staircase=True)
    assert [st(9), st(10), st(15), st(25)] == pytest.approx([0.1, 0.1 / 1.5, 0.1 / 1.5, 0.05], rel=1e-12)


def test_piecewise_constant_decay():
    s = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(k) for k in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="one more element"):
        schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5])


def test_cosine_decay():
    s = schedules.CosineDecay(0.1, 100)
    assert [s(0), s(50), s(100), s(200)] == pytest.approx([0.1, 0.05, 0.0, 0.0], abs=1e-15)
    assert s(25) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-12)
    a = schedules.CosineDecay(0.1, 100, alpha=0.1)
    assert [a(50), a(100), a(150)] == pytest.approx([0.055, 0.01, 0.01], rel=1e-12)


def test_cosine_decay_warmup():
    s = schedules.CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=10)
    assert [s(0), s(5), s(10), s(60), s(110), s(500)] == pytest.approx([0.0, 0.05, 0.1, 0.05, 0.0, 0.0], abs=1e-15)
    # without a warm-up target the warm-up steps are ignored (Keras)
    assert schedules.CosineDecay(0.1, 100, warmup_steps=10)(50) == pytest.approx(0.05, rel=1e-12)


ALL = [
    schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True),
    schedules.InverseTimeDecay(0.2, 7, 0.3),
    schedules.PiecewiseConstantDecay([3, 8], [0.3, 0.2, 0.1]),
    schedules.CosineDecay(0.01, 40, alpha=0.2, warmup_target=0.1, warmup_steps=5),
]


@pytest.mark.parametrize("schedule", ALL, ids=lambda s: type(s).__name__)
def test_schedule_config_round_trip(schedule):
    again = schedules.deserialize(schedules.serialize(schedule))
    assert type(again) is type(schedule)
    assert again.get_config() == schedule.get_config()
    assert [again(k) for k in range(50)] == [schedule(k) for k in range(50)]
    assert type(schedule).from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_schedule_errors():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="Nope"):
        schedules.deserialize({"class_name": "Nope", "config": {}})


def test_optimizer_follows_schedule():
    s = schedules.PiecewiseConstantDecay([1], [0.5, 0.1])
    opt = optimizers.SGD(learning_rate=s)
    assert opt.uses_schedule
    v = Variable(np.array([0.0]), dtype="float64")
    seen = []
    for _ in range(4):
        seen.append(opt.learning_rate)
        opt.apply([np.array([1.0])], [v])
    # the schedule is evaluated at iterations 0, 1, 2, 3: steps <= 1 use 0.5
    assert seen == [0.5, 0.5, 0.1, 0.1]
    assert v.data[0] == pytest.approx(-1.2, abs=1e-12)


def test_optimizer_config_keeps_schedule():
    opt = optimizers.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    config = opt.get_config()
    assert config["learning_rate"] == {"class_name": "ExponentialDecay",
                                       "config": opt._learning_rate.get_config()}
    again = optimizers.Adam.from_config(config)
    assert isinstance(again._learning_rate, schedules.ExponentialDecay)
    again.iterations = 10
    assert again.learning_rate == pytest.approx(0.05)
