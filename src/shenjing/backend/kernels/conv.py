"""Compiled kernels for convolution and pooling on channels-last arrays (N, H, W, C).

Each loop nest keeps the channel axis innermost (contiguous, so it vectorises) and writes every
output element from one place; a kernel that scatters (col2im) is written as a gather over the rows
it writes, so that it could run rows in parallel without races. The NumPy twins are in
``shenjing.autodiff.conv``: ``tests/autodiff/test_conv.py`` runs on both paths, and
``tests/test_jit.py`` checks ties, NaN and overlapping windows.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from . import JIT_OPTIONS as _JIT


@nb.njit(**_JIT)
def im2col(xpad, first, last, kh, kw, sh, sw, dh, dw, ho, wo, cols):
    """cols[(s·Ho + i)·Wo + j, (a·kw + b)·C + c] = xpad[first + s, i·sh + a·dh, j·sw + b·dw, c] for the
    samples first:last; ``cols`` has at least (last − first)·Ho·Wo rows of kh·kw·C."""
    c = xpad.shape[3]
    for row in range((last - first) * ho):
        s = row // ho
        i = row - s * ho
        image = xpad[first + s]
        for j in range(wo):
            out = cols[row * wo + j]
            for a in range(kh):
                line = image[i * sh + a * dh]
                for b in range(kw):
                    src = line[j * sw + b * dw]
                    base = (a * kw + b) * c
                    for ch in range(c):
                        out[base + ch] = src[ch]


@nb.njit(**_JIT)
def col2im_add(cols, first, last, kh, kw, sh, sw, dh, dw, ho, wo, dpad):
    """The adjoint of :func:`im2col`: every column entry added onto the input pixel it was copied
    from, dpad[first + s, i·sh + a·dh, j·sw + b·dw, c] += cols[(s·Ho + i)·Wo + j, (a·kw + b)·C + c].

    A loop over the rows of ``dpad``, each gathering the taps that read it (overlapping windows
    accumulate).
    """
    hp, c = dpad.shape[1], dpad.shape[3]
    for item in range((last - first) * hp):
        s = item // hp
        y = item - s * hp
        target = dpad[first + s, y]
        for a in range(kh):
            top = y - a * dh
            if top < 0 or top % sh != 0 or top // sh >= ho:
                continue
            i = top // sh
            for j in range(wo):
                src = cols[(s * ho + i) * wo + j]
                for b in range(kw):
                    dst = target[j * sw + b * dw]
                    base = (a * kw + b) * c
                    for ch in range(c):
                        dst[ch] += src[base + ch]


@nb.njit(**_JIT)
def col2im_channel_major(cols, first, last, kh, kw, sh, sw, dh, dw, ho, wo, dpad):
    """The adjoint of the narrow convolutions' channel-major columns, for samples first:last: ``dpad``
    (C, N, Hp, Wp) gets, for each of them, zeros plus every column entry on the pixel it was copied from,
    dpad[c, first + s, i·sh + a·dh, j·sw + b·dw] += cols[(a·kw + b)·C + c, (s·Ho + i)·Wo + j].

    One sample's (Hp, Wp) plane of a channel at a time, small enough to stay in cache while its kh·kw
    taps add onto it (NumPy's per-tap strided adds ran over the whole block once per tap)."""
    c, _, hp, wp = dpad.shape
    for ch in range(c):
        for s in range(first, last):
            plane = dpad[ch, s]
            plane[:, :] = 0
            base = (s - first) * ho * wo
            for a in range(kh):
                for b in range(kw):
                    src = cols[(a * kw + b) * c + ch]
                    for i in range(ho):
                        row = plane[i * sh + a * dh]
                        at = base + i * wo
                        for j in range(wo):
                            row[j * sw + b * dw] += src[at + j]


@nb.njit(**_JIT)
def max_pool(xpad, kh, kw, sh, sw, out):
    """out[n, i, j, c] = max over the window's taps of xpad[n, i·sh + a, j·sw + b, c]."""
    n, ho, wo, c = out.shape
    for row in range(n * ho):
        s = row // ho
        i = row - s * ho
        for j in range(wo):
            o = out[s, i, j]
            o[:] = xpad[s, i * sh, j * sw]
            for a in range(kh):
                line = xpad[s, i * sh + a]
                for b in range(kw):
                    v = line[j * sw + b]
                    for ch in range(c):
                        if v[ch] > o[ch] or v[ch] != v[ch]:  # the larger, or a NaN (kept, as np.maximum)
                            o[ch] = v[ch]


@nb.njit(**_JIT)
def max_pool_grad(xpad, out, g, kh, kw, sh, sw, dx):
    """dx (shaped like xpad, overwritten): each window's g goes to its first tap equal to the
    window's maximum ``out`` (one winner per window, as argmax), summed over overlapping windows.

    Windows that tile the input exactly (stride = pool, no remainder) write every element once, with
    no zeroing pass first.
    """
    n, ho, wo, c = g.shape
    tiled = sh == kh and sw == kw and ho * sh == dx.shape[1] and wo * sw == dx.shape[2]
    zero = g.dtype.type(0)
    taken = np.empty(c, np.bool_)
    for s in range(n):
        if not tiled:
            dx[s] = 0
        for i in range(ho):
            for j in range(wo):
                m = out[s, i, j]
                gg = g[s, i, j]
                taken[:] = False
                for a in range(kh):
                    for b in range(kw):
                        v = xpad[s, i * sh + a, j * sw + b]
                        d = dx[s, i * sh + a, j * sw + b]
                        for ch in range(c):
                            hit = v[ch] == m[ch] and not taken[ch]
                            share = gg[ch] if hit else gg[ch] * zero
                            d[ch] = share if tiled else d[ch] + share
                            taken[ch] = taken[ch] or hit


@nb.njit(**_JIT)
def avg_pool(xpad, kh, kw, sh, sw, inv_count, out):
    """out[n, i, j, c] = inv_count[i, j] · Σ over the window's taps of xpad[n, i·sh + a, j·sw + b, c]."""
    n, ho, wo, c = out.shape
    for row in range(n * ho):
        s = row // ho
        i = row - s * ho
        for j in range(wo):
            o = out[s, i, j]
            o[:] = 0
            for a in range(kh):
                line = xpad[s, i * sh + a]
                for b in range(kw):
                    v = line[j * sw + b]
                    for ch in range(c):
                        o[ch] += v[ch]
            scale = inv_count[i, j]
            for ch in range(c):
                o[ch] *= scale


@nb.njit(**_JIT)
def avg_pool_grad(g, kh, kw, sh, sw, inv_count, dx):
    """dx (the padded input's shape, overwritten): each window's g · inv_count added to all its taps."""
    n, ho, wo, c = g.shape
    for s in range(n):
        dx[s] = 0
        for i in range(ho):
            for j in range(wo):
                gg = g[s, i, j]
                scale = inv_count[i, j]
                for a in range(kh):
                    for b in range(kw):
                        d = dx[s, i * sh + a, j * sw + b]
                        for ch in range(c):
                            d[ch] += gg[ch] * scale
