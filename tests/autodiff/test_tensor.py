"""The engine: the tape, backward, gradient accumulation, no_grad, detach, graph release,
dtypes, and Variable."""

import gc
import weakref

import numpy as np
import pytest

from shenjing import backend as B
from shenjing.autodiff import Tensor, Variable, as_tensor, enable_grad, is_grad_enabled, make, nn, no_grad, ops


def leaf(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


# ------------------------------------------------------------------------ long chains
def test_chain_of_ten_thousand_ops():
    x = leaf(0.5)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()  # no RecursionError
    np.testing.assert_allclose(x.grad, 1.0001**10_000, rtol=1e-12)
    np.testing.assert_allclose(y.data, 0.5 * 1.0001**10_000, rtol=1e-12)


def test_chain_of_mixed_ops_and_fan_in():
    x = leaf([0.3, -0.2])
    y = x
    for _ in range(5_000):
        y = nn.tanh(y) * 0.5 + x
    ops.sum(y).backward()
    # reference: the same recurrence differentiated forward by hand
    v, dv = np.array([0.3, -0.2]), np.ones(2)
    for _ in range(5_000):
        t = np.tanh(v)
        v, dv = 0.5 * t + np.array([0.3, -0.2]), 0.5 * (1 - t * t) * dv + 1
    np.testing.assert_allclose(y.data, v, rtol=1e-12)
    np.testing.assert_allclose(x.grad, dv, rtol=1e-12)


def test_ten_thousand_uses_of_one_leaf():
    x = leaf(2.0)
    total = x
    for _ in range(9_999):
        total = total + x
    total.backward()
    assert x.grad == 10_000


# -------------------------------------------------------------------- graph structure
def test_diamond_graph_sums_the_paths():
    x = leaf([0.5, -1.5])
    a = x * 3.0
    b = ops.exp(x)
    ops.sum(a * b).backward()
    np.testing.assert_allclose(x.grad, 3 * np.exp(x.data) + 3 * x.data * np.exp(x.data), rtol=1e-14)


def test_tensor_used_twice_in_one_op():
    x = leaf([1.5, -2.0])
    ops.sum(x * x).backward()
    np.testing.assert_allclose(x.grad, 2 * x.data)
    y = leaf([1.0, 2.0])
    ops.sum(ops.add(y, y)).backward()
    np.testing.assert_array_equal(y.grad, [2.0, 2.0])
    z = leaf([[1.0, 2.0], [3.0, 4.0]])
    ops.sum(z @ z).backward()
    np.testing.assert_allclose(z.grad, np.ones((2, 2)) @ z.data.T + z.data.T @ np.ones((2, 2)))


def test_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    ops.sum(x * 3.0).backward()
    ops.sum(x * x).backward()
    np.testing.assert_allclose(x.grad, 3.0 + 2 * x.data)
    x.zero_grad()
    assert x.grad is None


def test_constants_and_frozen_inputs_get_no_gradient():
    x = leaf([1.0, 2.0])
    c = Tensor(np.array([3.0, 4.0]))
    ops.sum(x * c).backward()
    assert c.grad is None and not c.requires_grad
    np.testing.assert_array_equal(x.grad, c.data)


def test_only_reachable_leaves_are_touched():
    x, unused = leaf(1.0), leaf(2.0)
    _ = unused * 2.0
    (x * 2.0).backward()
    assert unused.grad is None and x.grad == 2.0


# ------------------------------------------------------------------------- backward API
def test_backward_needs_grad_for_a_non_scalar():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        Tensor(np.ones(2)).sum().backward()


def test_backward_with_an_explicit_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    y.backward(np.array([1.0, 0.0, -2.0]))
    np.testing.assert_allclose(x.grad, [2.0, 0.0, -12.0])
    z = leaf([1.0, 2.0])
    (z * 2.0).backward([0.5, 1.0])  # a list is accepted
    np.testing.assert_allclose(z.grad, [1.0, 2.0])


def test_backward_with_a_wrong_shaped_grad_raises():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))


def test_implicit_grad_for_a_one_element_tensor():
    x = leaf([[2.0]])
    (x * 3.0).backward()
    np.testing.assert_array_equal(x.grad, [[3.0]])


