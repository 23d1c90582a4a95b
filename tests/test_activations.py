import functools
import math

import numpy as np
import pytest

from shenjing import activations
from shenjing.autodiff import Tensor, check_gradients

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# ------------------------------------------------------------- reference formulas


def _sig(x):
    return 1 / (1 + np.exp(-x))


def _erf(x):
    return np.vectorize(math.erf)(x)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


REFERENCE = {
    "linear": lambda x: x,
    "sigmoid": _sig,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.minimum(np.maximum(x, 0), 6),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)),
    "softplus": lambda x: np.log(1 + np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "silu": lambda x: x * _sig(x),
    "swish": lambda x: x * _sig(x),
    "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "exponential": np.exp,
    "softmax": _softmax,
    "log_softmax": lambda x: np.log(_softmax(x)),
    "step": lambda x: (x >= 0).astype(x.dtype),
}

# kinks (points where the derivative jumps) that gradient checks keep away from
KINKS = {"relu": [0.0], "relu6": [0.0, 6.0], "leaky_relu": [0.0], "elu": [0.0], "selu": [0.0],
         "hard_sigmoid": [-3.0, 3.0], "step": [0.0]}


def _points(name, n=24, low=-4.0, high=7.0, seed=0):
    """float64 points in [low, high], kept at least 1e-3 from the activation's kinks."""
    x = np.random.default_rng(seed).uniform(low, high, size=(2, n // 2))
    for k in KINKS.get(name, []):
        near = np.abs(x - k) < 1e-3
        x[near] += 2e-3
    return x


def test_every_registered_name_is_tested():
    assert set(activations.ACTIVATIONS.names()) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_values_match_plain_formula_float64(name):
    x = _points(name)
    y = activations.get(name)(x)
    assert isinstance(y, Tensor)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), REFERENCE[name](x), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_gradient_matches_central_differences(name):
    fn = activations.get(name)
    x = _points(name, low=-4.0, high=4.0)
    assert check_gradients(fn, x) < 1e-6


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_float32_in_float32_out(name):
    x = Tensor(np.linspace(-5, 5, 12, dtype=np.float32).reshape(3, 4), requires_grad=True)
    y = activations.get(name)(x)
    assert y.dtype == np.float32
    assert y.shape == (3, 4)
    if y.requires_grad:
        y.sum().backward()
        assert x.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), REFERENCE[name](x.numpy().astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_array_like_inputs():
    y = activations.relu([[-1.0, 2.0]])
    assert isinstance(y, Tensor) and y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [[0.0, 2.0]])
    # integers are cast to floatx
    y = activations.sigmoid(np.array([0, 1, 2]))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), _sig(np.array([0.0, 1.0, 2.0])), rtol=1e-6)


def test_swish_and_silu_are_the_same_function():
    assert activations.swish is activations.silu
    assert activations.get("swish") is activations.get("silu")


def test_step_is_heaviside():
    y = activations.step(np.array([-2.0, -1e-9, 0.0, 1e-9, 3.0]))
    np.testing.assert_array_equal(y.numpy(), [0, 0, 1, 1, 1])


def test_extreme_inputs_stay_finite():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 700.0])
    for name in ["sigmoid", "softplus", "silu", "elu", "selu", "gelu", "softsign", "tanh", "hard_sigmoid"]:
        assert np.all(np.isfinite(activations.get(name)(x).numpy())), name
    np.testing.assert_allclose(activations.sigmoid(x).numpy(), [0, _sig(-50.0), 0.5, 1, 1], rtol=1e-12)
    assert np.all(np.isfinite(activations.softmax(np.array([[1000.0, 0.0, -1000.0]])).numpy()))
    assert np.all(np.isfinite(activations.log_softmax(np.array([[1000.0, 0.0, -1000.0]])).numpy()))


# ---------------------------------------------------------------------- softmax


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_softmax_over_other_axes(axis):
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    y = activations.softmax(x, axis=axis).numpy()
    np.testing.assert_allclose(y, _softmax(x, axis=axis), rtol=1e-12)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-12)
    ly = activations.log_softmax(x, axis=axis).numpy()
    np.testing.assert_allclose(ly, np.log(_softmax(x, axis=axis)), rtol=1e-12, atol=1e-14)
    assert check_gradients(lambda t: activations.softmax(t, axis=axis), x) < 1e-6
    assert check_gradients(lambda t: activations.log_softmax(t, axis=axis), x) < 1e-6


