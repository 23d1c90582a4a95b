"""Compiled elementwise kernels: one pass over memory, one call. The NumPy twins are the fused
activations (the relu with its bias add), the sigmoid, the softmax's passes around its ``exp`` and the
sigmoid and softmax cross-entropies' gradients of ``shenjing.autodiff.nn``, and ``ops.dropout``'s mask
product.

The kernels without a transcendental (bias + relu, the activation gradients, dropout) give NumPy's
numbers bit for bit. Those with one (:func:`sigmoid`, :func:`sigmoid_bce`, :func:`sigmoid_bce_grad`)
call the C library's ``exp``/``log1p`` once per element, which may differ from NumPy's SIMD versions in
the last bit and are slower on long arrays: they serve small arrays only (``jit.SMALL_ELEMENTS``), where NumPy's cost
is the eight or nine ufunc calls of the stable formula, not the arithmetic."""

from __future__ import annotations

import numba as nb
import numpy as np

from . import JIT_OPTIONS as _JIT


@nb.njit(**_JIT)
def bias_relu(a, bias):
    """a = max(a + bias, 0) in place, for ``a`` (rows, features) and ``bias`` (features,): the bias add
    and the relu in one pass. As NumPy's ``maximum``: NaN propagates, −0 becomes +0."""
    zero = a.dtype.type(0)
    for r in range(a.shape[0]):
        for j in range(a.shape[1]):
            v = a[r, j] + bias[j]
            a[r, j] = v if v > zero or v != v else zero


@nb.njit(**_JIT)
def bias_add(a, bias):
    """a += bias in place, for ``a`` (rows, features) and ``bias`` (features,)."""
    for r in range(a.shape[0]):
        row = a[r]
        for j in range(a.shape[1]):
            row[j] += bias[j]


@nb.njit(**_JIT)
def relu_grad(g, out, res):
    """res = g · (out > 0) (same-size contiguous arrays; res may be g)."""
    g1, o1, r1 = g.reshape(-1), out.reshape(-1), res.reshape(-1)
    zero = g.dtype.type(0)  # a constant of the arrays' dtype: float32 stays float32
    for k in range(r1.size):
        r1[k] = g1[k] if o1[k] > 0 else g1[k] * zero  # g·0 keeps NumPy's NaN and −0


@nb.njit(**_JIT)
def tanh_grad(g, out, res):
    """res = g · (1 − out²) (res may be g)."""
    g1, o1, r1 = g.reshape(-1), out.reshape(-1), res.reshape(-1)
    one = g.dtype.type(1)
    for k in range(r1.size):
        r1[k] = g1[k] * (one - o1[k] * o1[k])


@nb.njit(**_JIT)
def sigmoid(x, out):
    """out = σ(x), stably: 1 / (1 + e) for x ≥ 0, else e / (1 + e), with e = exp(−|x|)."""
    x1, o1 = x.reshape(-1), out.reshape(-1)
    one = x.dtype.type(1)
    for k in range(x1.size):
        v = x1[k]
        e = np.exp(-abs(v))
        o1[k] = one / (one + e) if v >= 0 else e / (one + e)


@nb.njit(**_JIT)
def sigmoid_bce(z, y, out):
    """out = max(z, 0) − z·y + log1p(exp(−|z|)): the binary cross-entropy of σ(z) against y."""
    z1, y1, o1 = z.reshape(-1), y.reshape(-1), out.reshape(-1)
    zero = z.dtype.type(0)
    for k in range(z1.size):
        v = z1[k]
        o1[k] = max(v, zero) - v * y1[k] + np.log1p(np.exp(-abs(v)))


@nb.njit(**_JIT)
def sigmoid_bce_grad(g, z, y, out):
    """out = g · (σ(z) − y): the gradient of :func:`sigmoid_bce` with respect to z."""
    g1, z1, y1, o1 = g.reshape(-1), z.reshape(-1), y.reshape(-1), out.reshape(-1)
    one = z.dtype.type(1)
    for k in range(z1.size):
        v = z1[k]
        e = np.exp(-abs(v))
        o1[k] = g1[k] * ((one / (one + e) if v >= 0 else e / (one + e)) - y1[k])


@nb.njit(**_JIT)
def softmax_shift(x, m, e):
    """Per row of ``x`` (rows, width): its maximum into ``m`` (rows, 1) and x − max into ``e`` (rows,
    width), the row read twice while it is in cache. As NumPy's ``max``: NaN propagates."""
    n, w = x.shape
    for r in range(n):
        top = x[r, 0]
        for j in range(1, w):
            v = x[r, j]
            if v > top or v != v:
                top = v
        m[r, 0] = top
        for j in range(w):
            e[r, j] = x[r, j] - top


@nb.njit(**_JIT)
def divide_rows(e, s):
    """e /= s in place, for ``e`` (rows, width) and ``s`` (rows, 1)."""
    n, w = e.shape
    for r in range(n):
        d = s[r, 0]
        for j in range(w):
            e[r, j] = e[r, j] / d


@nb.njit(**_JIT)
def softmax_xent_grad(p, labels, g, out):
    """out = (p − onehot(labels)) · g per row: the gradient of the sparse softmax cross-entropy with
    respect to the logits, from the softmax ``p`` (rows, width), ``labels`` (rows,) integers in
    [−width, width) (negative ones wrap) and the loss's gradient ``g`` (rows,). ``out`` may be ``p``."""
    n, w = p.shape
    one = p.dtype.type(1)
    for r in range(n):
        k = labels[r]
        if k < 0:
            k += w
        scale = g[r]
        picked = (p[r, k] - one) * scale
        for j in range(w):
            out[r, j] = p[r, j] * scale
        out[r, k] = picked


@nb.njit(**_JIT)
def dropout(x, bits, threshold, scale, out):
    """out = x · (scale if bits ≥ threshold else 0): an inverted-dropout mask applied without
    building it (``bits`` uint16, the shape of ``x``; ``scale`` of x's dtype; out may be x)."""
    x1, b1, o1 = x.reshape(-1), bits.reshape(-1), out.reshape(-1)
    zero = x.dtype.type(0)
    for k in range(o1.size):
        o1[k] = x1[k] * (scale if b1[k] >= threshold else zero)  # x·0 keeps NumPy's NaN and −0