def test_backward_on_a_leaf():
    x = leaf([1.0, 2.0])
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_leaf_gradients_are_fresh_writable_arrays():
    x = leaf(np.zeros((2, 3)))
    ops.sum(x).backward()  # the sum's gradient is a read-only broadcast view
    assert x.grad.flags.writeable
    x.grad *= 2.0  # an optimizer may scale in place
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    upstream = np.array([1.0, 1.0])
    (a + b).backward(upstream)  # add hands the same array to both operands
    a.grad += 10.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(upstream, [1.0, 1.0])


def test_an_op_returning_a_wrong_shaped_gradient_is_reported():
    x = leaf([1.0, 2.0])

    def bad_backward(g):
        return (g.sum(),)

    y = make(x.data * 2, (x,), bad_backward)
    with pytest.raises(RuntimeError, match="bad_backward.*shape"):
        ops.sum(y).backward()


# ----------------------------------------------------------------------- graph release
def test_graph_is_released_after_backward():
    x = leaf([1.0, 2.0])
    y = ops.exp(x)
    z = ops.sum(y * 2.0)
    z.backward()
    assert z._parents == () and y._parents == ()
    assert not z.is_leaf and not y.is_leaf and x.is_leaf
    # intermediate results are freed once the graph no longer holds them
    x2 = leaf([1.0, 2.0])
    h = ops.exp(x2)
    ref = weakref.ref(h)
    loss = ops.sum(h * 2.0)
    del h
    loss.backward()
    gc.collect()
    assert ref() is None


def test_backward_through_a_released_graph_raises():
    x = leaf([1.0, 2.0])
    y = ops.exp(x)
    loss = ops.sum(y)
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()
    other = ops.sum(y * 3.0)  # y's graph is gone: no silent wrong gradient
    with pytest.raises(RuntimeError, match="retain_graph"):
        other.backward()
    np.testing.assert_allclose(x.grad, np.exp(x.data))  # untouched by the failed calls


def test_retain_graph_keeps_it():
    x = leaf([1.0, 2.0])
    y = ops.exp(x)
    loss = ops.sum(y)
    loss.backward(retain_graph=True)
    assert loss._parents and y._parents
    loss.backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp(x.data))
    assert loss._parents == ()


def test_two_losses_sharing_a_subgraph_with_retain_graph():
    x = leaf([0.5, 1.5])
    h = ops.exp(x)
    ops.sum(h).backward(retain_graph=True)
    ops.sum(h * h).backward()
    np.testing.assert_allclose(x.grad, np.exp(x.data) + 2 * np.exp(2 * x.data))


# --------------------------------------------------------------------------- no_grad
def test_no_grad_records_nothing():
    x = leaf([1.0, 2.0])
    with no_grad():
        assert not is_grad_enabled()
        y = ops.exp(x) * 2.0
        z = nn.softmax(x)
    assert is_grad_enabled()
    assert not y.requires_grad and y._parents == () and y.is_leaf
    assert not z.requires_grad
    with pytest.raises(RuntimeError):
        ops.sum(y).backward()


def test_no_grad_nests_and_enable_grad_reopens():
    x = leaf(1.0)
    with no_grad():
        with no_grad():
            assert not is_grad_enabled()
        assert not is_grad_enabled()
        with enable_grad():
            assert is_grad_enabled()
            assert (x * 2.0).requires_grad
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_restores_on_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0  # noqa: B018
    assert is_grad_enabled()
    with no_grad():
        with pytest.raises(KeyError):
            with enable_grad():
                raise KeyError
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    d = y.detach()
    assert not d.requires_grad and d.is_leaf
    assert np.shares_memory(d.data, y.data)
    ops.sum(d * x).backward()
    np.testing.assert_array_equal(x.grad, y.data)  # no path through d


# ---------------------------------------------------------------------------- dtypes
def test_python_constants_become_floatx():
    assert Tensor(1.5).dtype == np.float32
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64  # arrays keep their dtype
    assert Tensor(np.float64(1.0)).dtype == np.float64
    assert Tensor(3).dtype.kind == "i"


