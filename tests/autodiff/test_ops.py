"""Every primitive of ``shenjing.autodiff.ops``: float64 gradient checks, forward values
against plain NumPy, and dtype preservation (float32 stays float32, float64 stays float64)."""

import numpy as np
import pytest

from shenjing.autodiff import Tensor, check_gradients, nn, no_grad, ops

from .helpers import assert_gradients, away_from_zero, backward_grads, distinct_pair

# --------------------------------------------------------------------------- the cases
# A case: (id, fn taking Tensors and returning a Tensor, factory rng -> list of input arrays).
CASES = []


def case(name, fn, factory):
    CASES.append(pytest.param(fn, factory, id=name))


def normal(*shapes):
    return lambda rng: [rng.standard_normal(s) for s in shapes]


def positive(*shapes, low=0.5, high=2.0):
    return lambda rng: [rng.uniform(low, high, size=s) for s in shapes]


BROADCAST_PAIRS = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((4,), (3, 4)),
    ((3, 1), (1, 4)),
    ((), (3,)),
    ((3, 4), ()),
    ((), ()),
    ((2, 3, 4), (3, 1)),
    ((3, 1), (2, 3, 4)),
]


def _checkerboard(a, b):
    shape = np.broadcast_shapes(a.shape, b.shape)
    return np.arange(int(np.prod(shape))).reshape(shape) % 2 == 0


def _pair_id(sa, sb):
    return f"{sa}x{sb}".replace(" ", "")


for sa, sb in BROADCAST_PAIRS:
    pid = _pair_id(sa, sb)
    case(f"add-{pid}", ops.add, normal(sa, sb))
    case(f"sub-{pid}", ops.sub, normal(sa, sb))
    case(f"mul-{pid}", ops.mul, normal(sa, sb))
    case(f"div-{pid}", ops.div,
         lambda rng, sa=sa, sb=sb: [rng.standard_normal(sa), away_from_zero(rng, sb, 0.5, 2.0)])
    case(f"pow-{pid}", ops.pow,  # gradient w.r.t. the base and the exponent
         lambda rng, sa=sa, sb=sb: [rng.uniform(0.5, 2.0, sa), rng.uniform(-1.5, 1.5, sb)])
    case(f"maximum-{pid}", ops.maximum, lambda rng, sa=sa, sb=sb: list(distinct_pair(rng, sa, sb)))
    case(f"minimum-{pid}", ops.minimum, lambda rng, sa=sa, sb=sb: list(distinct_pair(rng, sa, sb)))
    case(f"where-{pid}", lambda a, b: ops.where(_checkerboard(a, b), a, b), normal(sa, sb))
    case(f"operators-{pid}", lambda a, b: (a + b) * a - b / (1.5 + a * a) + (-a) ** 2, normal(sa, sb))

# python-scalar and array-like operands on either side
case("add-scalar", lambda a: ops.add(a, 2.5), normal((3, 4)))
case("radd-scalar", lambda a: 2.5 + a, normal((3, 4)))
case("rsub-scalar", lambda a: 2.5 - a, normal((3, 4)))
case("rmul-int", lambda a: 3 * a, normal((3, 4)))
case("rdiv-scalar", lambda a: 3.0 / a, lambda rng: [away_from_zero(rng, (3, 4))])
case("div-scalar", lambda a: a / 4.0, normal((3, 4)))
case("pow-int-exponent", lambda a: a**3, lambda rng: [away_from_zero(rng, (3, 4))])
case("pow-float-exponent", lambda a: a**0.5, positive((3, 4)))
case("pow-negative-exponent", lambda a: ops.pow(a, -2), lambda rng: [away_from_zero(rng, (3, 4))])
case("rpow-scalar-base", lambda b: 2.0**b, normal((3, 4)))
case("rpow-array-base", lambda b: ops.pow(np.array([0.5, 1.5, 2.5, 3.0]), b), normal((3, 4)))
case("add-ndarray", lambda a: np.linspace(-1, 1, 4) + a, normal((3, 4)))
case("maximum-scalar", lambda a: ops.maximum(a, 0.1), lambda rng: [away_from_zero(rng, (3, 4)) + 0.1])
case("minimum-scalar", lambda a: ops.minimum(0.1, a), lambda rng: [away_from_zero(rng, (3, 4)) + 0.1])
case("where-scalar-branch", lambda a: ops.where(a.data > 0, a, 0.0), lambda rng: [away_from_zero(rng, (3, 4))])

