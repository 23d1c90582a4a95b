"""Compiled kernels for the LSTM's gate math (the sigmoid/tanh fast path of ``shenjing.autodiff.rnn``).

Per time step the NumPy path runs about five ufuncs over (batch, 4·units) and (batch, units) rows
after the step's tanh, and fifteen in the backward, each one pass over memory with its own call.
These kernels do that elementwise work in one pass over the step's rows. The transcendental stays
with NumPy: its tanh is SIMD-vectorised (numba's, a scalar libm call per element, is some fifty times
slower on float32), so a forward step is matmul, add (:func:`gather_add` when the inputs are an
embedding's rows), NumPy tanh over the four gates, :func:`lstm_gates`, NumPy tanh over the cell, one
multiply; the backward needs no transcendental (:func:`lstm_gates_backward` takes the derivatives from
the stored gates and tanh(c), and adds the step's output gradient itself).

Each kernel does its NumPy twin's operations in the same order and precision (constants of the
arrays' dtype, no fused multiply-adds), so both paths give the same numbers. Layout, measured: per
batch row, one short loop per gate block, indexing (batch, 4, units) reshapes directly. Such loops
vectorise well (one loop over all the blocks at once ran two to three times slower: too many
streams that may alias), and creating row or block views inside the loop (a reference count each)
cost as much as the arithmetic. Serial on purpose: BLAS keeps the cores.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from . import JIT_OPTIONS as _JIT


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
    a3 = a.reshape(n, 4, u)
    for r in range(n):
        for j in range(u):
            a3[r, 0, j] = a3[r, 0, j] * half + half
        for j in range(u):
            a3[r, 1, j] = a3[r, 1, j] * half + half
        for j in range(u):
            a3[r, 3, j] = a3[r, 3, j] * half + half
        for j in range(u):
            c_new[r, j] = a3[r, 1, j] * c_prev[r, j] + a3[r, 0, j] * a3[r, 2, j]


@nb.njit(**_JIT)
def gather_add(table, ids, product, a):
    """a[r] = table[ids[r]] + product[r] for every row r: a step's input projection gathered from a
    projected embedding table (rows, width) by its ids (batch,) (negative ones wrap, as NumPy's
    ``take``), plus its h·R ``product`` (batch, width), written into the step's gate rows ``a``."""
    n, width = a.shape
    rows = table.shape[0]
    for r in range(n):
        k = ids[r]
        if k < 0:
            k += rows
        for j in range(width):
            a[r, j] = table[k, j] + product[r, j]


@nb.njit(**_JIT)
def lstm_gates_backward(gh, g_out, step, gc, a, tc, c_prev, d, gc_prev):
    """The adjoint of one LSTM step's gate math (the recurrent matmul excluded).

    ``gh`` + ``g_out[:, step]``, ``gc`` (batch, units): the gradients reaching the step's h and c
    (``g_out`` (batch, steps, units): the gradients of the layer's outputs, added here instead of in a
    pass of their own; a caller that has added them passes zeros); ``a`` (batch, 4·units): the step's
    gates i, f, g, o; ``tc`` (batch, units): tanh(c_new); ``c_prev`` (batch, units): the cell entering
    the step. Writes ``d`` (batch, 4·units), the gradient of the gate pre-activations (σ' = (1 − σ)·σ,
    tanh' = 1 − g² = (1 − g)·g + (1 − g)), and ``gc_prev`` (batch, units), the gradient of c_prev,
    dc·f (``gc_prev`` may be ``gc``).
    """
    n, width = a.shape
    u = width // 4
    one = a.dtype.type(1)
    a3, d3 = a.reshape(n, 4, u), d.reshape(n, 4, u)
    h_grad = np.empty(u, a.dtype)  # dL/dh of one row
    dc = np.empty(u, a.dtype)  # dL/dc_new of one row
    for r in range(n):
        for j in range(u):
            h_grad[j] = gh[r, j] + g_out[r, step, j]
        for j in range(u):
            dc[j] = h_grad[j] * a3[r, 3, j] * (one - tc[r, j] * tc[r, j]) + gc[r, j]
        for j in range(u):
            d3[r, 3, j] = h_grad[j] * tc[r, j] * ((one - a3[r, 3, j]) * a3[r, 3, j])
        for j in range(u):
            d3[r, 0, j] = dc[j] * a3[r, 2, j] * ((one - a3[r, 0, j]) * a3[r, 0, j])
        for j in range(u):
            d3[r, 2, j] = dc[j] * a3[r, 0, j] * ((one - a3[r, 2, j]) * a3[r, 2, j] + (one - a3[r, 2, j]))
        for j in range(u):
            d3[r, 1, j] = dc[j] * c_prev[r, j] * ((one - a3[r, 1, j]) * a3[r, 1, j])
        for j in range(u):
            gc_prev[r, j] = dc[j] * a3[r, 1, j]


