"""Compiled elementwise kernels: one pass over memory, spread over the cores. The NumPy twins are
the fused activations of ``shenjing.autodiff.nn``."""

from __future__ import annotations

import numba as nb

from . import JIT_OPTIONS as _JIT


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