# unary elementwise
case("neg", ops.neg, normal((3, 4)))
case("exp", ops.exp, normal((3, 4)))
case("log", ops.log, positive((3, 4), low=0.2, high=3.0))
case("log1p", ops.log1p, positive((3, 4), low=-0.5, high=3.0))
case("sqrt", ops.sqrt, positive((3, 4), low=0.2, high=3.0))
case("square", ops.square, normal((3, 4)))
case("abs", ops.abs, lambda rng: [away_from_zero(rng, (3, 4))])
case("abs-0d", ops.abs, lambda rng: [np.array(-1.3)])
case("clip", lambda a: ops.clip(a, -0.5, 0.7),
     lambda rng: [rng.choice([-1.2, -0.2, 0.3, 1.1], size=(3, 4)) + rng.uniform(-0.1, 0.1, (3, 4))])
case("clip-lower-only", lambda a: ops.clip(a, -0.5, None),
     lambda rng: [rng.choice([-1.2, 0.3, 1.1], size=(3, 4)) + rng.uniform(-0.1, 0.1, (3, 4))])
case("clip-upper-only", lambda a: ops.clip(a, None, 0.5),
     lambda rng: [rng.choice([-1.2, 0.0, 1.1], size=(3, 4)) + rng.uniform(-0.1, 0.1, (3, 4))])
case("cast", lambda a: ops.cast(a, a.dtype), normal((3, 4)))
case("Tensor.astype", lambda a: a.astype(a.dtype) * 2, normal((3, 4)))

# matmul: 2-D, 1-D operands, batched with broadcasting batch dimensions
MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((3, 4), (2, 4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (2, 4, 5)),
    ((2, 3, 4), (4,)),
    ((1, 3, 4), (2, 4, 1)),
]
for sa, sb in MATMUL_SHAPES:
    case(f"matmul-{_pair_id(sa, sb)}", ops.matmul, normal(sa, sb))
case("matmul-operator", lambda a, b: a @ b, normal((3, 4), (4, 2)))
case("rmatmul-ndarray", lambda b: np.ones((2, 4)) @ b, normal((4, 3)))

case("linear", ops.linear, normal((3, 4), (4, 5), (5,)))
case("linear-no-bias", ops.linear, normal((3, 4), (4, 5)))
case("linear-batched", ops.linear, normal((2, 3, 4), (4, 5), (5,)))
case("linear-1d", ops.linear, normal((4,), (4, 5), (5,)))
case("linear-bias-row", ops.linear, normal((3, 4), (4, 5), (1, 5)))
case("linear-4d", ops.linear, normal((2, 2, 3, 4), (4, 5), (5,)))
case("matmul-strided-3d", lambda a, b: ops.matmul(ops.transpose(a, (1, 0, 2)), b), normal((3, 2, 4), (4, 5)))

# reductions over every axis, tuples of axes and None, with and without keepdims
REDUCE_AXES = [None, 0, 1, 2, -1, (0, 2), (1, 2), (0, 1, 2), (-1, 0)]
for axis in REDUCE_AXES:
    for keepdims in (False, True):
        rid = f"axis={axis}-keepdims={keepdims}".replace(" ", "")
        case(f"sum-{rid}", lambda a, axis=axis, keepdims=keepdims: ops.sum(a, axis, keepdims), normal((2, 3, 4)))
        case(f"mean-{rid}", lambda a, axis=axis, keepdims=keepdims: ops.mean(a, axis, keepdims), normal((2, 3, 4)))
        case(f"max-{rid}", lambda a, axis=axis, keepdims=keepdims: ops.max(a, axis, keepdims), normal((2, 3, 4)))
        case(f"min-{rid}", lambda a, axis=axis, keepdims=keepdims: ops.min(a, axis, keepdims), normal((2, 3, 4)))
        case(f"var-{rid}", lambda a, axis=axis, keepdims=keepdims: ops.var(a, axis, keepdims), normal((2, 3, 4)))
        case(f"logsumexp-{rid}", lambda a, axis=axis, keepdims=keepdims: ops.logsumexp(a, axis, keepdims),
             normal((2, 3, 4)))
case("sum-0d", ops.sum, normal(()))
case("mean-1d", ops.mean, normal((5,)))
case("Tensor.sum/mean/max/min/var", lambda a: a.sum(0) + a.mean(1, keepdims=True).sum() + a.max(-1).sum()
     + a.min() + a.var(axis=1).sum(), normal((3, 4)))

