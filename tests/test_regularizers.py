import json

import numpy as np
import pytest

from shenjing import regularizers
from shenjing.autodiff import Tensor, Variable, check_gradients


@pytest.fixture
def w():
    return np.random.default_rng(0).normal(size=(4, 3))


def test_values(w):
    np.testing.assert_allclose(regularizers.L1(0.3)(w).item(), 0.3 * np.abs(w).sum(), rtol=1e-12)
    np.testing.assert_allclose(regularizers.L2(0.2)(w).item(), 0.2 * (w**2).sum(), rtol=1e-12)
    np.testing.assert_allclose(regularizers.L1L2(0.1, 0.05)(w).item(),
                               0.1 * np.abs(w).sum() + 0.05 * (w**2).sum(), rtol=1e-12)


def test_defaults():
    assert regularizers.L1().l1 == 0.01
    assert regularizers.L2().l2 == 0.01
    assert (regularizers.L1L2().l1, regularizers.L1L2().l2) == (0.0, 0.0)
    assert regularizers.L1(None).l1 == 0.01


def test_result_is_a_scalar_tensor_of_the_weight_dtype(w):
    for reg in [regularizers.L1(), regularizers.L2(), regularizers.L1L2(0.1, 0.1), regularizers.L1L2()]:
        out = reg(Tensor(w.astype(np.float32)))
        assert isinstance(out, Tensor)
        assert out.shape == ()
        assert out.dtype == np.float32


def test_zero_factors_give_zero(w):
    assert regularizers.L1L2()(w).item() == 0.0
    assert regularizers.L1(0.0)(w).item() == 0.0


def test_l2_gradient(w):
    reg = regularizers.L2(0.3)
    assert check_gradients(reg, w) < 1e-6
    v = Variable(w, dtype="float64")
    reg(v).backward()
    np.testing.assert_allclose(v.grad, 2 * 0.3 * w, rtol=1e-12)


def test_l1_gradient(w):
    reg = regularizers.L1(0.2)
    assert check_gradients(reg, w) < 1e-6
    v = Variable(w, dtype="float64")
    reg(v).backward()
    np.testing.assert_allclose(v.grad, 0.2 * np.sign(w), rtol=1e-12)


def test_l1l2_gradient(w):
    reg = regularizers.L1L2(0.1, 0.4)
    assert check_gradients(reg, w) < 1e-6
    v = Variable(w, dtype="float64")
    reg(v).backward()
    np.testing.assert_allclose(v.grad, 0.1 * np.sign(w) + 2 * 0.4 * w, rtol=1e-12)


def test_penalty_adds_to_a_loss(w):
    v = Variable(w, dtype="float64")
    loss = (v * 2.0).sum() + regularizers.L2(0.5)(v)
    loss.backward()
    np.testing.assert_allclose(v.grad, 2.0 + w, rtol=1e-12)


def test_function_forms():
    assert regularizers.l1() == regularizers.L1(0.01)
    assert regularizers.l1(0.5) == regularizers.L1(0.5)
    assert regularizers.l1(l=0.5) == regularizers.L1(0.5)
    assert regularizers.l2(l=0.2) == regularizers.L2(0.2)
    assert regularizers.l1_l2() == regularizers.L1L2(0.01, 0.01)
    assert regularizers.l1_l2(l1=0.1, l2=0.0) == regularizers.L1L2(0.1, 0.0)


@pytest.mark.parametrize("name, expected", [
    ("l1", regularizers.L1(0.01)), ("l2", regularizers.L2(0.01)), ("l1_l2", regularizers.L1L2(0.01, 0.01)),
    ("L1", regularizers.L1()), ("L2", regularizers.L2()), ("L1L2", regularizers.L1L2()),
    ("orthogonal_regularizer", regularizers.OrthogonalRegularizer()),
    ("OrthogonalRegularizer", regularizers.OrthogonalRegularizer()),
])
def test_string_ids(name, expected):
    assert regularizers.get(name) == expected


@pytest.mark.parametrize("reg", [
    regularizers.L1(0.3), regularizers.L2(0.02), regularizers.L1L2(0.1, 0.2),
    regularizers.OrthogonalRegularizer(0.5, "columns"),
], ids=lambda r: type(r).__name__)
def test_config_round_trip(reg):
    config = json.loads(json.dumps(regularizers.serialize(reg)))
    assert config["class_name"] == type(reg).__name__
    back = regularizers.deserialize(config)
    assert back == reg
    assert regularizers.get(config) == reg
    assert type(reg).from_config(reg.get_config()) == reg


def test_get_forms():
    assert regularizers.get(None) is None
    reg = regularizers.L2(0.1)
    assert regularizers.get(reg) is reg
    assert regularizers.get(regularizers.L1) == regularizers.L1()

    def mine(w):
        return (w * w).sum()

    assert regularizers.get(mine) is mine
    assert regularizers.get("mine", custom_objects={"mine": mine}) is mine


def test_unknown_and_invalid():
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="l2"):
        regularizers.L2(-0.1)
    with pytest.raises(ValueError, match="l1"):
        regularizers.L1("big")
    with pytest.raises(ValueError, match="regularizer"):
        regularizers.get(0.5)


# ------------------------------------------------------------------- orthogonal


def _orth_reference(w, factor, mode):
    m = w if mode == "rows" else w.T
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    gram = unit @ unit.T
    n = m.shape[0]
    off = np.abs(gram - np.diag(np.diag(gram))).sum()
    return factor * 0.5 * off / (n * (n - 1) / 2)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer(w, mode):
    reg = regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
    np.testing.assert_allclose(reg(w).item(), _orth_reference(w, 0.3, mode), rtol=1e-12)
    assert check_gradients(reg, w) < 1e-6


def test_orthogonal_regularizer_zero_for_orthogonal_rows():
    q = np.linalg.qr(np.random.default_rng(1).normal(size=(5, 5)))[0]
    assert abs(regularizers.OrthogonalRegularizer()(q).item()) < 1e-12
    assert regularizers.OrthogonalRegularizer()(np.ones((1, 4))).item() == 0.0


def test_orthogonal_regularizer_errors():
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="2-D"):
        regularizers.OrthogonalRegularizer()(np.ones((2, 2, 2)))
