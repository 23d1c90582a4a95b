"""The base class: arguments, clipping, weight decay, Keras 2 ``decay``, the learning-rate property,
constraints, the moving average, configs, state, ``get`` and dtypes."""

import math

import numpy as np
import pytest

from shenjing import backend as B
from shenjing import optimizers
from shenjing.autodiff import Variable
from shenjing.optimizers import schedules

from .helpers import gradient, make_variables, max_difference, run_shenjing

ALL_CLASSES = [optimizers.SGD, optimizers.Adagrad, optimizers.Adadelta, optimizers.RMSprop, optimizers.Adam,
               optimizers.AdamW, optimizers.Adamax, optimizers.Nadam]

# one instance per rule with non-default settings that use every slot
NON_DEFAULT = [
    lambda **kw: optimizers.SGD(0.05, momentum=0.9, nesterov=True, **kw),
    lambda **kw: optimizers.Adagrad(0.1, initial_accumulator_value=0.2, epsilon=1e-6, **kw),
    lambda **kw: optimizers.Adadelta(0.5, rho=0.9, epsilon=1e-6, **kw),
    lambda **kw: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, epsilon=1e-6, centered=True, **kw),
    lambda **kw: optimizers.Adam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6, amsgrad=True, **kw),
    lambda **kw: optimizers.AdamW(0.02, **{"weight_decay": 0.1, "beta_1": 0.8, **kw}),
    lambda **kw: optimizers.Adamax(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6, **kw),
    lambda **kw: optimizers.Nadam(0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-6, **kw),
]
IDS = [c.__name__ for c in ALL_CLASSES]


def scalar(value=1.0, dtype="float64", **kwargs):
    return Variable(np.array([value], dtype=dtype), dtype=dtype, **kwargs)


# ------------------------------------------------------------------------------------------- arguments
def test_unknown_argument_names_it():
    with pytest.raises(TypeError, match="'momentun'"):
        optimizers.SGD(momentun=0.9)
    with pytest.raises(TypeError, match="'beta1'"):
        optimizers.Adam(beta1=0.9)


def test_clipnorm_and_global_clipnorm_exclusive():
    with pytest.raises(ValueError, match="only one of clipnorm and global_clipnorm"):
        optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0)


def test_bad_values():
    with pytest.raises(ValueError, match="clipvalue"):
        optimizers.SGD(clipvalue=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.5)
    with pytest.raises(TypeError, match="learning_rate"):
        optimizers.SGD(learning_rate="fast")
    with pytest.raises(ValueError, match="ema_overwrite_frequency"):
        optimizers.SGD(use_ema=True, ema_overwrite_frequency=0)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)


def test_defaults_and_names():
    assert optimizers.SGD().learning_rate == 0.01
    assert optimizers.Adam().learning_rate == 0.001
    assert optimizers.AdamW().weight_decay == 0.004
    assert optimizers.Adam().name == "adam"
    assert optimizers.RMSprop(name="mine").name == "mine"


def test_lr_alias():
    assert optimizers.SGD(lr=0.3).learning_rate == 0.3
    opt = optimizers.Adam(lr=0.2)
    assert opt.lr == 0.2
    opt.lr = 0.1
    assert opt.learning_rate == 0.1


# -------------------------------------------------------------------------------------------- apply
def test_iterations_once_per_call_and_none_skipped():
    a, b = scalar(1.0), scalar(2.0)
    opt = optimizers.SGD(0.1)
    opt.apply_gradients([(np.array([1.0]), a), (None, b)])
    opt.apply([None, np.array([1.0])], [a, b])
    assert opt.iterations == 2
    assert a.data[0] == pytest.approx(0.9) and b.data[0] == pytest.approx(1.9)
    assert isinstance(opt.iterations, int)
    opt.iterations = 7
    assert opt.iterations == 7


def test_frozen_variable_not_updated():
    a = scalar(1.0, trainable=False)
    optimizers.SGD(0.1).apply([np.array([1.0])], [a])
    assert a.data[0] == 1.0


