"""Property tests (hypothesis): broadcasting gradients, reductions and gathers on random shapes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from shenjing.autodiff import Tensor, check_gradients, ops

FEW = settings(max_examples=25, deadline=None, database=None)


def scatter_sum(weights, shape, out_shape):
    """Sum of ``weights`` (of ``out_shape``) onto the elements of a ``shape`` array broadcast to
    ``out_shape``: the reference gradient, computed by counting, not by unbroadcasting."""
    owner = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), out_shape)
    return np.bincount(owner.ravel(), weights=weights.ravel(), minlength=int(np.prod(shape))).reshape(shape)


@FEW
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=3),
       seed=st.integers(0, 2**16), op=st.sampled_from(["add", "mul", "sub"]))
def test_broadcast_gradients(shapes, seed, op):
    rng = np.random.default_rng(seed)
    (sa, sb), out_shape = shapes.input_shapes, shapes.result_shape
    a = Tensor(rng.standard_normal(sa), requires_grad=True)
    b = Tensor(rng.standard_normal(sb), requires_grad=True)
    out = getattr(ops, op)(a, b)
    assert out.shape == out_shape
    w = rng.standard_normal(out_shape)
    ops.sum(out * w).backward()
    wa = {"add": w, "sub": w, "mul": w * b.data}[op]
    wb = {"add": w, "sub": -w, "mul": w * a.data}[op]
    np.testing.assert_allclose(a.grad, scatter_sum(np.broadcast_to(wa, out_shape), sa, out_shape), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(b.grad, scatter_sum(np.broadcast_to(wb, out_shape), sb, out_shape), rtol=1e-12,
                               atol=1e-12)
    assert a.grad.shape == sa and b.grad.shape == sb


@settings(max_examples=10, deadline=None, database=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       seed=st.integers(0, 2**16))
def test_broadcast_gradient_check(shapes, seed):
    rng = np.random.default_rng(seed)
    (sa, sb) = shapes.input_shapes
    a = rng.choice([-1.0, 1.0], size=sa) * rng.uniform(0.5, 1.5, sa)
    b = rng.choice([-1.0, 1.0], size=sb) * rng.uniform(0.5, 1.5, sb)
    assert check_gradients(lambda x, y: x * y + x / y, a, b) < 1e-6


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_reduction_gradients(shape, data):
    shape = tuple(shape)
    ndim = len(shape)
    axes = data.draw(st.one_of(st.none(), st.lists(st.integers(-ndim, ndim - 1), min_size=1, max_size=ndim,
                                                   unique_by=lambda i: i % ndim).map(tuple)))
    keepdims = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = Tensor(rng.standard_normal(shape), requires_grad=True)
    s = ops.sum(x, axes, keepdims)
    m = ops.mean(x, axes, keepdims)
    np.testing.assert_allclose(s.data, x.data.sum(axis=axes, keepdims=keepdims), rtol=1e-12)
    np.testing.assert_allclose(m.data, x.data.mean(axis=axes, keepdims=keepdims), rtol=1e-12)
    w = rng.standard_normal(s.shape)
    ops.sum((s + m * 2.0) * w).backward()
    count = x.size // max(1, s.size)
    expected = np.broadcast_to(w.reshape(np.sum(x.data, axis=axes, keepdims=True).shape), shape) * (1 + 2 / count)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


@FEW
@given(n=st.integers(1, 6), ids=st.lists(st.integers(-6, 5), min_size=1, max_size=10), seed=st.integers(0, 2**16))
def test_gather_gradients_accumulate(n, ids, seed):
    ids = np.array([i % n for i in ids])
    rng = np.random.default_rng(seed)
    table = Tensor(rng.standard_normal((n, 2)), requires_grad=True)
    w = rng.standard_normal((len(ids), 2))
    ops.sum(table[ids] * w + ops.take(table, ids) * w).backward()
    expected = np.zeros((n, 2))
    for k, i in enumerate(ids):
        expected[i] += 2 * w[k]
    np.testing.assert_allclose(table.grad, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@FEW
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       scalar=st.floats(-3, 3, allow_nan=False))
def test_dtype_is_closed_under_ops(dtype, shapes, scalar):
    (sa, sb) = shapes.input_shapes
    a = Tensor(np.ones(sa, dtype), requires_grad=True)
    b = Tensor(np.full(sb, 2.0, dtype), requires_grad=True)
    out = ops.sum((a + scalar) * b - scalar / b + a**2 + ops.maximum(a, scalar) + ops.where(a.data > 0, a, scalar))
    assert out.dtype == dtype
    out.backward()
    assert a.grad.dtype == dtype and b.grad.dtype == dtype