# shapes
case("reshape", lambda a: ops.reshape(a, (4, 6)), normal((2, 3, 4)))
case("reshape-minus-one", lambda a: ops.reshape(a, (-1,)), normal((2, 3, 4)))
case("Tensor.reshape-varargs", lambda a: a.reshape(6, 4), normal((2, 3, 4)))
case("transpose-default", ops.transpose, normal((2, 3, 4)))
case("transpose-axes", lambda a: ops.transpose(a, (1, 2, 0)), normal((2, 3, 4)))
case("transpose-negative-axes", lambda a: ops.transpose(a, (-1, 0, 1)), normal((2, 3, 4)))
case("Tensor.T", lambda a: a.T, normal((3, 4)))
case("Tensor.transpose-varargs", lambda a: a.transpose(2, 0, 1), normal((2, 3, 4)))
case("swapaxes", lambda a: ops.swapaxes(a, 0, -1), normal((2, 3, 4)))
case("expand_dims-0", lambda a: ops.expand_dims(a, 0), normal((3, 4)))
case("expand_dims-minus1", lambda a: ops.expand_dims(a, -1), normal((3, 4)))
case("squeeze-all", ops.squeeze, normal((3, 1, 4, 1)))
case("squeeze-axis", lambda a: ops.squeeze(a, 1), normal((3, 1, 4, 1)))
case("broadcast_to", lambda a: ops.broadcast_to(a, (2, 3, 4)), normal((3, 1)))
case("broadcast_to-0d", lambda a: ops.broadcast_to(a, (2, 3)), normal(()))

# indexing: basic (slices, negative steps, None, Ellipsis, ints) and advanced (integer arrays, booleans)
GETITEM_INDICES = {
    "int": 1,
    "negative-int": -1,
    "slice": (slice(1, 3), slice(None, None, 2)),
    "negative-step": (slice(None, None, -1), slice(3, 0, -2)),
    "none": (slice(None), None, 1),
    "ellipsis": (Ellipsis, 2),
    "ellipsis-none": (None, Ellipsis, slice(1, None)),
    "int-array-repeats": np.array([0, 2, 0, 0, 1]),
    "list-repeats": [2, 2, 1],
    "int-array-2d": np.array([[0, 1], [1, 1]]),
    "int-array-axis1": (slice(None), np.array([3, 3, 0, 3])),
    "int-arrays-pair": (np.array([0, 2, 0]), np.array([1, 1, 1])),
    "int-array-and-slice": (np.array([1, 1]), slice(None, 2)),
    "negative-int-array": np.array([-1, -1, 0]),
    "bool-rows": np.array([True, False, True]),
    "tensor-index": Tensor(np.array([2, 0, 2])),
}
for name, index in GETITEM_INDICES.items():
    case(f"getitem-{name}", lambda a, index=index: a[index], normal((3, 4)))
case("getitem-bool-mask", lambda a: a[a.data > 0], lambda rng: [away_from_zero(rng, (3, 4))])
case("getitem-bool-mask-3d", lambda a: ops.getitem(a, np.arange(24).reshape(2, 3, 4)[..., 0] % 2 == 0),
     normal((2, 3, 4)))

case("take-axis0-repeats", lambda a: ops.take(a, np.array([0, 2, 2, 0]), axis=0), normal((3, 4)))
case("take-axis1", lambda a: ops.take(a, [3, 1, 3], axis=1), normal((3, 4)))
case("take-axis-minus1-2d-ids", lambda a: ops.take(a, np.array([[0, 1], [1, 1]]), axis=-1), normal((2, 3, 2)))
case("take-embedding", lambda a: ops.take(a, np.array([[1, 4, 1], [0, 0, 2]]), axis=0), normal((5, 3)))

for axis in (0, 1, -1):
    case(f"concatenate-axis={axis}", lambda a, b, c, axis=axis: ops.concatenate([a, b, c], axis=axis),
         lambda rng, axis=axis: [rng.standard_normal(s) for s in
                                 ([(2, 3, 4), (1, 3, 4), (3, 3, 4)] if axis == 0 else
                                  [(2, 3, 4), (2, 1, 4), (2, 2, 4)] if axis == 1 else
                                  [(2, 3, 4), (2, 3, 1), (2, 3, 2)])])
    case(f"stack-axis={axis}", lambda a, b, c, axis=axis: ops.stack([a, b, c], axis=axis),
         normal((2, 3), (2, 3), (2, 3)))
case("concatenate-with-constant", lambda a: ops.concatenate([a, np.ones((1, 4))], axis=0), normal((3, 4)))
case("stack-axis=2", lambda a, b: ops.stack([a, b], axis=2), normal((2, 3), (2, 3)))