def test_apply_without_variables_uses_built_ones():
    a, b = scalar(1.0), scalar(2.0)
    opt = optimizers.SGD(0.5)
    opt.build([a, b])
    opt.apply([np.array([1.0]), np.array([2.0])])
    assert [a.data[0], b.data[0]] == [0.5, 1.0]
    with pytest.raises(ValueError, match="2 gradients for 1 variables"):
        opt.apply([np.array([1.0]), np.array([1.0])], [a])


def test_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        optimizers.SGD().apply([np.ones(3)], [scalar()])


@pytest.mark.parametrize("make", NON_DEFAULT, ids=IDS)
def test_update_in_place_and_gradients_untouched(make):
    variables = make_variables()
    arrays = [v.data for v in variables]
    opt = make(clipvalue=0.5, clipnorm=0.3)
    for _ in range(3):
        grads = gradient([v.data for v in variables])
        copies = [g.copy() for g in grads]
        opt.apply(grads, variables)
        for g, c in zip(grads, copies):
            np.testing.assert_array_equal(g, c)
    assert all(v.data is a for v, a in zip(variables, arrays))


# -------------------------------------------------------------------------------------------- clipping
def test_clipvalue():
    v = Variable(np.zeros(3), dtype="float64")
    optimizers.SGD(1.0, clipvalue=1.0).apply([np.array([5.0, -5.0, 0.5])], [v])
    np.testing.assert_allclose(v.data, [-1.0, 1.0, -0.5], atol=1e-15)


def test_clipnorm_per_variable():
    a, b = Variable(np.zeros(2), dtype="float64"), Variable(np.zeros(2), dtype="float64")
    optimizers.SGD(1.0, clipnorm=1.0).apply([np.array([3.0, 4.0]), np.array([0.3, 0.4])], [a, b])
    np.testing.assert_allclose(a.data, [-0.6, -0.8], atol=1e-15)
    np.testing.assert_allclose(b.data, [-0.3, -0.4], atol=1e-15)  # norm 0.5 < 1: unchanged


def test_global_clipnorm():
    a, b = Variable(np.zeros(2), dtype="float64"), Variable(np.zeros(2), dtype="float64")
    optimizers.SGD(1.0, global_clipnorm=1.0).apply([np.array([3.0, 0.0]), np.array([0.0, 4.0])], [a, b])
    np.testing.assert_allclose(a.data, [-0.6, 0.0], atol=1e-15)
    np.testing.assert_allclose(b.data, [0.0, -0.8], atol=1e-15)
    c = Variable(np.zeros(2), dtype="float64")
    optimizers.SGD(1.0, global_clipnorm=10.0).apply([np.array([3.0, 4.0])], [c])
    np.testing.assert_allclose(c.data, [-3.0, -4.0], atol=1e-15)


def test_clipvalue_then_clipnorm():
    # clipvalue first ([3, 4] -> [2, 2], norm sqrt(8)), then clipnorm to 1
    v = Variable(np.zeros(2), dtype="float64")
    optimizers.SGD(1.0, clipvalue=2.0, clipnorm=1.0).apply([np.array([3.0, 4.0])], [v])
    np.testing.assert_allclose(v.data, [-1 / np.sqrt(2), -1 / np.sqrt(2)], atol=1e-15)


# ----------------------------------------------------------------------------------- weight decay, decay
def test_weight_decay_decoupled_before_rule():
    # w = 2 - 0.1*0.5*2 = 1.9, then the SGD step: 1.9 - 0.1*1 = 1.8
    v = scalar(2.0)
    optimizers.SGD(0.1, weight_decay=0.5).apply([np.array([1.0])], [v])
    assert v.data[0] == pytest.approx(1.8, abs=1e-15)


def test_adamw_is_adam_with_weight_decay():
    a = run_shenjing(optimizers.AdamW(0.02, weight_decay=0.3))
    b = run_shenjing(optimizers.Adam(0.02, weight_decay=0.3))
    assert max_difference(a, b) == 0.0


