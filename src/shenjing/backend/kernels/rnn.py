"""Compiled kernels for the LSTM's gate math (the sigmoid/tanh fast path of ``shenjing.autodiff.rnn``).

Per time step the NumPy path runs about ten ufuncs over (batch, 4·units) and (batch, units) rows
forward and fifteen backward, each one pass over memory with its own call overhead. These kernels
do the elementwise part of a step in one pass. The transcendental stays with NumPy: its tanh is
SIMD-vectorised (numba's, a scalar libm call per element, is some fifty times slower on float32),
so the forward step is matmul + add + NumPy tanh over the four gates, :func:`lstm_gates`, NumPy
tanh over the cell, one multiply; the backward needs no transcendental at all
(:func:`lstm_gates_backward` takes the derivatives from the stored gates and tanh(c)).

Each kernel does the NumPy twin's operations in the same order and precision (constants of the
arrays' dtype, no fused multiply-adds), so both paths give the same numbers. Rows are independent;
the inner loop over units is contiguous and vectorises. Serial on purpose: BLAS keeps the cores.
"""

from __future__ import annotations

import numba as nb

_JIT = {"nogil": True, "cache": True}


@nb.njit(**_JIT)
def lstm_gates(a, c_prev, c_new):
    """One LSTM step's gates and cell, after the step's tanh.

    ``a`` (batch, 4·units), blocks i, f, g, o: tanh of the pre-activations with the sigmoid blocks
    halved (σ(z) = ½ + ½·tanh(z/2)); overwritten with the gates (i, f, o: ½·t + ½; g: t).
    ``c_prev`` (batch, units): the cell entering the step; ``c_new`` (batch, units): written with
    f·c_prev + i·g.
    """
    n, width = a.shape
    u = width // 4
    half = a.dtype.type(0.5)
    for r in range(n):
        row, cp, cn = a[r], c_prev[r], c_new[r]
        for j in range(u):
            i = row[j] * half + half
            f = row[u + j] * half + half
            row[j] = i
            row[u + j] = f
            row[3 * u + j] = row[3 * u + j] * half + half
            cn[j] = f * cp[j] + i * row[2 * u + j]


@nb.njit(**_JIT)
def lstm_gates_backward(gh, gc, a, tc, c_prev, d, gc_prev):
    """The adjoint of one LSTM step's gate math (the recurrent matmul excluded).

    ``gh``, ``gc`` (batch, units): the gradients reaching the step's h and c; ``a`` (batch, 4·units):
    its gates i, f, g, o; ``tc`` (batch, units): tanh(c_new); ``c_prev`` (batch, units): the cell
    entering the step. Writes ``d`` (batch, 4·units), the gradient of the gate pre-activations
    (σ' = (1 − σ)·σ, tanh' = (1 − g)·g + (1 − g)), and ``gc_prev`` (batch, units), the gradient of
    c_prev, dc·f (``gc_prev`` may be ``gc``).
    """
    n, width = a.shape
    u = width // 4
    one = a.dtype.type(1)
    for r in range(n):
        row, drow, ghr, gcr, tcr, cpr, out = a[r], d[r], gh[r], gc[r], tc[r], c_prev[r], gc_prev[r]
        for j in range(u):
            i, f, g, o = row[j], row[u + j], row[2 * u + j], row[3 * u + j]
            t = tcr[j]
            dc = ghr[j] * o * (one - t * t) + gcr[j]  # dL/dc_new
            drow[j] = dc * g * ((one - i) * i)
            drow[u + j] = dc * cpr[j] * ((one - f) * f)
            drow[2 * u + j] = dc * i * ((one - g) * g + (one - g))
            drow[3 * u + j] = ghr[j] * t * ((one - o) * o)
            out[j] = dc * f