def test_softmax_of_one_dim_vector():
    y = activations.softmax(np.array([1.0, 2.0, 3.0])).numpy()
    np.testing.assert_allclose(y, _softmax(np.array([1.0, 2.0, 3.0])), rtol=1e-12)


# ------------------------------------------------------------------ relu options


def _keras_relu(x, alpha=0.0, max_value=None, threshold=0.0):
    out = np.where(x >= threshold, x, alpha * (x - threshold))
    if max_value is not None:
        out = np.where(x >= max_value, max_value, out)
    return out


RELU_CASES = [
    dict(),
    dict(alpha=0.1),
    dict(max_value=2.5),
    dict(threshold=1.0),
    dict(alpha=0.3, max_value=3.0),
    dict(alpha=0.2, threshold=-1.0),
    dict(max_value=4.0, threshold=1.5),
    dict(alpha=0.5, max_value=2.0, threshold=0.5),
]


@pytest.mark.parametrize("kwargs", RELU_CASES, ids=[str(c) for c in RELU_CASES])
def test_relu_options(kwargs):
    x = np.linspace(-4, 5, 37) + 1e-3
    y = activations.relu(x, **kwargs).numpy()
    np.testing.assert_allclose(y, _keras_relu(x, **kwargs), rtol=1e-12, atol=1e-15)
    kinks = [kwargs.get("threshold", 0.0)] + ([kwargs["max_value"]] if "max_value" in kwargs else [])
    xs = np.random.default_rng(2).uniform(-4, 5, size=20)
    for k in kinks:
        xs[np.abs(xs - k) < 1e-3] += 3e-3
    assert check_gradients(lambda t: activations.relu(t, **kwargs), xs) < 1e-6


def test_relu_negative_slope_is_alpha():
    x = np.array([-2.0, -1.0, 0.5, 3.0])
    np.testing.assert_allclose(activations.relu(x, negative_slope=0.1).numpy(), activations.relu(x, alpha=0.1).numpy())
    with pytest.raises(ValueError, match="negative_slope"):
        activations.relu(x, alpha=0.2, negative_slope=0.1)


def test_relu_gradient_values():
    x = Tensor(np.array([-2.0, 0.5, 1.5, 5.0]), requires_grad=True)
    activations.relu(x, alpha=0.25, max_value=3.0, threshold=1.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.25, 0.25, 1.0, 0.0])


def test_leaky_relu_and_elu_parameters():
    x = np.array([-2.0, -0.5, 1.0])
    np.testing.assert_allclose(activations.leaky_relu(x, negative_slope=0.01).numpy(), [-0.02, -0.005, 1.0])
    np.testing.assert_allclose(activations.elu(x, alpha=0.5).numpy(),
                               [0.5 * (np.exp(-2) - 1), 0.5 * (np.exp(-0.5) - 1), 1])


def test_gelu_approximate_formula():
    x = np.linspace(-5, 5, 21)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(activations.gelu(x, approximate=True).numpy(), expected, rtol=1e-12, atol=1e-15)
    # (central differences lose relative accuracy where the derivative is tiny, so stay within ±3)
    assert check_gradients(lambda t: activations.gelu(t, approximate=True), np.linspace(-3, 3, 13) + 0.01) < 1e-6


# ------------------------------------------------------------------------ vs torch


def _torch_cases():
    return [
        ("relu", {}, lambda F, t: F.relu(t)),
        ("relu6", {}, lambda F, t: F.relu6(t)),
        ("leaky_relu", {"negative_slope": 0.01}, lambda F, t: F.leaky_relu(t, negative_slope=0.01)),
        ("leaky_relu", {}, lambda F, t: F.leaky_relu(t, negative_slope=0.2)),
        ("elu", {}, lambda F, t: F.elu(t)),
        ("elu", {"alpha": 0.7}, lambda F, t: F.elu(t, alpha=0.7)),
        ("selu", {}, lambda F, t: F.selu(t)),
        ("softplus", {}, lambda F, t: F.softplus(t, threshold=1000.0)),
        ("softsign", {}, lambda F, t: F.softsign(t)),
        ("hard_sigmoid", {}, lambda F, t: F.hardsigmoid(t)),
        ("silu", {}, lambda F, t: F.silu(t)),
        ("gelu", {}, lambda F, t: F.gelu(t)),
        ("gelu", {"approximate": True}, lambda F, t: F.gelu(t, approximate="tanh")),
        ("softmax", {}, lambda F, t: F.softmax(t, dim=-1)),
        ("softmax", {"axis": 0}, lambda F, t: F.softmax(t, dim=0)),
        ("log_softmax", {}, lambda F, t: F.log_softmax(t, dim=-1)),
        ("log_softmax", {"axis": 0}, lambda F, t: F.log_softmax(t, dim=0)),
        ("sigmoid", {}, lambda F, t: F.sigmoid(t)),
        ("tanh", {}, lambda F, t: F.tanh(t)),
    ]


