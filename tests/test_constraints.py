import json

import numpy as np
import pytest

from shenjing import backend, constraints
from shenjing.autodiff import Variable

EPS = 1e-7


@pytest.fixture
def w():
    return np.random.default_rng(0).normal(scale=2.0, size=(6, 5))


def _norms(x, axis):
    return np.sqrt((x * x).sum(axis=axis, keepdims=True))


def test_max_norm(w):
    out = constraints.MaxNorm(max_value=1.5)(w)
    norms = _norms(out, 0)
    assert np.all(norms <= 1.5 + 1e-6)
    before = _norms(w, 0)
    # columns whose norm was already small are (almost) untouched
    small = before[0] <= 1.5
    np.testing.assert_allclose(out[:, small], w[:, small] * before[:, small] / (EPS + before[:, small]))
    np.testing.assert_allclose(norms[0, ~small], 1.5, rtol=1e-6)
    # the direction is kept
    np.testing.assert_allclose(out / _norms(out, 0), w / before, rtol=1e-6)


def test_max_norm_formula(w):
    out = constraints.MaxNorm(2.0, axis=1)(w)
    n = _norms(w, 1)
    np.testing.assert_allclose(out, w * np.clip(n, 0, 2.0) / (EPS + n), rtol=1e-12)


def test_non_neg(w):
    out = constraints.NonNeg()(w)
    np.testing.assert_array_equal(out, np.where(w >= 0, w, 0))
    assert np.all(out >= 0)


@pytest.mark.parametrize("axis", [0, 1])
def test_unit_norm(w, axis):
    out = constraints.UnitNorm(axis=axis)(w)
    np.testing.assert_allclose(_norms(out, axis), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, w / (EPS + _norms(w, axis)), rtol=1e-12)


def test_min_max_norm_rate_one(w):
    out = constraints.MinMaxNorm(min_value=2.5, max_value=3.0)(w)
    norms = _norms(out, 0)
    assert np.all(norms >= 2.5 - 1e-6) and np.all(norms <= 3.0 + 1e-6)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_min_max_norm_rate(w, rate):
    lo, hi = 2.5, 3.0
    out = constraints.MinMaxNorm(min_value=lo, max_value=hi, rate=rate)(w)
    before = _norms(w, 0)
    desired = rate * np.clip(before, lo, hi) + (1 - rate) * before
    np.testing.assert_allclose(out, w * desired / (EPS + before), rtol=1e-12)
    # the norm moves the fraction `rate` of the way towards the interval
    np.testing.assert_allclose(_norms(out, 0), desired, rtol=1e-6)


def test_conv_kernel_axis():
    kernel = np.random.default_rng(1).normal(size=(3, 3, 4, 8))
    axis = [0, 1, 2]  # each output filter's weights
    out = constraints.MaxNorm(max_value=1.0, axis=axis)(kernel)
    norms = np.sqrt((out**2).sum(axis=(0, 1, 2)))
    assert norms.shape == (8,)
    np.testing.assert_allclose(norms, np.minimum(np.sqrt((kernel**2).sum(axis=(0, 1, 2))), 1.0), rtol=1e-6)
    out = constraints.UnitNorm(axis=(0, 1, 2))(kernel)
    np.testing.assert_allclose(np.sqrt((out**2).sum(axis=(0, 1, 2))), 1.0, rtol=1e-6)
    out = constraints.MinMaxNorm(0.5, 0.7, axis=axis)(kernel)
    n = np.sqrt((out**2).sum(axis=(0, 1, 2)))
    assert np.all((n >= 0.5 - 1e-6) & (n <= 0.7 + 1e-6))


@pytest.mark.parametrize("c", [constraints.MaxNorm(1.0), constraints.NonNeg(), constraints.UnitNorm(),
                               constraints.MinMaxNorm(0.5, 1.0, 0.5)], ids=lambda c: type(c).__name__)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_and_shape_preserved(c, dtype, w):
    x = w.astype(dtype)
    out = c(x)
    assert isinstance(out, backend.xp.ndarray)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == x.shape


def test_zero_weights_stay_finite():
    z = np.zeros((3, 2), dtype=np.float32)
    for c in [constraints.MaxNorm(), constraints.UnitNorm(), constraints.MinMaxNorm(), constraints.NonNeg()]:
        out = c(z)
        assert np.all(np.isfinite(out))


def test_as_variable_constraint(w):
    v = Variable(w, constraint=constraints.get("non_neg"))
    v.data[...] = v.constraint(v.data)
    assert np.all(v.data >= 0) and v.data.dtype == np.float32


def test_aliases_and_string_ids():
    assert constraints.max_norm is constraints.MaxNorm
    assert constraints.non_neg is constraints.NonNeg
    assert constraints.unit_norm is constraints.UnitNorm
    assert constraints.min_max_norm is constraints.MinMaxNorm
    for name, cls in [("max_norm", constraints.MaxNorm), ("non_neg", constraints.NonNeg),
                      ("unit_norm", constraints.UnitNorm), ("min_max_norm", constraints.MinMaxNorm),
                      ("MaxNorm", constraints.MaxNorm), ("NonNeg", constraints.NonNeg),
                      ("UnitNorm", constraints.UnitNorm), ("MinMaxNorm", constraints.MinMaxNorm)]:
        assert constraints.get(name) == cls()


def test_defaults():
    assert constraints.MaxNorm().get_config() == {"max_value": 2.0, "axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}


@pytest.mark.parametrize("c", [constraints.MaxNorm(3.0, axis=1), constraints.NonNeg(),
                               constraints.UnitNorm(axis=[0, 1]),
                               constraints.MinMaxNorm(0.2, 0.8, 0.3, axis=(0, 1, 2))], ids=lambda c: type(c).__name__)
def test_config_round_trip(c):
    config = json.loads(json.dumps(constraints.serialize(c)))
    back = constraints.deserialize(config)
    assert back == c
    assert constraints.get(config) == c
    assert type(c).from_config(c.get_config()) == c


def test_get_forms_and_errors():
    assert constraints.get(None) is None
    c = constraints.UnitNorm()
    assert constraints.get(c) is c
    assert constraints.get(constraints.NonNeg) == constraints.NonNeg()

    def clip_to_one(x):
        return np.clip(x, -1, 1)

    assert constraints.get(clip_to_one) is clip_to_one
    with pytest.raises(ValueError, match="Unknown constraint 'maxnrom'"):
        constraints.get("maxnrom")
    with pytest.raises(ValueError, match="constraint"):
        constraints.get(3)
    with pytest.raises(ValueError, match="min_value"):
        constraints.MinMaxNorm(min_value=2.0, max_value=1.0)
    with pytest.raises(ValueError, match="max_value"):
        constraints.MaxNorm(max_value=-1)