def test_python_constants_follow_a_float64_floatx(float64):
    assert Tensor(1.5).dtype == np.float64
    assert Variable([1.0, 2.0]).dtype == np.float64


def test_float32_stays_float32_through_a_model_step():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((5, 4)).astype(np.float32))
    w = Variable(rng.standard_normal((4, 3)))  # float64 values: cast to floatx
    b = Variable(np.zeros(3))
    assert w.dtype == np.float32 and b.dtype == np.float32
    h = nn.relu(ops.linear(x, w, b)) * 0.5 + 1e-3
    loss = ops.mean(nn.softmax_cross_entropy(h, np.array([0, 1, 2, 0, 1]))) + 0.01 * ops.sum(ops.square(w))
    assert loss.dtype == np.float32
    loss.backward()
    assert w.grad.dtype == np.float32 and b.grad.dtype == np.float32


def test_float64_stays_float64():
    x = leaf(np.ones((2, 3)))
    out = ops.mean(nn.gelu(x * 2 + 1) ** 2, axis=0)
    assert out.dtype == np.float64
    ops.sum(out).backward()
    assert x.grad.dtype == np.float64


def test_integer_indexing_gradient():
    x = leaf(np.arange(6.0).reshape(2, 3))
    ops.sum(x[1, 2] * 2.0 + x[0][np.array([0, 0])].sum()).backward()
    np.testing.assert_array_equal(x.grad, [[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])


# ------------------------------------------------------------------------ Tensor basics
def test_tensor_basics():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="t")
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2 and t.dtype == np.float64
    assert t.name == "t" and "requires_grad=True" in repr(t)
    assert isinstance(t.numpy(), np.ndarray)
    assert Tensor(np.array([2.5])).item() == 2.5
    assert np.array_equal(t > 2, t.data > 2) and np.array_equal(t <= 2, t.data <= 2)
    assert as_tensor(t) is t
    assert as_tensor([1.0]).dtype == np.float32
    assert as_tensor(t, np.float32).dtype == np.float32
    assert len({t, Tensor(1.0)}) == 2  # hashable by identity


def test_numpy_operands_on_the_left_give_tensors():
    t = leaf([1.0, 2.0])
    for out in (np.ones(2) + t, np.ones(2) * t, np.ones(2) - t, np.ones(2) / t, np.float64(2.0) * t,
                np.ones((2, 2)) @ t):
        assert isinstance(out, Tensor) and out.requires_grad


def test_make_records_only_when_needed():
    a, c = leaf([1.0]), Tensor(np.array([2.0]))
    out = make(a.data + c.data, (a, c), lambda g: (g, g))
    assert out.requires_grad and out._parents == (a, c)
    const = make(c.data * 2, (c,), lambda g: (g,))
    assert not const.requires_grad and const._parents == () and const._backward is None


# --------------------------------------------------------------------------- Variable
def test_variable_is_a_trainable_leaf():
    v = Variable(np.ones((2, 2)), name="kernel")
    assert v.requires_grad and v.trainable and v.is_leaf and v.dtype == np.float32
    assert v.value is v.data
    ops.sum(v * 3.0).backward()
    np.testing.assert_array_equal(v.grad, np.full((2, 2), 3.0, np.float32))
    assert "kernel" in repr(v)


def test_variable_trainable_sets_requires_grad():
    v = Variable(np.ones(3), trainable=False)
    assert not v.requires_grad
    v.trainable = True
    assert v.requires_grad
    v.trainable = False
    assert not v.requires_grad
    assert not (v * 2.0).requires_grad


def test_variable_assign():
    v = Variable(np.zeros((2, 3)), name="w")
    data = v.data
    v.assign(np.ones((2, 3)))
    assert v.data is data  # in place: views of the weight survive
    np.testing.assert_array_equal(v.data, 1.0)
    v.assign(Tensor(np.full((2, 3), 2.0)))
    np.testing.assert_array_equal(v.data, 2.0)
    with pytest.raises(ValueError, match=r"Variable 'w'.*shape \(3, 2\).*shape \(2, 3\)"):
        v.assign(np.ones((3, 2)))