case("split-sections", lambda a: ops.split(a, 2, axis=1)[0] * 2 + ops.split(a, 2, axis=1)[1], normal((3, 4)))
case("split-indices", lambda a: ops.concatenate([p * (i + 1) for i, p in enumerate(ops.split(a, [1, 3], axis=0))]),
     normal((5, 2)))
case("split-negative-axis", lambda a: ops.split(a, 3, axis=-1)[2], normal((2, 6)))

case("pad-asymmetric", lambda a: ops.pad(a, ((1, 2), (0, 3))), normal((3, 4)))
case("pad-asymmetric-3d-value", lambda a: ops.pad(a, ((0, 0), (2, 1), (1, 0)), constant_values=1.5), normal((2, 3, 4)))
case("pad-int", lambda a: ops.pad(a, 2), normal((3, 4)))
case("pad-one-pair-for-all", lambda a: ops.pad(a, (1, 2)), normal((2, 3, 2)))
case("pad-one-nested-pair-for-all", lambda a: ops.pad(a, [(2, 1)]), normal((2, 3)))

case("dropout_mask_apply", lambda a: ops.dropout_mask_apply(a, np.array([[0.0, 2.0, 2.0, 0.0]] * 3)), normal((3, 4)))
case("dropout_mask_apply-bool", lambda a: ops.dropout_mask_apply(a, np.arange(12).reshape(3, 4) % 3 == 0),
     normal((3, 4)))

# a fresh generator of one seed per call: every evaluation of the gradient check draws the same mask
case("dropout", lambda a: ops.dropout(a, 0.4, np.random.default_rng(3)), normal((3, 5)))
case("dropout-noise-shape", lambda a: ops.dropout(a, 0.5, np.random.default_rng(3), (3, 1, 4)), normal((3, 2, 4)))

# a composite: a small MLP with a softmax-free loss
case("composite-mlp", lambda x, w1, b1, w2: ops.mean(ops.square(ops.matmul(nn.tanh(ops.linear(x, w1, b1)), w2))),
     normal((4, 3), (3, 5), (5,), (5, 2)))


# ------------------------------------------------------------------------ gradient check
@pytest.mark.parametrize("fn, factory", CASES)
def test_gradient_float64(fn, factory):
    rng = np.random.default_rng(7)
    assert_gradients(fn, *factory(rng))


# ------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("fn, factory", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(fn, factory, dtype):
    """float32 inputs (with python-scalar operands and reductions) give float32 outputs and
    float32 gradients at every node; float64 stays float64."""
    rng = np.random.default_rng(7)
    tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in factory(rng)]
    out = fn(*tensors)
    assert out.dtype == dtype
    for parent, g in zip(out._parents, backward_grads(out)):
        if g is not None:
            assert g.dtype == dtype, f"backward gave {g.dtype} for a {parent.dtype} input"
            assert g.shape == parent.shape
    ops.sum(out).backward()
    for t in tensors:
        assert t.grad is not None and t.grad.dtype == dtype and t.grad.shape == t.shape


# --------------------------------------------------------------------- forward values
def _x(rng, *shape):
    return rng.standard_normal(shape)


def test_forward_elementwise_matches_numpy(rng):
    a, b = _x(rng, 3, 4), rng.uniform(0.5, 2, (4,))
    ta, tb = Tensor(a), Tensor(b)
    np.testing.assert_allclose(ops.add(ta, tb).data, a + b, rtol=1e-15)
    np.testing.assert_allclose(ops.sub(ta, tb).data, a - b, rtol=1e-15)
    np.testing.assert_allclose(ops.mul(ta, tb).data, a * b, rtol=1e-15)
    np.testing.assert_allclose(ops.div(ta, tb).data, a / b, rtol=1e-15)
    np.testing.assert_allclose(ops.pow(tb, ta).data, b**a, rtol=1e-15)
    np.testing.assert_allclose(ops.neg(ta).data, -a, rtol=1e-15)
    np.testing.assert_allclose(ops.exp(ta).data, np.exp(a), rtol=1e-15)
    np.testing.assert_allclose(ops.log(tb).data, np.log(b), rtol=1e-15)
    np.testing.assert_allclose(ops.log1p(tb).data, np.log1p(b), rtol=1e-15)
    np.testing.assert_allclose(ops.sqrt(tb).data, np.sqrt(b), rtol=1e-15)
    np.testing.assert_allclose(ops.square(ta).data, a * a, rtol=1e-15)
    np.testing.assert_allclose(ops.abs(ta).data, np.abs(a), rtol=1e-15)
    np.testing.assert_allclose(ops.sign(ta).data, np.sign(a), rtol=1e-15)
    np.testing.assert_allclose(ops.maximum(ta, tb).data, np.maximum(a, b), rtol=1e-15)
    np.testing.assert_allclose(ops.minimum(ta, tb).data, np.minimum(a, b), rtol=1e-15)
    np.testing.assert_allclose(ops.where(a > 0, ta, tb).data, np.where(a > 0, a, b), rtol=1e-15)
    np.testing.assert_allclose(ops.clip(ta, -0.5, 0.5).data, np.clip(a, -0.5, 0.5), rtol=1e-15)
    np.testing.assert_allclose(ops.clip(ta, None, 0.5).data, np.minimum(a, 0.5), rtol=1e-15)
    np.testing.assert_allclose(ops.clip(ta, -0.5, None).data, np.maximum(a, -0.5), rtol=1e-15)