@pytest.mark.parametrize("case", _torch_cases(), ids=[f"{n}{k or ''}" for n, k, _ in _torch_cases()])
def test_matches_torch_values_and_gradients(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    name, kwargs, torch_fn = case
    x = np.random.default_rng(3).uniform(-8, 8, size=(6, 7))
    x[np.abs(x) < 1e-3] += 2e-3
    x[np.abs(np.abs(x) - 3) < 1e-3] += 2e-3  # hard_sigmoid's kinks
    x[np.abs(x - 6) < 1e-3] += 2e-3  # relu6's
    seed = np.random.default_rng(4).normal(size=x.shape)

    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    expected = torch_fn(F, t)
    (expected * torch.tensor(seed)).sum().backward()

    ours_in = Tensor(x, requires_grad=True)
    ours = activations.get(name)(ours_in, **kwargs)
    (ours * Tensor(seed)).sum().backward()

    np.testing.assert_allclose(ours.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    if name == "hard_sigmoid":
        # torch's float64 hardsigmoid backward multiplies by 1/6 rounded to float32
        # (0.16666667163…), so it is only float32-accurate; ours is seed/6 inside (−3, 3)
        np.testing.assert_allclose(ours_in.grad, t.grad.numpy(), rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(ours_in.grad, np.where(np.abs(x) < 3, seed / 6, 0.0), rtol=1e-15, atol=0)
    else:
        np.testing.assert_allclose(ours_in.grad, t.grad.numpy(), rtol=1e-10, atol=1e-10)


# -------------------------------------------------------------- get / serialize


def test_get_by_name_none_and_callable():
    assert activations.get("relu") is activations.relu
    assert activations.get(None) is activations.linear

    def mine(x):
        return x

    assert activations.get(mine) is mine
    assert activations.get(activations.tanh) is activations.tanh


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_serialize_round_trip(name):
    fn = activations.get(name)
    key = activations.serialize(fn)
    assert isinstance(key, str)
    assert activations.get(key) is fn
    assert activations.deserialize(key) is fn


def test_serialize_names():
    assert activations.serialize(activations.relu) == "relu"
    assert activations.serialize(activations.softmax) == "softmax"
    assert activations.serialize(activations.swish) == "silu"
    assert activations.serialize(None) == "linear"


def test_serialize_partial_round_trip():
    fn = functools.partial(activations.relu, max_value=6.0)
    config = activations.serialize(fn)
    assert config == {"class_name": "relu", "config": {"max_value": 6.0}}
    back = activations.get(config)
    x = np.array([-1.0, 3.0, 9.0])
    np.testing.assert_array_equal(back(x).numpy(), [0.0, 3.0, 6.0])


def test_config_dict_forms():
    assert activations.get({"class_name": "tanh", "config": {}}) is activations.tanh
    assert activations.get({"class_name": "function", "config": "sigmoid"}) is activations.sigmoid


def test_unknown_name_error_text():
    with pytest.raises(ValueError) as info:
        activations.get("rleu")
    message = str(info.value)
    assert "Unknown activation 'rleu'" in message
    assert "Did you mean 'relu'" in message
    assert "softmax" in message  # the list of valid names


def test_custom_objects_resolve():
    def my_act(x):
        return activations.relu(x)

    assert activations.get("my_act", custom_objects={"my_act": my_act}) is my_act
    assert activations.serialize(my_act) == "my_act"


@pytest.mark.parametrize("bad", [3, 2.5, [1, 2]])
def test_get_rejects_non_identifiers(bad):
    with pytest.raises(ValueError, match="activation"):
        activations.get(bad)


def test_serialize_lambda_raises():
    with pytest.raises(ValueError, match="lambda"):
        activations.serialize(lambda x: x)