def test_exclude_from_weight_decay():
    kernel = Variable(np.array([2.0]), name="dense/kernel", dtype="float64")
    bias = Variable(np.array([2.0]), name="dense/bias", dtype="float64")
    other = Variable(np.array([2.0]), name="other", dtype="float64")
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[other], var_names=["bias"])
    zero = np.array([0.0])
    opt.apply([zero, zero, zero], [kernel, bias, other])
    assert [kernel.data[0], bias.data[0], other.data[0]] == pytest.approx([1.9, 2.0, 2.0])


def test_keras2_time_decay():
    v = scalar(0.0)
    opt = optimizers.SGD(lr=0.1, decay=0.5)
    rates = []
    for _ in range(3):
        rates.append(opt.learning_rate)
        opt.apply([np.array([1.0])], [v])
    assert rates == pytest.approx([0.1, 0.1 / 1.5, 0.1 / 2.0], rel=1e-15)
    assert v.data[0] == pytest.approx(-(0.1 + 0.1 / 1.5 + 0.05), abs=1e-15)
    assert opt.get_config()["decay"] == 0.5
    # setting the rate sets the next step's rate; it decays from there
    opt.learning_rate = 0.2
    assert opt.learning_rate == pytest.approx(0.2)
    opt.apply([np.array([1.0])], [v])
    assert opt.learning_rate == pytest.approx(0.2 * 2.5 / 3.0)


# ----------------------------------------------------------------------------------------- learning rate
def test_learning_rate_setter():
    opt = optimizers.Adam(0.01)
    assert not opt.uses_schedule
    opt.learning_rate = 0.5
    assert opt.learning_rate == 0.5 and isinstance(opt.learning_rate, float)
    assert opt.get_config()["learning_rate"] == 0.5


def test_learning_rate_setter_refused_with_schedule():
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    assert opt.uses_schedule
    with pytest.raises(TypeError, match="ExponentialDecay"):
        opt.learning_rate = 0.01
    # a new schedule (or callable) can be installed
    opt.learning_rate = schedules.InverseTimeDecay(0.2, 1, 1.0)
    opt.iterations = 1
    assert opt.learning_rate == pytest.approx(0.1)


def test_callable_learning_rate():
    opt = optimizers.SGD(learning_rate=lambda it: 0.1 / (it + 1))
    assert opt.uses_schedule
    v = scalar(0.0)
    for _ in range(2):
        opt.apply([np.array([1.0])], [v])
    assert v.data[0] == pytest.approx(-0.15)
    with pytest.raises(TypeError):
        opt.learning_rate = 0.3
    with pytest.warns(UserWarning, match="plain callable"):
        assert opt.get_config()["learning_rate"] == pytest.approx(0.1 / 3)


# ------------------------------------------------------------------------------------------- constraint
@pytest.mark.parametrize("make", NON_DEFAULT, ids=IDS)
def test_constraint_applied_after_step(make):
    xp = B.xp
    v = Variable(np.array([0.001, 5.0]), dtype="float64", constraint=lambda a: xp.clip(a, 0.0, 1.0))
    data = v.data
    opt = make()
    opt.apply([np.array([10.0, -10.0])], [v])
    assert v.data is data
    assert v.data[1] == 1.0 and 0.0 <= v.data[0] <= 0.001


def test_constraint_sees_stepped_value():
    seen = []
    v = Variable(np.array([1.0]), dtype="float64", constraint=lambda a: (seen.append(a.copy()), a * 0.5)[1])
    optimizers.SGD(0.1, weight_decay=1.0).apply([np.array([1.0])], [v])
    assert seen[0][0] == pytest.approx(0.8)  # 1 - 0.1*1*1 (decay) - 0.1*1 (step)
    assert v.data[0] == pytest.approx(0.4)