def test_forward_matmul_linear_matches_numpy(rng):
    for sa, sb in MATMUL_SHAPES:
        a, b = _x(rng, *sa), _x(rng, *sb)
        np.testing.assert_allclose(ops.matmul(Tensor(a), Tensor(b)).data, a @ b, rtol=1e-13)
    x, w, bias = _x(rng, 2, 3, 4), _x(rng, 4, 5), _x(rng, 5)
    np.testing.assert_allclose(ops.linear(Tensor(x), Tensor(w), Tensor(bias)).data, x @ w + bias, rtol=1e-13)
    np.testing.assert_allclose(ops.linear(x, w).data, x @ w, rtol=1e-13)


def test_linear_and_matmul_of_stacked_rows(rng):
    """(…, n, k) @ (k, m) runs as one GEMM over all rows: NumPy's values, a zero width, a strided input
    (kept for the backward: a second backward with retain_graph gives the same gradients)."""
    a, w = _x(rng, 3, 2, 4), _x(rng, 4, 5)
    np.testing.assert_array_equal(ops.matmul(np.zeros((2, 3, 0)), np.zeros((0, 5))).data, np.zeros((2, 3, 5)))
    np.testing.assert_array_equal(ops.linear(np.zeros((2, 0, 4)), w).data, np.zeros((2, 0, 5)))
    x = Tensor(a, requires_grad=True)
    kernel = Tensor(w, requires_grad=True)
    out = ops.linear(ops.transpose(x, (1, 0, 2)), kernel)
    np.testing.assert_allclose(out.data, a.transpose(1, 0, 2) @ w, rtol=1e-13)
    loss = ops.sum(ops.square(out))
    loss.backward(retain_graph=True)
    first = x.grad.copy(), kernel.grad.copy()
    x.grad = kernel.grad = None
    loss.backward()
    np.testing.assert_array_equal(x.grad, first[0])
    np.testing.assert_array_equal(kernel.grad, first[1])


@pytest.mark.parametrize("act", [None, "relu", "tanh"])
def test_linear_of_time_major_rows_keeps_their_order(rng, act):
    """A (batch, time, in) view of time-major rows (a recurrent layer's outputs) is multiplied in its own
    row order, without a copy: the output is (batch, time, out) laid out time-major too, with NumPy's
    values; the gradients pass finite differences, the input's seen as the input is."""
    x_tm, w, bias = _x(rng, 5, 3, 4), _x(rng, 4, 6), _x(rng, 6)  # (time, batch, in)
    fn = (lambda a, k, b: nn.dense(ops.transpose(a, (1, 0, 2)), k, b, act)) if act else \
        (lambda a, k, b: ops.linear(ops.transpose(a, (1, 0, 2)), k, b))
    out = fn(Tensor(x_tm), Tensor(w), Tensor(bias))
    want = x_tm.transpose(1, 0, 2) @ w + bias
    want = {None: want, "relu": np.maximum(want, 0), "tanh": np.tanh(want)}[act]
    np.testing.assert_allclose(out.data, want, rtol=1e-13)
    assert out.shape == (3, 5, 6) and np.swapaxes(out.data, 0, 1).flags.c_contiguous
    assert check_gradients(fn, x_tm, w, bias) < 1e-6


