"""The NN primitives of ``shenjing.autodiff.nn``: gradient checks, forward values against
NumPy formulas, stability, dtype preservation."""

import math

import numpy as np
import pytest

from shenjing.autodiff import Tensor, nn, ops

from .helpers import assert_gradients, away_from_zero, backward_grads

CASES = []


def case(name, fn, factory):
    CASES.append(pytest.param(fn, factory, id=name))


def normal(*shapes, scale=1.0):
    return lambda rng: [scale * rng.standard_normal(s) for s in shapes]


def kinked(*points, shape=(4, 5), margin=0.1, low=-4.0, high=4.0):
    """Values in [low, high] at least ``margin`` away from each point of ``points`` (kinks, or zeros
    of the derivative, where the elementwise relative error of a gradient check means nothing)."""
    def factory(rng):
        while True:
            x = rng.uniform(low, high, size=shape)
            if all(np.abs(x - p).min() > margin for p in points):
                return [x]
    return factory


case("sigmoid", nn.sigmoid, normal((4, 5)))
case("tanh", nn.tanh, normal((4, 5)))
case("relu", nn.relu, kinked(0.0))
case("relu-alpha", lambda x: nn.relu(x, alpha=0.3), kinked(0.0))
case("relu-max_value", lambda x: nn.relu(x, max_value=1.5), kinked(0.0, 1.5))
case("relu-threshold", lambda x: nn.relu(x, threshold=0.5), kinked(0.5))
case("relu-all", lambda x: nn.relu(x, alpha=0.2, max_value=2.0, threshold=-1.0), kinked(-1.0, 2.0))
case("leaky_relu", nn.leaky_relu, kinked(0.0))
case("leaky_relu-slope", lambda x: nn.leaky_relu(x, negative_slope=0.05), kinked(0.0))
case("elu", nn.elu, kinked(0.0))
case("elu-alpha", lambda x: nn.elu(x, alpha=0.5), kinked(0.0))
case("selu", nn.selu, kinked(0.0))
case("softplus", nn.softplus, normal((4, 5), scale=3.0))
case("softsign", nn.softsign, kinked(0.0))
case("hard_sigmoid", nn.hard_sigmoid, kinked(-3.0, 3.0))
# swish' and gelu' vanish near x = -1.278 and x = -0.752; the tails are kept moderate as well
case("swish", nn.swish, kinked(-1.2785, low=-3.0, high=3.0))
case("gelu", nn.gelu, kinked(-0.7518, low=-3.0, high=3.0))
case("gelu-approximate", lambda x: nn.gelu(x, approximate=True), kinked(-0.7518, low=-3.0, high=3.0))
case("exponential", nn.exponential, normal((4, 5)))
case("step", lambda x: nn.step(x) + x, kinked(0.0))
for axis in (0, 1, -1):
    case(f"softmax-axis={axis}", lambda x, axis=axis: nn.softmax(x, axis=axis), normal((2, 3, 4)))
    case(f"log_softmax-axis={axis}", lambda x, axis=axis: nn.log_softmax(x, axis=axis), normal((2, 3, 4)))
    case(f"logsumexp-axis={axis}", lambda x, axis=axis: ops.logsumexp(x, axis=axis), normal((2, 3, 4)))


def soft_labels(shape, axis=-1):
    def factory(rng):
        y = rng.uniform(0.1, 1.0, size=shape)
        return y / y.sum(axis=axis, keepdims=True)
    return factory


# dense labels: gradient w.r.t. the logits and the (soft) labels
case("softmax_cross_entropy-dense", nn.softmax_cross_entropy,
     lambda rng: [rng.standard_normal((4, 5)), soft_labels((4, 5))(rng)])
case("softmax_cross_entropy-dense-unnormalized", nn.softmax_cross_entropy,
     lambda rng: [rng.standard_normal((4, 5)), rng.uniform(0.1, 2.0, (4, 5))])