# -------------------------------------------------------------------------------------------------- EMA
def _run_ema(opt, steps, grads=(1.0, -2.0, 0.5, 3.0, -1.0, 2.0)):
    v = scalar(1.0)
    values = [1.0]
    for k in range(steps):
        opt.apply([np.array([grads[k % len(grads)]])], [v])
        values.append(float(v.data[0]))
    return v, values


def test_ema_keras3():
    # step 1 copies the weight; afterwards avg = m*avg + (1-m)*w
    opt = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9)
    v, values = _run_ema(opt, 6)
    avg = values[1]
    for w in values[2:]:
        avg = 0.9 * avg + 0.1 * w
    assert opt.ema_weights[0][0] == pytest.approx(avg, abs=1e-12)
    assert v.data[0] == pytest.approx(values[-1])  # the model keeps its trained value


def test_ema_warmup():
    # TensorFlow: the average starts at the initial value; decay_n = min(m, (1 + n)/(10 + n)), n = 0, 1, ...
    opt = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5, ema_warmup=True)
    _, values = _run_ema(opt, 6)
    avg = values[0]
    for n, w in enumerate(values[1:]):
        decay = min(0.5, (1 + n) / (10 + n))
        avg = decay * avg + (1 - decay) * w
    assert opt.ema_weights[0][0] == pytest.approx(avg, abs=1e-12)
    # the first decay is 0.1, not 0 or the momentum
    first = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.99, ema_warmup=True)
    _, vals = _run_ema(first, 1)
    assert first.ema_weights[0][0] == pytest.approx(0.1 * 1.0 + 0.9 * vals[1], abs=1e-12)


def test_ema_swap_twice_restores_and_context():
    opt = optimizers.Adam(0.1, use_ema=True, ema_momentum=0.5)
    variables = make_variables()
    for _ in range(4):
        opt.apply(gradient([v.data for v in variables]), variables)
    trained = [v.data.copy() for v in variables]
    averages = [a.copy() for a in opt.ema_weights]
    assert max(np.max(np.abs(t - a)) for t, a in zip(trained, averages)) > 1e-3
    opt.swap_ema_weights(variables)
    for v, a in zip(variables, averages):
        np.testing.assert_array_equal(v.data, a)
    opt.swap_ema_weights(variables)
    for v, t in zip(variables, trained):
        np.testing.assert_array_equal(v.data, t)
    with opt.averaged_weights(variables):
        for v, a in zip(variables, averages):
            np.testing.assert_array_equal(v.data, a)
    for v, t in zip(variables, trained):
        np.testing.assert_array_equal(v.data, t)
    with pytest.raises(RuntimeError):
        with opt.averaged_weights(variables):
            raise RuntimeError("evaluation failed")
    for v, t in zip(variables, trained):
        np.testing.assert_array_equal(v.data, t)
    opt.finalize_variable_values(variables)
    for v, a in zip(variables, averages):
        np.testing.assert_array_equal(v.data, a)


def test_ema_overwrite_frequency():
    opt = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3)
    v = scalar(1.0)
    for _ in range(2):
        opt.apply([np.array([1.0])], [v])
    # weights 0.9, 0.8; averages 0.9 (the first step copies), 0.85
    assert v.data[0] == pytest.approx(0.8) and opt.ema_weights[0][0] == pytest.approx(0.85)
    opt.apply([np.array([1.0])], [v])
    # 3rd step: weight 0.7, average 0.5*0.85 + 0.5*0.7 = 0.775, which overwrites the weight
    assert v.data[0] == pytest.approx(0.775) and opt.ema_weights[0][0] == pytest.approx(0.775)
    opt.apply([np.array([1.0])], [v])
    assert v.data[0] == pytest.approx(0.675)