@pytest.mark.parametrize("order", ["C", "F"])
def test_linear_of_time_major_rows_takes_both_gradients_side_by_side(rng, monkeypatch, order):
    """A Dense on a recurrent layer's outputs computes the input's and the kernel's gradients side by side on the
    pool's threads (one BLAS thread each). They equal those computed one after another (on one thread) and
    NumPy's, and the kernel's gradient has the kernel's layout (Dense's large kernels are column-major)."""
    from shenjing.backend import parallel

    if parallel.threads() < 2:
        pytest.skip("one thread: the products run one after another")
    x_tm = rng.standard_normal((7, 64, 32)).astype(np.float32)  # (time, batch, in)
    w = np.asarray(rng.standard_normal((32, 48)), dtype=np.float32, order=order)
    g = rng.standard_normal((64, 7, 48)).astype(np.float32)
    calls = []
    run = parallel.run
    monkeypatch.setattr(parallel, "run", lambda work, parts: calls.append(parts) or run(work, parts))

    def grads():
        x, kernel = Tensor(x_tm, requires_grad=True), Tensor(w, requires_grad=True)
        ops.linear(ops.transpose(x, (1, 0, 2)), kernel).backward(g)
        return x.grad, kernel.grad

    side_by_side = grads()
    assert calls == [[0, 1]]
    monkeypatch.setenv("SHENJING_NUM_THREADS", "1")
    one_after_another = grads()
    assert calls == [[0, 1]]
    for got, want in zip(side_by_side, one_after_another):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert side_by_side[1].flags[f"{order}_CONTIGUOUS"] and side_by_side[0].dtype == np.float32
    np.testing.assert_allclose(side_by_side[0], (g @ w.T).swapaxes(0, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(side_by_side[1], np.einsum("tbi,bto->io", x_tm, g), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bias_shape", [(4, 6), (4, 1, 6), (1, 1, 6), (1, 6)])
def test_linear_of_time_major_rows_with_a_bias_along_batch_or_time(rng, bias_shape):
    """A bias that varies along the batch or the time axis lines up with x as it is seen (batch == time
    here, so a mix-up would not even raise)."""
    x_tm, w, bias = _x(rng, 4, 4, 5), _x(rng, 5, 6), _x(rng, *bias_shape)

    def fn(a, k, b):
        return ops.linear(ops.transpose(a, (1, 0, 2)), k, b)

    np.testing.assert_allclose(fn(Tensor(x_tm), Tensor(w), Tensor(bias)).data, x_tm.transpose(1, 0, 2) @ w + bias,
                               rtol=1e-13)
    assert check_gradients(fn, x_tm, w, bias) < 1e-6


@pytest.mark.parametrize("act", [None, "relu"])
def test_linear_with_a_column_major_kernel(rng, act):
    """A column-major kernel (Dense's large ones) gives the row-major kernel's output and gradients, its
    gradient in its own layout (an optimizer then updates both as flat arrays); finite differences
    perturb the column-major array itself."""
    x, w, bias = _x(rng, 2, 3, 4), _x(rng, 4, 5), _x(rng, 5)
    fn = (lambda a, k, b: nn.dense(a, k, b, act)) if act else ops.linear
    results = []
    for kernel in (w, np.asfortranarray(w)):
        xt, kt, bt = (Tensor(a, requires_grad=True) for a in (x, kernel, bias))
        out = fn(xt, kt, bt)
        ops.sum(ops.square(out)).backward()
        assert kt.grad.flags.f_contiguous == kt.data.flags.f_contiguous
        results.append((out.data, xt.grad, kt.grad, bt.grad))
    for row_major, column_major in zip(*results):
        np.testing.assert_allclose(column_major, row_major, rtol=1e-12, atol=1e-14)
    assert check_gradients(fn, x, np.asfortranarray(w), bias) < 1e-6


@pytest.mark.parametrize("axis", REDUCE_AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_forward_reductions_match_numpy(rng, axis, keepdims):
    a = _x(rng, 2, 3, 4)
    t = Tensor(a)
    kw = dict(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(ops.sum(t, **kw).data, a.sum(**kw), rtol=1e-13)
    np.testing.assert_allclose(ops.mean(t, **kw).data, a.mean(**kw), rtol=1e-13)
    np.testing.assert_allclose(ops.max(t, **kw).data, a.max(**kw), rtol=1e-15)
    np.testing.assert_allclose(ops.min(t, **kw).data, a.min(**kw), rtol=1e-15)
    np.testing.assert_allclose(ops.var(t, **kw).data, a.var(**kw), rtol=1e-12)
    lse = np.log(np.exp(a).sum(**kw))
    np.testing.assert_allclose(ops.logsumexp(t, **kw).data, lse, rtol=1e-13)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_logsumexp_is_stable_and_handles_infinities():
    big = np.array([[1000.0, 1000.0], [-1000.0, -1000.0]])
    np.testing.assert_allclose(ops.logsumexp(Tensor(big), axis=-1).data, [1000 + np.log(2), -1000 + np.log(2)])
    out = ops.logsumexp(Tensor(np.array([[-np.inf, -np.inf], [np.inf, 1.0]])), axis=-1).data
    assert out[0] == -np.inf and out[1] == np.inf


def test_forward_shapes_match_numpy(rng):
    a = _x(rng, 2, 3, 4)
    t = Tensor(a)
    np.testing.assert_array_equal(ops.reshape(t, (4, 6)).data, a.reshape(4, 6))
    np.testing.assert_array_equal(ops.transpose(t).data, a.transpose())
    np.testing.assert_array_equal(ops.transpose(t, (-1, 0, 1)).data, a.transpose(2, 0, 1))
    np.testing.assert_array_equal(ops.swapaxes(t, 0, 2).data, np.swapaxes(a, 0, 2))
    np.testing.assert_array_equal(ops.expand_dims(t, 1).data, a[:, None])
    np.testing.assert_array_equal(ops.squeeze(Tensor(a[:, :1]), 1).data, a[:, 0])
    np.testing.assert_array_equal(ops.broadcast_to(Tensor(a[:, :1]), (2, 3, 4)).data,
                                  np.broadcast_to(a[:, :1], a.shape))
    for index in GETITEM_INDICES.values():
        index = index.data if isinstance(index, Tensor) else index
        np.testing.assert_array_equal(ops.getitem(Tensor(a[0]), index).data, a[0][index])
    np.testing.assert_array_equal(ops.take(t, [2, 0, 2], axis=2).data, np.take(a, [2, 0, 2], axis=2))
    np.testing.assert_array_equal(ops.take(t, np.array([1.0, 0.0]), axis=0).data, a[[1, 0]])  # float ids
    np.testing.assert_array_equal(ops.concatenate([t, t], axis=1).data, np.concatenate([a, a], axis=1))
    np.testing.assert_array_equal(ops.stack([t, t], axis=-1).data, np.stack([a, a], axis=-1))
    for got, want in zip(ops.split(t, [1, 3], axis=2), np.split(a, [1, 3], axis=2)):
        np.testing.assert_array_equal(got.data, want)
    np.testing.assert_array_equal(ops.pad(t, ((0, 1), (2, 0), (1, 1)), 3.0).data,
                                  np.pad(a, ((0, 1), (2, 0), (1, 1)), constant_values=3.0))
    np.testing.assert_array_equal(ops.pad(t, (1, 2)).data, np.pad(a, (1, 2)))
    with pytest.raises(ValueError, match="pad"):
        ops.pad(t, ((1, 1), (1, 1)))


def test_integer_index_gradient_accumulates():
    x = Tensor(np.arange(5.0), requires_grad=True)
    ops.sum(x[np.array([0, 0, 3, 0, -1])] * np.array([1.0, 2.0, 3.0, 4.0, 5.0])).backward()
    np.testing.assert_array_equal(x.grad, [7.0, 0.0, 0.0, 3.0, 5.0])
    e = Tensor(np.zeros((4, 2)), requires_grad=True)
    ops.sum(ops.take(e, np.array([[1, 1], [3, 1]]))).backward()
    np.testing.assert_array_equal(e.grad[:, 0], [0.0, 3.0, 0.0, 1.0])


def test_boolean_mask_gradient():
    a = np.array([[1.0, -2.0], [-3.0, 4.0]])
    x = Tensor(a, requires_grad=True)
    ops.sum(x[a > 0] * 3.0).backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 0.0], [0.0, 3.0]])


def test_max_ties_share_gradient():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]), requires_grad=True)
    ops.sum(ops.max(x, axis=1)).backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])
    y = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    z = Tensor(np.array([1.0, 3.0]), requires_grad=True)
    ops.sum(ops.maximum(y, z)).backward()
    np.testing.assert_array_equal(y.grad, [0.5, 0.0])
    np.testing.assert_array_equal(z.grad, [0.5, 1.0])