case("softmax_cross_entropy-dense-axis0", lambda z, y: nn.softmax_cross_entropy(z, y, axis=0),
     lambda rng: [rng.standard_normal((5, 4)), soft_labels((5, 4), axis=0)(rng)])
case("softmax_cross_entropy-dense-3d-axis1", lambda z, y: nn.softmax_cross_entropy(z, y, axis=1),
     lambda rng: [rng.standard_normal((2, 5, 3)), soft_labels((2, 5, 3), axis=1)(rng)])
case("softmax_cross_entropy-dense-onehot-logits-only", lambda z: nn.softmax_cross_entropy(z, np.eye(5)[[0, 3, 3, 1]]),
     normal((4, 5)))
# sparse labels
case("softmax_cross_entropy-sparse", lambda z: nn.softmax_cross_entropy(z, np.array([0, 4, 2, 2])),
     normal((4, 5)))
case("softmax_cross_entropy-sparse-axis0", lambda z: nn.softmax_cross_entropy(z, np.array([1, 0, 4]), axis=0),
     normal((5, 3)))
case("softmax_cross_entropy-sparse-3d-axis1",
     lambda z: nn.softmax_cross_entropy(z, np.array([[0, 4, 1], [2, 2, 3]]), axis=1), normal((2, 5, 3)))
case("softmax_cross_entropy-sparse-3d-last",
     lambda z: nn.softmax_cross_entropy(z, np.array([[0, 4], [2, 2]])), normal((2, 2, 5)))
# with the softmax passed in (a model's softmax output): its maximum and sum are reused
case("softmax_cross_entropy-sparse-probs",
     lambda z: nn.softmax_cross_entropy(z, np.array([0, 4, 2, 2]), probs=nn.softmax(z)), normal((4, 5)))
case("softmax_cross_entropy-sparse-3d-probs",
     lambda z: nn.softmax_cross_entropy(z, np.array([[0, 4], [2, 2]]), probs=nn.softmax(z)), normal((2, 2, 5)))
case("softmax_cross_entropy-dense-probs", lambda z, y: nn.softmax_cross_entropy(z, y, probs=nn.softmax(z)),
     lambda rng: [rng.standard_normal((4, 5)), soft_labels((4, 5))(rng)])
# binary cross-entropy from logits: gradient w.r.t. logits and labels, with broadcasting
case("sigmoid_binary_cross_entropy", nn.sigmoid_binary_cross_entropy,
     lambda rng: [3 * rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))])
case("sigmoid_binary_cross_entropy-broadcast", nn.sigmoid_binary_cross_entropy,
     lambda rng: [3 * rng.standard_normal((4, 3)), rng.uniform(0, 1, (3,))])
case("sigmoid_binary_cross_entropy-hard-labels",
     lambda z: nn.sigmoid_binary_cross_entropy(z, np.array([0.0, 1.0, 1.0])),
     normal((4, 3), scale=3.0))


@pytest.mark.parametrize("fn, factory", CASES)
def test_gradient_float64(fn, factory):
    assert_gradients(fn, *factory(np.random.default_rng(3)))


@pytest.mark.parametrize("fn, factory", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(fn, factory, dtype):
    tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in factory(np.random.default_rng(3))]
    out = fn(*tensors)
    assert out.dtype == dtype
    for parent, g in zip(out._parents, backward_grads(out)):
        if g is not None:
            assert g.dtype == dtype and g.shape == parent.shape
    ops.sum(out).backward()
    for t in tensors:
        assert t.grad.dtype == dtype


# --------------------------------------------------------------------- forward values
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _erf(x):
    return np.vectorize(math.erf)(x)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


X = np.linspace(-5, 5, 41)