def test_ema_errors():
    opt = optimizers.SGD()
    assert opt.ema_weights == []
    with pytest.raises(ValueError, match="use_ema=True"):
        opt.swap_ema_weights([scalar()])
    opt.finalize_variable_values([scalar()])  # a no-op without EMA
    # a variable the optimizer never updated (no gradient yet) has no separate average: left alone
    ema = optimizers.SGD(0.1, use_ema=True)
    seen, unseen = scalar(1.0), scalar(5.0)
    ema.apply([np.array([1.0]), None], [seen, unseen])
    ema.apply([np.array([1.0])], [seen])
    ema.swap_ema_weights([seen, unseen])
    assert seen.data[0] == pytest.approx(0.9 * 0.99 + 0.8 * 0.01) and unseen.data[0] == 5.0
    fresh = scalar(3.0)
    ema.swap_ema_weights([fresh])
    assert fresh.data[0] == 3.0


# ----------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize("make", NON_DEFAULT, ids=IDS)
def test_config_round_trip(make):
    opt = make(clipnorm=0.5, clipvalue=2.0, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=5,
               ema_warmup=True, name="custom", decay=0.01)
    config = opt.get_config()
    again = type(opt).from_config(config)
    assert again.get_config() == config
    assert optimizers.deserialize(optimizers.serialize(opt)).get_config() == config
    assert max_difference(run_shenjing(make(global_clipnorm=1.0), steps=5),
                          run_shenjing(type(opt).from_config(make(global_clipnorm=1.0).get_config()), steps=5)) == 0.0


def test_config_is_json_friendly():
    import json

    for cls in ALL_CLASSES:
        config = cls(learning_rate=schedules.CosineDecay(0.1, 10)).get_config()
        assert json.loads(json.dumps(config)) == config


# ------------------------------------------------------------------------------------------------ state
def _steps(opt, variables, n):
    for _ in range(n):
        opt.apply(gradient([v.data for v in variables]), variables)


@pytest.mark.parametrize("make", NON_DEFAULT, ids=IDS)
def test_state_round_trip_gives_identical_next_step(make):
    first = make(use_ema=True)
    variables = make_variables()
    _steps(first, variables, 5)
    state = first.get_state()
    assert int(state["iterations"]) == 5
    assert "ema/0" in state and "ema/1" in state
    # the copy: same weights, a fresh optimizer restored from config + state (before it is built)
    twin_variables = make_variables()
    for t, v in zip(twin_variables, variables):
        t.data[...] = v.data
    twin = type(first).from_config(first.get_config())
    twin.set_state(state)
    _steps(first, variables, 3)
    _steps(twin, twin_variables, 3)
    for a, b in zip(variables, twin_variables):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(first.ema_weights, twin.ema_weights):
        np.testing.assert_array_equal(a, b)
    # state copies are not live
    state_again = first.get_state()
    assert int(state_again["iterations"]) == 8
    assert any(not np.array_equal(state[k], state_again[k]) for k in state if "/" in k)


def test_state_keys_and_built_set_state():
    opt = optimizers.Adam()
    variables = make_variables()
    opt.build(variables)
    state = opt.get_state()
    assert sorted(state) == ["iterations", "m/0", "m/1", "v/0", "v/1"]
    assert state["m/1"].shape == (2, 2)
    slot = opt._slot("m", 1)
    opt.set_state({"iterations": np.array(3), "m/1": np.ones((2, 2))})
    assert opt.iterations == 3 and opt._slot("m", 1) is slot and np.all(slot == 1.0)


def test_set_state_errors():
    opt = optimizers.Adam()
    opt.build(make_variables())
    with pytest.raises(ValueError, match="shape"):
        opt.set_state({"m/0": np.zeros(5)})
    with pytest.raises(ValueError, match="unknown slot 'momentum'"):
        opt.set_state({"momentum/0": np.zeros(3)})
    with pytest.raises(ValueError, match="unexpected key"):
        opt.set_state({"weights": np.zeros(3)})
    pending = optimizers.Adam()
    pending.set_state({"m/0": np.zeros(7)})
    with pytest.raises(ValueError, match="shape"):
        pending.build(make_variables())


