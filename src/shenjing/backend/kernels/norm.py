"""Compiled batch normalization over the rows of a (rows, channels) array: the channels-last case
(statistics over every axis but the last). NumPy reduces such an array along its first axis one short row
at a time (channels = 16: 500 µs for 400k float32 values, a matmul with a ones vector takes 53 µs) and
broadcasts against it as slowly; these loops take each row once per pass, the channels innermost. The sums
accumulate in float64. The NumPy twins are ``shenjing.autodiff.norm``'s formulas, the reference."""

from __future__ import annotations

import numba as nb
import numpy as np

from . import JIT_OPTIONS as _JIT


@nb.njit(**_JIT)
def batch_norm_forward(x, gamma, beta, epsilon, out, xhat, mean, var, inv_std):
    """Statistics of ``x`` (rows, C) per channel — ``mean``, biased ``var`` and ``inv_std`` =
    1/√(var + ε), each (C,) — then ``xhat`` = (x − mean)·inv_std and ``out`` = xhat·gamma + beta
    (``gamma``, ``beta``: (C,), ones and zeros when the layer has none). Two passes for the moments
    (the mean first, then the centred squares), one for the output."""
    m, c = x.shape
    one = x.dtype.type(1)
    acc = np.zeros(c, np.float64)
    for r in range(m):
        for j in range(c):
            acc[j] += x[r, j]
    for j in range(c):
        mean[j] = acc[j] / m
        acc[j] = 0.0
    for r in range(m):
        for j in range(c):
            d = x[r, j] - mean[j]
            acc[j] += d * d
    for j in range(c):
        var[j] = acc[j] / m
        inv_std[j] = one / np.sqrt(var[j] + epsilon)
    for r in range(m):
        for j in range(c):
            h = (x[r, j] - mean[j]) * inv_std[j]
            xhat[r, j] = h
            out[r, j] = h * gamma[j] + beta[j]


@nb.njit(**_JIT)
def batch_norm_backward(g, xhat, scale, want_dx, dx, g_sum, gx_sum):
    """``g_sum`` = Σ g and ``gx_sum`` = Σ g·x̂ per channel (the gradients of β and γ), then, with
    ``want_dx``, dx = scale·(g − (g_sum + x̂·gx_sum)/n) (``scale`` = γ/√(var + ε), per channel)."""
    m, c = g.shape
    s1 = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    for r in range(m):
        for j in range(c):
            gj = g[r, j]
            s1[j] += gj
            s2[j] += gj * xhat[r, j]
    for j in range(c):
        g_sum[j] = s1[j]
        gx_sum[j] = s2[j]
    if not want_dx:
        return
    n = g.dtype.type(m)
    for r in range(m):
        for j in range(c):
            dx[r, j] = scale[j] * (g[r, j] - (g_sum[j] + xhat[r, j] * gx_sum[j]) / n)


@nb.njit(**_JIT)
def batch_norm_affine(x, mean, scale, beta, out):
    """Inference: out = (x − mean)·scale + beta per channel over the rows of ``x`` (rows, C) (``scale`` =
    γ/√(var + ε); ``beta`` zeros when the layer has none)."""
    m, c = x.shape
    for r in range(m):
        for j in range(c):
            out[r, j] = (x[r, j] - mean[j]) * scale[j] + beta[j]


@nb.njit(**_JIT)
def layer_norm_forward(x, gamma, beta, epsilon, out, xhat, inv_std):
    """Layer normalization over each row of ``x`` (rows, F): the row's mean and biased variance (two
    passes, float64 sums), ``inv_std`` (rows,) = 1/√(var + ε), ``xhat`` = (x − mean)·inv_std and ``out`` =
    xhat·gamma + beta (``gamma``, ``beta``: (F,), ones and zeros when the layer has none)."""
    m, f = x.shape
    one = x.dtype.type(1)
    for r in range(m):
        acc = 0.0
        for j in range(f):
            acc += x[r, j]
        mean = x.dtype.type(acc / f)
        acc = 0.0
        for j in range(f):
            d = x[r, j] - mean
            acc += d * d
        inv = one / np.sqrt(x.dtype.type(acc / f) + epsilon)
        inv_std[r] = inv
        for j in range(f):
            h = (x[r, j] - mean) * inv
            xhat[r, j] = h
            out[r, j] = h * gamma[j] + beta[j]


@nb.njit(**_JIT)
def layer_norm_backward(g, xhat, inv_std, gamma, want_dx, dx, g_sum, gx_sum):
    """Per row, with gx̂ = g·γ: dx = inv_std·(gx̂ − (Σgx̂ + x̂·Σgx̂·x̂)/F) (``want_dx``); over the rows, per
    feature: ``g_sum`` = Σ g and ``gx_sum`` = Σ g·x̂ (the gradients of β and γ; float64 sums)."""
    m, f = g.shape
    s1 = np.zeros(f, np.float64)
    s2 = np.zeros(f, np.float64)
    n = g.dtype.type(f)
    for r in range(m):
        a = 0.0
        b = 0.0
        for j in range(f):
            gj = g[r, j]
            s1[j] += gj
            s2[j] += gj * xhat[r, j]
            gx = gj * gamma[j]
            a += gx
            b += gx * xhat[r, j]
        if want_dx:
            sa = g.dtype.type(a)
            sb = g.dtype.type(b)
            inv = inv_std[r]
            for j in range(f):
                dx[r, j] = inv * (g[r, j] * gamma[j] - (sa + xhat[r, j] * sb) / n)
    for j in range(f):
        g_sum[j] = s1[j]
        gx_sum[j] = s2[j]