@pytest.mark.parametrize("fn, formula", [
    (nn.sigmoid, _sigmoid),
    (nn.tanh, np.tanh),
    (nn.relu, lambda x: np.maximum(x, 0)),
    (lambda x: nn.relu(x, alpha=0.1), lambda x: np.where(x >= 0, x, 0.1 * x)),
    (lambda x: nn.relu(x, max_value=2.0), lambda x: np.clip(x, 0, 2)),
    (lambda x: nn.relu(x, threshold=1.0), lambda x: np.where(x >= 1, x, 0.0)),
    (lambda x: nn.relu(x, alpha=0.5, max_value=3.0, threshold=1.0),
     lambda x: np.where(x >= 3, 3.0, np.where(x >= 1, x, 0.5 * (x - 1)))),
    (nn.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    (lambda x: nn.elu(x, alpha=2.0), lambda x: np.where(x > 0, x, 2 * (np.exp(x) - 1))),
    (nn.selu, lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))),
    (nn.softplus, lambda x: np.log1p(np.exp(x))),
    (nn.softsign, lambda x: x / (1 + np.abs(x))),
    (nn.hard_sigmoid, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    (nn.swish, lambda x: x * _sigmoid(x)),
    (nn.gelu, lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
    (lambda x: nn.gelu(x, approximate=True),
     lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))),
    (nn.exponential, np.exp),
    (nn.step, lambda x: (x >= 0).astype(float)),
], ids=lambda v: getattr(v, "__name__", None))
def test_activation_values_match_formulas(fn, formula):
    # atol: erf_array is accurate to ~1e-15 absolute, so x·Φ(x) is not to 1e-12 relative deep in the tail
    np.testing.assert_allclose(fn(Tensor(X)).data, formula(X), rtol=1e-12, atol=1e-14)


def test_erf_array_matches_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 561), [0.0, 1e-8, -1e-8, 40.0, -40.0]])
    np.testing.assert_allclose(nn.erf_array(x), _erf(x), rtol=1e-14, atol=1e-16)
    assert nn.erf_array(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_values(axis, rng):
    x = 3 * rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(nn.softmax(Tensor(x), axis=axis).data, _softmax(x, axis), rtol=1e-13)
    np.testing.assert_allclose(nn.log_softmax(Tensor(x), axis=axis).data, np.log(_softmax(x, axis)), rtol=1e-12)
    np.testing.assert_allclose(nn.softmax(Tensor(x), axis=axis).data.sum(axis=axis), 1.0, rtol=1e-14)


def test_softmax_family_is_stable_for_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]])
    s = nn.softmax(Tensor(x)).data
    np.testing.assert_allclose(s, [[1.0, 0.0, 0.0], [1 / 3] * 3])
    ls = nn.log_softmax(Tensor(x)).data
    np.testing.assert_allclose(ls, [[0.0, -1000.0, -2000.0], [-np.log(3)] * 3])
    ce = nn.softmax_cross_entropy(Tensor(x), np.array([2, 0])).data
    np.testing.assert_allclose(ce, [2000.0, np.log(3)])
    z = np.array([-800.0, 800.0, 0.0])
    bce = nn.sigmoid_binary_cross_entropy(Tensor(z), np.array([1.0, 0.0, 1.0])).data
    np.testing.assert_allclose(bce, [800.0, 800.0, np.log(2)])
    np.testing.assert_allclose(nn.sigmoid(Tensor(z)).data, [0.0, 1.0, 0.5])
    np.testing.assert_allclose(nn.softplus(Tensor(z)).data, [0.0, 800.0, np.log(2)])
    assert np.all(np.isfinite(nn.selu(Tensor(z)).data)) and np.all(np.isfinite(nn.elu(Tensor(z)).data))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cross_entropy_values(axis, rng):
    z = 2 * rng.standard_normal((3, 4, 5))
    log_p = np.log(_softmax(z, axis))
    y = rng.uniform(0, 1, z.shape)
    np.testing.assert_allclose(nn.softmax_cross_entropy(Tensor(z), y, axis=axis).data,
                               -(y * log_p).sum(axis=axis), rtol=1e-12)
    labels = rng.integers(0, z.shape[axis], size=np.delete(z.shape, axis % 3))
    want = -np.take_along_axis(log_p, np.expand_dims(labels, axis), axis=axis).squeeze(axis)
    got = nn.softmax_cross_entropy(Tensor(z), labels, axis=axis).data
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # the same class indices given as a Tensor, as floats, or as one-hot integers
    np.testing.assert_allclose(nn.softmax_cross_entropy(Tensor(z), Tensor(labels), axis=axis).data, want, rtol=1e-12)
    np.testing.assert_allclose(nn.softmax_cross_entropy(Tensor(z), labels.astype(float), axis=axis).data, want,
                               rtol=1e-12)
    one_hot = np.moveaxis(np.eye(z.shape[axis], dtype=np.int64)[labels], -1, axis)
    np.testing.assert_allclose(nn.softmax_cross_entropy(Tensor(z), one_hot, axis=axis).data, want, rtol=1e-12)