def test_nadam_iterations_set_by_hand():
    # the momentum-cache product is recomputed when iterations jumps
    a, b = optimizers.Nadam(0.01), optimizers.Nadam(0.01)
    va, vb = make_variables(), make_variables()
    _steps(a, va, 4)
    state = a.get_state()
    state.pop("u_product"), state.pop("u_product_steps")
    for t, v in zip(vb, va):
        t.data[...] = v.data
    b.set_state(state)
    _steps(a, va, 2)
    _steps(b, vb, 2)
    for x, y in zip(va, vb):
        np.testing.assert_allclose(x.data, y.data, rtol=0, atol=1e-14)


# -------------------------------------------------------------------------------------------------- get
@pytest.mark.parametrize("name, cls", [("sgd", optimizers.SGD), ("SGD", optimizers.SGD), ("adam", optimizers.Adam),
                                       ("Adam", optimizers.Adam), ("ADAM", optimizers.Adam),
                                       ("rmsprop", optimizers.RMSprop), ("adagrad", optimizers.Adagrad),
                                       ("adadelta", optimizers.Adadelta), ("adamax", optimizers.Adamax),
                                       ("nadam", optimizers.Nadam), ("adamw", optimizers.AdamW)])
def test_get_by_name(name, cls):
    opt = optimizers.get(name)
    assert type(opt) is cls
    assert opt.get_config() == cls().get_config()


def test_get_other_identifiers():
    opt = optimizers.Adam(0.3)
    assert optimizers.get(opt) is opt
    again = optimizers.get({"class_name": "Adam", "config": {"learning_rate": 0.3}})
    assert isinstance(again, optimizers.Adam) and again.learning_rate == 0.3
    with pytest.raises(ValueError, match="'sgdd'"):
        optimizers.get("sgdd")
    with pytest.raises(ValueError, match="'foo'"):
        optimizers.get({"class_name": "foo", "config": {}})
    with pytest.raises(ValueError):
        optimizers.get(42)


# ------------------------------------------------------------------------------------------------ dtype
@pytest.mark.parametrize("make", NON_DEFAULT, ids=IDS)
def test_float32_stays_float32(make):
    opt = make(use_ema=True, clipnorm=1.0, weight_decay=0.01, decay=0.01)
    variables = make_variables("float32")
    for _ in range(3):
        grads = gradient([v.data.astype("float64") for v in variables])  # float64 gradients on purpose
        opt.apply(grads, variables)
    assert all(v.data.dtype == np.float32 for v in variables)
    assert all(a.dtype == np.float32 for k, a in opt.get_state().items() if "/" in k)
    assert all(np.all(np.isfinite(v.data)) for v in variables)


def test_float32_trajectory_close_to_float64():
    a = run_shenjing(optimizers.Adam(0.05), dtype="float32")
    b = run_shenjing(optimizers.Adam(0.05), dtype="float64")
    assert max_difference(a, b) < 1e-4


# ------------------------------------------------------------------- in place, block by block