def test_clip_gradient_passes_inside_and_at_bounds():
    x = Tensor(np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), requires_grad=True)
    ops.sum(ops.clip(x, -1.0, 1.0)).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_pow_exponent_gradient_value():
    a = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([3.0, 0.5]), requires_grad=True)
    ops.sum(a**b).backward()
    np.testing.assert_allclose(a.grad, [3 * 4.0, 0.5 * 3**-0.5])
    np.testing.assert_allclose(b.grad, [8 * np.log(2.0), 3**0.5 * np.log(3.0)])


def test_sign_is_a_constant():
    x = Tensor(np.array([-2.0, 3.0]), requires_grad=True)
    assert not ops.sign(x).requires_grad


def test_python_float_with_integer_tensor_is_not_truncated():
    ints = Tensor(np.arange(4))
    np.testing.assert_array_equal((ints * 0.5).data, [0.0, 0.5, 1.0, 1.5])
    assert (ints * 0.5).dtype.kind == "f"
    assert (ints + 1).dtype == ints.dtype
    np.testing.assert_array_equal((1.5 - ints).data, [1.5, 0.5, -0.5, -1.5])


def test_scalar_constants_do_not_upcast():
    x32 = Tensor(np.ones(3, np.float32))
    for out in (x32 + 1.5, 2.5 * x32, x32 / 3, 1 - x32, x32**2, 2.0**x32, ops.maximum(x32, 0.5),
                ops.where(x32.data > 0, x32, 0.0), x32 + np.float64(1.5), ops.clip(x32, np.float64(0.1), 0.9),
                ops.dropout_mask_apply(x32, np.ones(3)), ops.pad(x32, 1, 2.0), ops.mean(x32), ops.var(x32)):
        assert out.dtype == np.float32
    x64 = Tensor(np.ones(3))
    for out in (x64 + 1.5, 2.5 * x64, x64 / 3, x64**0.5, ops.mean(x64), ops.clip(x64, 0, 1)):
        assert out.dtype == np.float64
    assert Tensor(1.5).dtype == np.float32 and Tensor([1.0, 2.0]).dtype == np.float32