@nb.njit(**_JIT)
def gru_gates_backward(g_new, a, h_prev, aux, d, drec, dh_rec, gh):
    """The adjoint of one GRU step's gate math (sigmoid gates, tanh candidate, ``reset_after``; the
    recurrent matmul excluded), as the NumPy twin in ``shenjing.autodiff.rnn.gru`` computes it.

    ``g_new`` (batch, units): the gradient reaching h_new = z·(h_prev − ĥ) + ĥ; ``a`` (batch, 3·units):
    the step's z, r, ĥ; ``aux`` (batch, units): (h·R + b) of the candidate block. Writes ``d`` (batch,
    3·units), the gradient of the gates' pre-activations; ``drec`` (batch, 3·units), that of h·R + b
    (the candidate block times r); ``dh_rec`` (batch, units), its candidate block again (for dR); and
    ``gh`` (batch, units), g_new·z, the direct part of the gradient of h_prev (``gh`` may be ``g_new``).
    """
    n, width = a.shape
    u = width // 3
    one = a.dtype.type(1)
    a3, d3, r3 = a.reshape(n, 3, u), d.reshape(n, 3, u), drec.reshape(n, 3, u)
    for r in range(n):  # one loop per output block: each vectorises (a loop writing all blocks did not)
        for j in range(u):
            z = a3[r, 0, j]
            d3[r, 0, j] = ((h_prev[r, j] - a3[r, 2, j]) * g_new[r, j]) * (z * (one - z))
        for j in range(u):
            cand = a3[r, 2, j]
            d3[r, 2, j] = (g_new[r, j] * (one - a3[r, 0, j])) * (one - cand * cand)
        for j in range(u):
            reset = a3[r, 1, j]
            d3[r, 1, j] = (d3[r, 2, j] * aux[r, j]) * (reset * (one - reset))
        for j in range(u):
            r3[r, 0, j] = d3[r, 0, j]
            r3[r, 1, j] = d3[r, 1, j]
        for j in range(u):
            back = d3[r, 2, j] * a3[r, 1, j]
            r3[r, 2, j] = back
            dh_rec[r, j] = back
        for j in range(u):
            gh[r, j] = g_new[r, j] * a3[r, 0, j]


@nb.njit(**_JIT)
def gru_gates_input(x, rec, bias, a, aux):
    """The start of one GRU step (sigmoid gates, ``reset_after``), before the gates' tanh: the z and r
    blocks of ``a`` (batch, 3·units) get (x + (h·R + b))·½ (σ(v) = ½ + ½·tanh(v/2)), and ``aux``
    (batch, units) gets the candidate block's h·R + b. ``x`` (batch, 3·units): the step's input
    projection; ``rec`` (batch, 3·units): h·R; ``bias`` (3·units,): the recurrent bias (zeros for none).
    """
    n, width = a.shape
    u = width // 3
    half = a.dtype.type(0.5)
    for r in range(n):
        for j in range(2 * u):
            a[r, j] = (x[r, j] + (rec[r, j] + bias[j])) * half
        for j in range(u):
            aux[r, j] = rec[r, 2 * u + j] + bias[2 * u + j]


@nb.njit(**_JIT)
def gru_gates_candidate(x, aux, a):
    """After the z and r blocks' tanh: z, r = ½ + ½·tanh (in place), and the candidate block of ``a``
    gets r·aux + x (its pre-activation)."""
    n, width = a.shape
    u = width // 3
    half = a.dtype.type(0.5)
    for r in range(n):
        for j in range(2 * u):
            a[r, j] = a[r, j] * half + half
        for j in range(u):
            a[r, 2 * u + j] = a[r, u + j] * aux[r, j] + x[r, 2 * u + j]


@nb.njit(**_JIT)
def gru_state(a, h_prev, h):
    """The new state after the candidate's tanh: h = (h_prev − ĥ)·z + ĥ."""
    n, width = a.shape
    u = width // 3
    for r in range(n):
        for j in range(u):
            cand = a[r, 2 * u + j]
            h[r, j] = (h_prev[r, j] - cand) * a[r, j] + cand