def _reference_step(opt, w, g, lr):
    """The rule's formula on whole arrays with temporaries (what each rule's docstring writes), for one
    variable and one step, reading and writing the optimizer's slots of variable 0."""
    slot = lambda name: opt._slots[name][0]  # noqa: E731
    t = opt.iterations + 1
    if isinstance(opt, optimizers.Adam):
        b1, b2 = opt.beta_1, opt.beta_2
        m, v = slot("m"), slot("v")
        m += (1.0 - b1) * (g - m)
        v += (1.0 - b2) * (np.square(g) - v)
        if opt.amsgrad:
            np.maximum(slot("vhat"), v, out=slot("vhat"))
            v = slot("vhat")
        w -= (lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)) * m / (np.sqrt(v) + opt.epsilon)
    elif isinstance(opt, optimizers.SGD):
        m = slot("momentum")
        m *= opt.momentum
        m -= lr * g
        w += opt.momentum * m - lr * g if opt.nesterov else m
    elif isinstance(opt, optimizers.RMSprop):
        v = slot("velocity")
        v *= opt.rho
        v += (1.0 - opt.rho) * np.square(g)
        denom = v
        if opt.centered:
            mg = slot("average_gradient")
            mg *= opt.rho
            mg += (1.0 - opt.rho) * g
            denom = v - np.square(mg)
        inc = lr * g / np.sqrt(denom + opt.epsilon)
        if opt.momentum > 0:
            b = slot("momentum")
            b *= opt.momentum
            b += inc
            inc = b
        w -= inc
    else:
        raise AssertionError(type(opt))


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(0.02, amsgrad=True),
    lambda: optimizers.Adam(0.02),
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
], ids=["amsgrad", "adam_fused", "nesterov", "rmsprop"])
@pytest.mark.parametrize("layout", ["small", "large", "large_fortran", "large_fortran_gradient"])
def test_in_place_blockwise_update_is_the_formula_bit_for_bit(make, layout):
    """The rules update in place with scratch buffers, a large variable block by block — a
    column-major one with a column-major gradient (Dense's large kernels) as flat column-major views,
    one whose gradient has another layout as a whole: the same bits as the formula computed with
    temporaries, and the variable keeps its array and its layout."""
    from shenjing.optimizers import base

    rng = np.random.default_rng(0)
    shape = (3, 5) if layout == "small" else (base._BLOCK // 100 + 7, 203)  # large: several blocks and a tail
    assert (np.prod(shape) > base._BLOCK) == (layout != "small")
    fortran = layout.startswith("large_fortran")
    for dtype in ("float32", "float64"):
        start = rng.normal(size=shape).astype(dtype)
        ours = Variable(start, dtype=dtype, order="F" if fortran else "C")
        ref = Variable(start, dtype=dtype)
        array = ours.data
        opt_ours, opt_ref = make(), make()
        opt_ours.build([ours])
        opt_ref.build([ref])
        for step in range(4):
            g = rng.normal(size=shape).astype(dtype) * (step + 1)
            opt_ours.apply_gradients([(np.asfortranarray(g) if layout == "large_fortran_gradient" else g, ours)])
            _reference_step(opt_ref, ref.data, g, opt_ref.learning_rate)
            opt_ref.iterations += 1
            np.testing.assert_array_equal(ours.data, ref.data)
            for name in opt_ours._slots:
                np.testing.assert_array_equal(opt_ours._slots[name][0], opt_ref._slots[name][0])
                assert opt_ours._slots[name][0].flags.f_contiguous == fortran
        assert ours.data is array and ours.data.flags.f_contiguous == fortran
        assert ours.data.dtype == dtype


def test_state_and_gradients_take_a_column_major_variables_layout():
    """Slots restored by set_state (row-major arrays, as a file gives them) and a row-major gradient are
    brought to the variable's column-major layout: the update runs over flat arrays, with the same bits."""
    rng = np.random.default_rng(1)
    shape = (300, 250)
    start = rng.normal(size=shape).astype(np.float32)
    grads = [rng.normal(size=shape).astype(np.float32) for _ in range(4)]
    reference, ours = Variable(start, order="F"), Variable(start, order="F")
    opt_ref, opt = optimizers.Adam(0.01), optimizers.Adam(0.01)
    for g in grads[:2]:
        opt_ref.apply_gradients([(np.asfortranarray(g), reference)])
        opt.apply_gradients([(np.asfortranarray(g), ours)])
    state = {key: np.array(value, order="C") for key, value in opt.get_state().items()}
    opt = optimizers.Adam(0.01)
    opt.build([ours])
    opt.set_state(state)
    for g in grads[2:]:
        opt_ref.apply_gradients([(np.asfortranarray(g), reference)])
        opt.apply_gradients([(g, ours)])  # row-major
        assert all(opt._slots[name][0].flags.f_contiguous for name in ("m", "v"))
    np.testing.assert_array_equal(ours.data, reference.data)
    assert ours.data.flags.f_contiguous


@pytest.mark.parametrize("make", [
    lambda eps: optimizers.Adam(0.01, epsilon=eps), lambda eps: optimizers.Nadam(0.01, epsilon=eps),
    lambda eps: optimizers.Adamax(0.01, epsilon=eps), lambda eps: optimizers.RMSprop(0.01, epsilon=eps),
    lambda eps: optimizers.Adadelta(1.0, epsilon=eps),
], ids=["adam", "nadam", "adamax", "rmsprop", "adadelta"])
@pytest.mark.parametrize("epsilon", [0.0, 1e-12, 1e-8])
def test_small_epsilon_updates_stay_the_numpy_rules(make, epsilon):
    """Tiny gradients with a small epsilon: the compiled rules' flush must not change a weight (for ε = 0 it
    would divide by a flushed 0), so they give the NumPy rules' weights."""
    from shenjing.backend import jit

    results = []
    for compiled in (False, True):
        jit.set_enabled(compiled)
        try:
            w = Variable(np.linspace(-1, 1, 64).astype(np.float32))
            opt = make(epsilon)
            for step in range(4):
                opt.apply_gradients([(np.full(64, 1e-16 * (step + 1), np.float32), w)])
            results.append(w.data.copy())
        finally:
            jit.set_enabled(None)
    assert np.all(np.isfinite(results[1]))
    np.testing.assert_array_equal(results[1], results[0])


def test_a_strided_variables_slots_are_made_once():
    """A variable whose array was replaced by a strided view keeps one slot array (it was copied every step)."""
    v = Variable(np.ones((6, 8), np.float32))
    v.data = np.ones((6, 16), np.float32)[:, ::2]
    opt = optimizers.Adam()
    opt.apply_gradients([(np.ones((6, 8), np.float32), v)])
    slot = opt._slots["m"][0]
    for _ in range(2):
        opt.apply_gradients([(np.ones((6, 8), np.float32), v)])
    assert opt._slots["m"][0] is slot


def test_flat_views_share_one_element_order():
    from shenjing.optimizers.base import flat_views

    a = np.arange(12.0).reshape(3, 4)
    f = np.asfortranarray(a)
    c_views, f_views = flat_views(a, a.copy()), flat_views(f, f.copy(order="F"))
    assert all(np.shares_memory(v, src) for v, src in zip(f_views, (f,))) and f_views[0].ndim == 1
    np.testing.assert_array_equal(c_views[0], a.ravel())
    np.testing.assert_array_equal(f_views[0], a.ravel(order="F"))
    f_views[0][1] = -1.0  # a view: writes reach the array
    assert f[1, 0] == -1.0
    assert flat_views(a, f) is None  # no common order without a copy
    vector = np.arange(3.0)
    assert len(flat_views(vector, vector.copy())) == 2


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=IDS)
def test_scalar_shaped_variables(cls):
    """A variable of shape () is updated like one of shape (1,) (Adagrad and RMSprop used to fail on it)."""
    a, b = Variable(np.array(0.5)), Variable(np.array([0.5]))
    opt_a, opt_b = cls(), cls()
    for step in range(3):
        opt_a.apply_gradients([(np.array(0.1 * (step + 1)), a)])
        opt_b.apply_gradients([(np.array([0.1 * (step + 1)]), b)])
    assert a.shape == () and a.data.dtype == np.float32
    np.testing.assert_array_equal(a.data.reshape(1), b.data)


def test_updates_allocate_no_per_step_arrays_for_large_variables():
    """After the first step, an Adam step on a large variable allocates no array of the variable's size:
    the slots, the scratch buffers and the weights are reused (the gradient is not written to)."""
    import tracemalloc

    w = Variable(np.zeros((600, 500), np.float32))
    g = np.full((600, 500), 0.01, np.float32)
    opt = optimizers.Adam()
    opt.apply_gradients([(g, w)])
    before = [id(opt._slots["m"][0]), id(opt._slots["v"][0]), id(w.data)]
    tracemalloc.start()
    opt.apply_gradients([(g, w)])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < w.data.nbytes // 4, peak
    assert before == [id(opt._slots["m"][0]), id(opt._slots["v"][0]), id(w.data)]
    assert np.all(g == np.float32(0.01))