def test_ops_without_grad_record_nothing():
    x = Tensor(np.ones(3))
    out = ops.exp(x) * 2
    assert not out.requires_grad and out.is_leaf
    with no_grad():
        y = ops.exp(Tensor(np.ones(3), requires_grad=True))
    assert not y.requires_grad


# --------------------------------------------------------------------------- dropout
def test_dropout_zeroes_a_fraction_rate_and_scales_the_rest():
    x = np.ones(200_000, np.float32)
    out = ops.dropout(x, 0.3, np.random.default_rng(0)).data
    assert out.dtype == np.float32
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.005
    assert np.all(out[kept] == np.float32(1 / 0.7))
    assert abs(out.mean() - 1) < 0.01


def test_dropout_gradient_is_the_forward_mask():
    x = Tensor(np.random.default_rng(1).uniform(1, 2, (50, 40)), requires_grad=True)
    out = ops.dropout(x, 0.5, np.random.default_rng(2))
    ops.sum(out).backward()
    np.testing.assert_array_equal(x.grad, out.data / x.data)


def test_dropout_seeded_masks_repeat_and_noise_shape_shares_draws():
    x = np.ones((4, 3, 3, 5))
    a = ops.dropout(x, 0.5, np.random.default_rng(5), (4, 1, 1, 5)).data
    b = ops.dropout(x, 0.5, np.random.default_rng(5), (4, 1, 1, 5)).data
    np.testing.assert_array_equal(a, b)
    assert np.all(a == a[:, :1, :1, :])  # one draw per sample and channel
    assert 0 < (a == 0).mean() < 1


def test_dropout_rejects_a_bad_rate_or_noise_shape():
    with pytest.raises(ValueError, match="rate must be in"):
        ops.dropout(np.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"noise_shape \(2, 3\) does not broadcast"):
        ops.dropout(np.ones((2, 4)), 0.5, None, (2, 3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("grad_shape,shape", [((4096, 65), (65,)), ((64, 64, 65), (65,)), ((8, 64, 3, 5), (3, 5)),
                                              ((300, 20), (1, 20)), ((10, 4), (4,))])
def test_unbroadcast_sums_what_broadcasting_added(dtype, grad_shape, shape):
    """Summed back to the operand's shape: through a product with ones for large contiguous gradients, by
    NumPy otherwise (strided ones too): the same sums to rounding."""
    grad = np.random.default_rng(0).normal(size=grad_shape).astype(dtype)
    extra = len(grad_shape) - len(shape)
    stretched = tuple(i for i, n in enumerate(shape) if n == 1)
    want = grad.astype("float64").sum(axis=tuple(range(extra))).sum(axis=stretched, keepdims=True)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for g in (grad, np.asfortranarray(grad)):
        got = ops.unbroadcast(g, shape)
        assert got.shape == shape and got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(grad.size))