def test_variable_owns_its_array():
    init = np.ones(3, dtype=np.float32)
    v = Variable(init)
    v.data += 1.0  # an optimizer's in-place update
    np.testing.assert_array_equal(init, [1.0, 1.0, 1.0])
    w = Variable(init, dtype="float64")
    assert w.dtype == np.float64


def test_variable_constraint_and_regularizer_are_stored():
    v = Variable(np.ones(2), constraint=abs, regularizer=sum)
    assert v.constraint is abs and v.regularizer is sum


def test_floatx_setting_is_the_default_dtype(float64):
    assert B.floatx() == "float64"
    assert Variable(np.ones(2, np.float32)).dtype == np.float64


def test_python_constants_keep_full_precision_in_float64():
    x = leaf(1.0)
    assert (x * 0.1).data == 0.1  # not float32(0.1) widened back to float64
    assert (0.1 + x).data == 1.1
    assert ops.clip(x, 0.0, 0.3).data == 0.3
    np.testing.assert_array_equal(ops.where(x.data > 5, x, 0.1).data, 0.1)


def test_numpy_integer_axes_are_accepted():
    x = leaf(np.arange(6.0).reshape(2, 3))
    out = ops.sum(x, axis=np.int64(1)) + ops.mean(x, axis=(np.int64(0),)).sum() + ops.max(x, np.int32(-1))
    ops.sum(out).backward()
    np.testing.assert_allclose(x.grad, [[2.0, 2.0, 3.0], [2.0, 2.0, 3.0]])  # the mean term is broadcast twice


def test_implicit_gradient_of_one_element_tensors_of_any_rank():
    for shape in [(), (1,), (1, 1), (1, 1, 1)]:
        x = leaf(np.full(shape, 2.0))
        y = x * 3.0
        y.backward()
        assert x.grad.shape == shape and x.grad.dtype == np.float64
        np.testing.assert_array_equal(x.grad, np.full(shape, 3.0))
    x32 = leaf(np.full((1, 1), 2.0), dtype=np.float32)
    (x32 * 3.0).backward()
    assert x32.grad.dtype == np.float32


def test_leaf_gradient_is_never_an_array_someone_else_holds():
    """A gradient array made for one leaf alone becomes its .grad without a copy; one that an op (or
    another leaf, or the caller) still holds is copied."""
    kept = []

    def keeps_its_gradient(g):
        out = np.full(3, 2.0)
        kept.append(out)
        return (out,)

    x = leaf([1.0, 2.0, 3.0])
    ops.sum(make(x.data * 2, (x,), keeps_its_gradient)).backward()
    assert x.grad is not kept[0] and not np.shares_memory(x.grad, kept[0])
    x.grad *= 10.0
    np.testing.assert_array_equal(kept[0], [2.0, 2.0, 2.0])

    views = []

    def returns_a_view(g):
        base = np.full((2, 3), 5.0)
        views.append(base)
        return (base[0],)

    z = leaf([1.0, 2.0, 3.0])
    ops.sum(make(z.data * 1, (z,), returns_a_view)).backward()
    assert not np.shares_memory(z.grad, views[0])

    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    ops.sum(a * b + a * b).backward()
    assert not np.shares_memory(a.grad, b.grad)
    np.testing.assert_array_equal(a.grad, 2 * b.data)
    np.testing.assert_array_equal(b.grad, 2 * a.data)


def test_variable_order_sets_a_layout_that_assign_keeps():
    value = np.arange(6.0).reshape(2, 3)
    v = Variable(value, order="F")
    assert v.data.flags.f_contiguous and not v.data.flags.c_contiguous
    np.testing.assert_array_equal(v.data, value)
    array = v.data
    v.assign(np.ones((2, 3)))
    assert v.data is array and v.data.flags.f_contiguous
    assert Variable(np.asfortranarray(value, dtype="float32")).data.flags.c_contiguous
    source = np.asfortranarray(value, dtype="float32")
    assert not np.shares_memory(Variable(source, order="F").data, source)  # the variable owns its array
    with pytest.raises(ValueError, match="order must be 'C' or 'F', got 'K'"):
        Variable(value, order="K")