def test_sparse_labels_of_the_wrong_shape_are_rejected():
    with pytest.raises(ValueError, match="sparse labels"):
        nn.softmax_cross_entropy(Tensor(np.zeros((4, 3))), np.array([0, 1, 2]))


def test_cross_entropy_gradients_are_softmax_minus_labels(rng):
    z = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 1])
    t = Tensor(z, requires_grad=True)
    ops.sum(nn.softmax_cross_entropy(t, labels)).backward()
    np.testing.assert_allclose(t.grad, _softmax(z, -1) - np.eye(3)[labels], rtol=1e-12, atol=1e-15)
    t2 = Tensor(z, requires_grad=True)
    y = Tensor(rng.uniform(0, 1, (4, 3)), requires_grad=True)
    ops.sum(nn.sigmoid_binary_cross_entropy(t2, y)).backward()
    np.testing.assert_allclose(t2.grad, _sigmoid(z) - y.data, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y.grad, -z, rtol=1e-15)


def test_bce_matches_the_probability_formula(rng):
    z, y = 2 * rng.standard_normal(10), rng.uniform(0, 1, 10)
    p = _sigmoid(z)
    np.testing.assert_allclose(nn.sigmoid_binary_cross_entropy(Tensor(z), y).data,
                               -(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-12)


def test_softmax_of_integers_and_of_a_scalar():
    """Integer logits give float probabilities (and a float loss); a 0-d softmax is 1."""
    p = nn.softmax(Tensor(np.array([[1, 2, 3]])))
    assert p.dtype.kind == "f"
    np.testing.assert_allclose(p.data, np.exp([[1, 2, 3]]) / np.exp([1, 2, 3]).sum(), rtol=1e-12)
    loss = nn.softmax_cross_entropy(Tensor(np.array([[1, 2, 3]])), np.array([2]))
    np.testing.assert_allclose(loss.data, [-np.log(p.data[0, 2])], rtol=1e-12)
    assert nn.softmax(Tensor(np.float32(4.0))).data == 1.0


def test_logits_are_remembered_for_fused_losses():
    x = Tensor(np.zeros((2, 3)))
    assert nn.sigmoid(x)._made_by == ("sigmoid", x)
    for axis in (-1, 1):
        tag = nn.softmax(x, axis=axis)._made_by
        assert tag[:2] == ("softmax", x)  # then the maximum and the sum, kept for the cross-entropy
        np.testing.assert_array_equal(tag[2], [[0.0], [0.0]])
        np.testing.assert_array_equal(tag[3], [[3.0], [3.0]])
    assert nn.softmax(x, axis=0)._made_by is None


def test_activation_derivatives_at_kinks_are_conventional():
    x = Tensor(np.array([0.0, 0.0]), requires_grad=True)
    ops.sum(nn.relu(x)).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    x = Tensor(np.array([-1.0, 3.0, 2.0]), requires_grad=True)
    ops.sum(nn.relu(x, max_value=2.0)).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    x = Tensor(np.array([-2.0, 2.0]), requires_grad=True)
    ops.sum(nn.step(x)).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_float32_activation_outputs_stay_float32():
    x = Tensor(away_from_zero(np.random.default_rng(0), (3, 4)).astype(np.float32))
    for fn in (nn.sigmoid, nn.tanh, nn.relu, lambda v: nn.relu(v, 0.1, 2.0, 0.5), nn.leaky_relu, nn.elu, nn.selu,
               nn.softplus, nn.softsign, nn.hard_sigmoid, nn.swish, nn.gelu, lambda v: nn.gelu(v, True),
               nn.exponential, nn.step, nn.softmax, nn.log_softmax):
        assert fn(x).dtype == np.float32
    assert nn.softmax_cross_entropy(x, np.array([0, 1, 3])).dtype == np.float32
    assert nn.softmax_cross_entropy(x, np.eye(4)[[0, 1, 3]]).dtype == np.float32  # float64 one-hot labels
    assert nn.sigmoid_binary_cross_entropy(x, np.ones((3, 4))).dtype == np.float32


# ------------------------------------------------------------ fused dense + activation


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4)])
def test_fused_dense_equals_linear_then_activation(activation, x_shape):
    from shenjing.autodiff import Tensor, nn, ops

    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal((4, 6)), rng.standard_normal(6)]
    g = rng.standard_normal(x_shape[:-1] + (6,))

    def run(fused):
        x, k, b = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = nn.dense(x, k, b, activation) if fused else getattr(nn, activation)(ops.linear(x, k, b))
        (out * Tensor(g)).sum().backward()
        return [out.data, x.grad, k.grad, b.grad]

    for got, want in zip(run(True), run(False)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_dense_gradients(with_bias):
    from shenjing.autodiff import nn

    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((5, 4)), rng.standard_normal((4, 3))]
    arrays += [rng.standard_normal(3)] if with_bias else []
    assert_gradients(lambda *t: nn.dense(*t, activation="tanh") if with_bias else nn.dense(*t, None, "tanh"), *arrays)


