"""Neural-network primitives: activation functions, (log-)softmax and the fused
softmax / sigmoid cross-entropies, each with its derivative written out.

The fused losses take logits and compute the loss stably in one node; their
gradients are the famous ``softmax(z) − y`` and ``sigmoid(z) − y``.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..backend import jit
from .ops import _t, linear, unbroadcast
from .replay import record_module_ops
from .tensor import Tensor, _as_data, make

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid_array(x):
    """Stable logistic function on an array: never exponentiates a large positive number. The
    compiled kernel does the same in one pass (within a few ulp: its ``exp`` is the C library's)."""
    xp = B.xp
    kernels = jit.kernels("elementwise", x)
    if kernels is not None:
        out = xp.empty_like(x)
        kernels.sigmoid(x, out)
        return out
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(x) -> Tensor:
    """σ(x) = 1 / (1 + e^−x); σ' = σ(1 − σ)."""
    x = _t(x)
    out = _sigmoid_array(x.data)
    result = make(out, (x,), lambda g: (g * out * (1 - out),))
    result._made_by = ("sigmoid", x)
    return result


def tanh(x) -> Tensor:
    """tanh; tanh' = 1 − tanh²."""
    x = _t(x)
    out = B.xp.tanh(x.data)
    return make(out, (x,), lambda g: (g * (1 - out * out),))


def relu(x, alpha=0.0, max_value=None, threshold=0.0) -> Tensor:
    """Keras's relu: x for threshold <= x < max_value, max_value above, alpha·(x − threshold) below.

    The derivative is 1 on the linear part, alpha below the threshold and 0 above max_value.
    """
    x = _t(x)
    xp = B.xp
    d = x.data
    if alpha == 0 and max_value is None and threshold == 0:  # one pass each way, the gradient from the output
        out = xp.maximum(d, 0)
        return make(out, (x,), lambda g: (_relu_grad(g, out),))
    below = d < threshold
    above = d >= max_value if max_value is not None else xp.zeros(d.shape, bool)
    out = xp.where(below, alpha * (d - threshold), d)
    if max_value is not None:
        out = xp.where(above, xp.asarray(max_value, d.dtype), out)
    slope = xp.where(below, alpha, xp.where(above, 0.0, 1.0)).astype(d.dtype)
    return make(out.astype(d.dtype, copy=False), (x,), lambda g: (g * slope,))


# Activations whose derivative is a function of their output: a Dense or convolution layer fuses
# them into its own node (``linear(..., activation=)``, ``conv2d(..., activation=)``), which applies
# them in place on its fresh output and multiplies the incoming gradient by the derivative — no
# separate node, no extra activation-sized arrays.


def _bias_kernels(a, bias):
    """The elementwise kernels when ``bias`` runs along the last axis of ``a`` in rows of two or more
    (NumPy's broadcast add runs one short inner loop per row: 611 µs against 108 µs compiled for
    460,800 float32 values in rows of 4; for rows of one NumPy's scalar loop is the fast one)."""
    if a.ndim and a.shape[-1] > 1 and bias.shape == a.shape[-1:]:
        return jit.kernels("elementwise", a, bias)
    return None


def add_bias(a, bias):
    """a += bias (features,) over the last axis, in place; returns ``a``."""
    kernels = _bias_kernels(a, bias)
    if kernels is not None:
        kernels.bias_add(a.reshape(-1, a.shape[-1]), bias)
        return a
    a += bias
    return a


def _relu_inplace(a, bias=None):
    """a = max(a + bias, 0) in place (``bias`` (features,) or None): one compiled pass where it can."""
    if bias is not None:
        kernels = _bias_kernels(a, bias)
        if kernels is not None:
            kernels.bias_relu(a.reshape(-1, a.shape[-1]), bias)
            return a
        a += bias
    return B.xp.maximum(a, 0, out=a)


def _compiled_grad(name, g, out, res):
    """``g`` times the activation's derivative by the compiled kernel ``name``, into ``res`` (a new
    array when None); None where the compiled path is off or the arrays do not suit it."""
    if g.shape != out.shape:
        return None
    kernels = jit.kernels("elementwise", g, out) if res is None else jit.kernels("elementwise", g, out, res)
    if kernels is None:
        return None
    res = B.xp.empty_like(g) if res is None else res
    getattr(kernels, name)(g, out, res)
    return res


def _relu_grad(g, out, res=None):
    done = _compiled_grad("relu_grad", g, out, res)
    if done is not None:
        return done
    return g * (out > 0) if res is None else B.xp.multiply(g, out > 0, out=res)


def _tanh_inplace(a, bias=None):
    if bias is not None:
        add_bias(a, bias)
    return B.xp.tanh(a, out=a)


def _tanh_grad(g, out, res=None):
    done = _compiled_grad("tanh_grad", g, out, res)
    if done is not None:
        return done
    if res is None:
        return g * (1 - out * out)
    xp = B.xp
    xp.multiply(out, out, out=res)
    xp.subtract(1, res, out=res)
    return xp.multiply(g, res, out=res)


FUSED_ACTIVATIONS = {"relu": (_relu_inplace, _relu_grad), "tanh": (_tanh_inplace, _tanh_grad)}
"""name -> (``apply(a, bias=None)``: add the bias (features,) to the pre-activation array and apply
the activation, in place; gradient ``grad(g, output, res=None)``: g times the derivative, written into
``res`` when given, which may be ``g`` itself or a scratch buffer)."""


def fused_activation(name):
    """The (in-place forward, gradient-from-output) pair of a fusable activation; None for None."""
    if name is None or name == "linear":
        return None
    try:
        return FUSED_ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation {name!r} cannot be fused; fusable: {sorted(FUSED_ACTIVATIONS)}") from None


def dense(x, kernel, bias=None, activation=None) -> Tensor:
    """``activation(x @ kernel + bias)`` for (…, in) @ (in, out) as one node, the activation a fusable
    name ('relu', 'tanh') or None (then it is plain :func:`ops.linear`)."""
    return linear(x, kernel, bias, act=fused_activation(activation))


def leaky_relu(x, negative_slope=0.2) -> Tensor:
    """x for x > 0, negative_slope·x otherwise."""
    x = _t(x)
    xp = B.xp
    slope = xp.where(x.data > 0, 1.0, negative_slope).astype(x.dtype)
    return make(x.data * slope, (x,), lambda g: (g * slope,))


def elu(x, alpha=1.0) -> Tensor:
    """x for x > 0, alpha·(eˣ − 1) otherwise; derivative 1 or alpha·eˣ."""
    x = _t(x)
    xp = B.xp
    positive = x.data > 0
    e = xp.exp(xp.minimum(x.data, 0))
    out = xp.where(positive, x.data, alpha * (e - 1))
    return make(out, (x,), lambda g: (g * xp.where(positive, 1.0, alpha * e).astype(x.dtype),))


def selu(x) -> Tensor:
    """scale · elu(x, alpha) with the self-normalizing constants of Klambauer et al. (2017)."""
    x = _t(x)
    xp = B.xp
    positive = x.data > 0
    e = xp.exp(xp.minimum(x.data, 0))
    out = SELU_SCALE * xp.where(positive, x.data, SELU_ALPHA * (e - 1))
    slope = SELU_SCALE * xp.where(positive, 1.0, SELU_ALPHA * e)
    return make(out.astype(x.dtype, copy=False), (x,), lambda g: (g * slope.astype(x.dtype, copy=False),))


def softplus(x) -> Tensor:
    """log(1 + eˣ), stably; derivative σ(x)."""
    x = _t(x)
    xp = B.xp
    out = xp.maximum(x.data, 0) + xp.log1p(xp.exp(-xp.abs(x.data)))
    return make(out, (x,), lambda g: (g * _sigmoid_array(x.data),))


def softsign(x) -> Tensor:
    """x / (1 + |x|); derivative 1 / (1 + |x|)²."""
    x = _t(x)
    denom = 1 + B.xp.abs(x.data)
    return make(x.data / denom, (x,), lambda g: (g / (denom * denom),))


def hard_sigmoid(x) -> Tensor:
    """clip(x/6 + 1/2, 0, 1), as Keras 3 and torch define it (Keras 2 used 0.2·x + 0.5)."""
    x = _t(x)
    xp = B.xp
    inside = (x.data > -3) & (x.data < 3)
    out = xp.clip(x.data / 6 + 0.5, 0, 1)
    return make(out, (x,), lambda g: (g * inside / 6,))


def swish(x) -> Tensor:
    """x·σ(x) (also called silu); derivative σ(x)(1 + x(1 − σ(x)))."""
    x = _t(x)
    s = _sigmoid_array(x.data)
    return make(x.data * s, (x,), lambda g: (g * s * (1 + x.data * (1 - s)),))


def erf_array(x):
    """The error function on an array, accurate to float64 rounding.

    Uses the everywhere-convergent series erf(x) = 2/√π · e^(−x²) · Σ 2ⁿx^(2n+1)/(1·3···(2n+1)),
    whose terms are all positive (no cancellation); |x| >= 6 gives ±1 to double precision.
    """
    xp = B.xp
    z = xp.clip(x.astype("float64"), -6, 6)
    z2 = z * z
    term = z.copy()
    total = z.copy()
    n = 0
    while True:
        term = term * (2 * z2) / (2 * n + 3)
        total += term
        n += 1
        if n > 30 and float(xp.max(xp.abs(term))) <= 1e-17 * float(xp.max(xp.abs(total)) + 1e-300):
            break
        if n > 200:
            break
    return (2 / math.sqrt(math.pi) * xp.exp(-z2) * total).astype(x.dtype)


def gelu(x, approximate=False) -> Tensor:
    """x·Φ(x) with Φ the standard normal CDF; ``approximate`` uses the tanh form of Hendrycks & Gimpel."""
    x = _t(x)
    xp = B.xp
    d = x.data
    if approximate:
        c = math.sqrt(2 / math.pi)
        inner = c * (d + 0.044715 * d**3)
        t = xp.tanh(inner)
        out = 0.5 * d * (1 + t)
        slope = 0.5 * (1 + t) + 0.5 * d * (1 - t * t) * c * (1 + 3 * 0.044715 * d * d)
    else:
        cdf = 0.5 * (1 + erf_array(d / math.sqrt(2)))
        pdf = xp.exp(-0.5 * d * d) / math.sqrt(2 * math.pi)
        out = d * cdf
        slope = cdf + d * pdf
    return make(out.astype(d.dtype, copy=False), (x,), lambda g: (g * slope.astype(d.dtype, copy=False),))


def exponential(x) -> Tensor:
    """eˣ."""
    x = _t(x)
    out = B.xp.exp(x.data)
    return make(out, (x,), lambda g: (g * out,))


def step(x) -> Tensor:
    """The perceptron's Heaviside step: 1 for x >= 0, else 0. Its derivative is zero (a.e.)."""
    x = _t(x)
    return make((x.data >= 0).astype(x.dtype), (x,), lambda g: (g * 0,))


SHORT_ROWS = 16
"""Up to this many values along the last axis, a row maximum of many rows is taken column by column:
NumPy's reduction over short rows loops once per row (the maxima of (1000, 10): 58 µs against 8 µs)."""

LONG_ROWS = 4096
"""Up to this many values along the last axis, a row sum of floats over many rows is a product with a
ones vector (BLAS; (1000, 10): 18 µs against 3 µs, (4096, 65): 106 µs against 18 µs); longer rows keep
NumPy's pairwise sum, whose rounding error grows more slowly."""

MANY_ROWS = 64
"""Fewer rows than this (or, for the maximum, than :data:`MANY_ROWS_PER_VALUE` per value of a row) take
NumPy's reduction: the column loop costs about 0.65 µs a column and the product with ones 1.6 µs, fixed,
against NumPy's 0.7 µs plus 0.01-0.03 µs a row (a softmax over (1, 10), a single prediction: the maximum
6.9 → 0.7 µs)."""

MANY_ROWS_PER_VALUE = 10


def _row_max(a, axis):
    """``a.max(axis, keepdims=True)``, column by column for many short last-axis rows (NaN propagates, as
    with ``max``)."""
    width = a.shape[-1] if a.ndim else 0
    if (axis not in (-1, a.ndim - 1) or not 0 < width <= SHORT_ROWS
            or a.size < max(MANY_ROWS, MANY_ROWS_PER_VALUE * width) * width):
        return a.max(axis=axis, keepdims=True)
    m = a[..., :1].copy()
    for k in range(1, width):
        B.xp.maximum(m, a[..., k:k + 1], out=m)
    return m


def _row_sum(a, axis):
    """``a.sum(axis, keepdims=True)``, as a product with ones for many float rows along the last axis."""
    width = a.shape[-1] if a.ndim else 0
    if (axis not in (-1, a.ndim - 1) or a.dtype.kind != "f" or not 0 < width <= LONG_ROWS
            or a.size < MANY_ROWS * width):
        return a.sum(axis=axis, keepdims=True)
    return B.last_axis_sums(a)[..., None]


def _softmax_parts(x, axis):
    """``(softmax, row maximum, row sum)`` of the array ``x`` over ``axis``: p = e / s with
    e = exp(x − m), m the maximum and s the sum of e (both with ``axis`` kept, of size 1).

    Over the last axis the rows are taken as one (rows, width) matrix; with the compiled path on, the
    maximum and the shift are one pass (``softmax_shift``) and so is the division (``divide_rows``),
    around NumPy's ``exp`` and :func:`_row_sum` (their NumPy twins: :func:`_row_max`, a subtraction,
    a division; the same numbers). (4096, 65), a character model's outputs: 549 → 370 µs.
    """
    xp = B.xp
    last = axis in (-1, x.ndim - 1)
    if last and x.ndim not in (0, 2) and x.size:
        p, m, s = _softmax_parts(x.reshape(-1, x.shape[-1]), -1)
        kept = x.shape[:-1] + (1,)
        return p.reshape(x.shape), m.reshape(kept), s.reshape(kept)
    kernels = jit.kernels("elementwise", x) if last and x.size else None
    if kernels is not None:
        m = xp.empty((x.shape[0], 1), dtype=x.dtype)
        e = xp.empty_like(x)
        kernels.softmax_shift(x, m, e)
    else:
        m = _row_max(x, axis)
        e = x - m
    e = xp.exp(e, out=e) if e.dtype.kind == "f" and e.ndim else xp.exp(e)  # integers: float probabilities
    s = _row_sum(e, axis)
    if kernels is not None:
        kernels.divide_rows(e, s)
    else:
        e /= s
    return e, m, s


def softmax(x, axis=-1) -> Tensor:
    """e^(x_i) / Σ_j e^(x_j) over ``axis`` (shifted by the maximum for stability).

    Backward: s ⊙ (g − Σ g⊙s). Over the last axis the output is tagged with the logits, the maximum
    and the sum, which :func:`softmax_cross_entropy` reuses (``probs``).
    """
    x = _t(x)
    out, m, s = _softmax_parts(x.data, axis)
    result = make(out, (x,), lambda g: (out * (g - _row_sum(g * out, axis)),))
    if axis in (-1, x.ndim - 1):
        result._made_by = ("softmax", x, m, s)
    return result


def log_softmax(x, axis=-1) -> Tensor:
    """x − logsumexp(x), stably; backward g − softmax(x)·Σg."""
    x = _t(x)
    xp = B.xp
    shifted = x.data - _row_max(x.data, axis)
    lse = xp.log(_row_sum(xp.exp(shifted), axis))
    out = shifted - lse
    return make(out, (x,), lambda g: (g - xp.exp(out) * _row_sum(g, axis),))


def softmax_cross_entropy(logits, labels, axis=-1, probs=None) -> Tensor:
    """Per-sample −Σ y·log softmax(z) over ``axis`` from logits, fused and stable.

    ``labels``: one-hot / probability targets of the logits' shape (any dtype;
    they may require a gradient), or class indices of the logits' shape without
    ``axis`` (sparse: told apart by the number of dimensions; integer or
    integral-float arrays or Tensors). Output: the logits' shape without
    ``axis``. Gradient w.r.t. logits: (softmax(z)·Σy − y)·g; w.r.t. dense labels: −log softmax(z)·g.

    ``probs``: None, or ``softmax(logits)`` over the last axis already computed (a model's softmax
    output): its probabilities, maximum and sum are used instead of being computed again. The
    numbers are the same either way: log softmax(z) = (z − m) − log s, its gradient from p = e / s.
    As with any recorded backward, the logits must not be changed in place in between.
    Sparse labels need only the labels' entries of log softmax(z); the gradient is one pass with the
    compiled path on (``softmax_xent_grad``). A character model's (4096, 65) outputs, with ``probs``:
    the loss and its gradient 936 → 85 µs.
    """
    z = _t(logits)
    xp = B.xp
    axis = axis % z.ndim
    if probs is None:
        p, m, s = _softmax_parts(z.data, axis)
    else:
        tag = probs._made_by if isinstance(probs, Tensor) else None
        # (the same logits: the same Tensor, or, where a replay wraps an input array anew, the same array)
        if tag is None or tag[0] != "softmax" or (tag[1] is not z and tag[1].data is not z.data) \
                or axis != z.ndim - 1:
            raise ValueError("softmax_cross_entropy: probs must be nn.softmax(logits) over the last axis")
        p, m, s = probs.data, tag[2], tag[3]
    log_s = xp.log(s)
    label_data = _as_data(labels)
    sparse = label_data.ndim == z.ndim - 1
    if sparse:
        expected = z.shape[:axis] + z.shape[axis + 1:]
        if label_data.shape != expected:
            raise ValueError(
                f"softmax_cross_entropy: sparse labels must have the logits' shape without axis {axis}, "
                f"{expected}; got {label_data.shape}")
        idx = xp.expand_dims(label_data.astype("int64"), axis)
        out = -((xp.take_along_axis(z.data, idx, axis=axis) - m) - log_s).squeeze(axis)

        def backward(g):
            kernels = jit.kernels("elementwise", p, g) if axis == p.ndim - 1 and p.size else None
            if kernels is not None:
                grad = xp.empty_like(p)
                width = p.shape[-1]
                kernels.softmax_xent_grad(p.reshape(-1, width), idx.reshape(-1), g.reshape(-1),
                                          grad.reshape(-1, width))
                return (grad,)
            grad = p.copy()
            xp.put_along_axis(grad, idx, xp.take_along_axis(grad, idx, axis=axis) - 1, axis=axis)
            grad *= xp.expand_dims(g, axis)
            return (grad,)

        return make(out, (z,), backward)

    log_probs = (z.data - m) - log_s
    y = _t(labels)
    y_data = y.data.astype(z.dtype, copy=False) if z.dtype.kind == "f" else y.data
    out = -(y_data * log_probs).sum(axis=axis)

    def backward_dense(g):
        g = xp.expand_dims(g, axis)
        y_sum = _row_sum(y_data, axis)
        gz = unbroadcast((p * y_sum - y_data) * g, z.shape) if z.requires_grad else None
        gy = unbroadcast(-log_probs * g, y.shape) if y.requires_grad else None
        return gz, gy

    return make(out, (z, y), backward_dense)


def sigmoid_binary_cross_entropy(logits, labels) -> Tensor:
    """Elementwise −[y·log σ(z) + (1 − y)·log(1 − σ(z))] from logits, stably:
    max(z, 0) − z·y + log(1 + e^−|z|). Gradient w.r.t. z: σ(z) − y; w.r.t. y: −z.
    """
    z, y = _t(logits), _t(labels)
    xp = B.xp
    y_data = y.data.astype(z.dtype, copy=False)
    kernels = jit.kernels("elementwise", z.data, y_data) if y_data.shape == z.shape else None
    if kernels is not None and z.data.size <= jit.SMALL_ELEMENTS:
        out = xp.empty_like(z.data)
        kernels.sigmoid_bce(z.data, y_data, out)
    else:
        out = xp.maximum(z.data, 0) - z.data * y_data + xp.log1p(xp.exp(-xp.abs(z.data)))

    def backward(g):
        gz = None
        if z.requires_grad:
            if kernels is not None and g.shape == z.shape and jit.usable(g, z.data):
                gz = xp.empty_like(z.data)
                kernels.sigmoid_bce_grad(g, z.data, y_data, gz)
            else:
                gz = unbroadcast(g * (_sigmoid_array(z.data) - y_data), z.shape)
        gy = unbroadcast(-g * z.data, y.shape) if y.requires_grad else None
        return gz, gy

    return make(out, (z, y), backward)


# every op is visible to a recording; these helpers compute on arrays
record_module_ops(globals(), {"add_bias", "fused_activation", "erf_array"})