def test_fused_dense_keeps_float32_and_passes_linear_through():
    from shenjing.autodiff import Tensor, nn

    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    k = Tensor(np.ones((3, 4), np.float32), requires_grad=True)
    out = nn.dense(x, k, None, "relu")
    out.sum().backward()
    assert out.dtype == x.grad.dtype == k.grad.dtype == np.float32
    assert nn.dense(x, k, None, None).dtype == np.float32
    with pytest.raises(ValueError, match="cannot be fused"):
        nn.dense(x, k, None, "softmax")


@pytest.mark.parametrize("shape", [(7,), (5, 1), (6, 10), (2, 3, 16), (4, 17), (3, 5000), (200, 10), (70, 3),
                                   (3, 60, 16), (80, 300)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_max_and_sum_are_numpys(shape, dtype):
    """The short-row maximum (column by column) and the row sum (a product with ones), for many rows, give
    NumPy's reductions, NaN and inf included, on every axis they take (few rows take NumPy's own)."""
    from shenjing.autodiff.nn import _row_max, _row_sum

    a = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    a.reshape(-1)[3] = np.nan
    a.reshape(-1)[-1] = np.inf
    for axis in {-1, a.ndim - 1, 0}:
        np.testing.assert_array_equal(_row_max(a, axis), a.max(axis=axis, keepdims=True))
        got, want = _row_sum(a, axis), a.sum(axis=axis, keepdims=True)
        assert got.shape == want.shape and got.dtype == want.dtype
        scale = np.nan_to_num(np.abs(a), posinf=0).sum(axis=axis).max()  # (sums near 0: an absolute bound)
        eps = 1e-6 if dtype == "float32" else 1e-14
        np.testing.assert_allclose(got, want, rtol=10 * eps, atol=eps * scale)
