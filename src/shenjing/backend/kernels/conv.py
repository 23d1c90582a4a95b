"""Compiled kernels for convolution and pooling on channels-last arrays (N, H, W, C).

The column kernels (im2col, col2im) and the pooling kernels keep the channel axis innermost
(contiguous, so it vectorises) and write every output element from one place; a kernel that scatters
(col2im) is written as a gather over the rows it writes, so that it could run rows in parallel
without races. Their NumPy twins are in ``shenjing.autodiff.conv``. The direct convolution kernels
work channel-major instead (each image plane flat, a tap one long multiply-add); their twin is the
column path. ``tests/autodiff/test_conv.py`` runs on both paths and compares the direct kernels with
the columns, and ``tests/test_jit.py`` checks ties, NaN and overlapping windows.
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
    run = kw * c
    for row in range((last - first) * ho):
        s = row // ho
        i = row - s * ho
        image = xpad[first + s]
        if dw == 1:  # a kernel row's kw taps are kw·C contiguous values: one run per (a, j)
            for a in range(kh):
                flat = image[i * sh + a * dh].reshape(-1)
                for j in range(wo):
                    src_run = flat[j * sw * c:j * sw * c + run]
                    out_run = cols[row * wo + j, a * run:a * run + run]
                    for q in range(run):
                        out_run[q] = src_run[q]
            continue
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
    accumulate). Without dilation a kernel row's kw taps read kw·C contiguous values, added as one run
    (measured with the zeroing: 290 → 196 µs for 100 samples of 11×11×8 and a 3×3 kernel).
    """
    hp, c = dpad.shape[1], dpad.shape[3]
    run = kw * c
    for item in range((last - first) * hp):
        s = item // hp
        y = item - s * hp
        target = dpad[first + s, y]
        flat = target.reshape(-1)
        for a in range(kh):
            top = y - a * dh
            if top < 0 or top % sh != 0 or top // sh >= ho:
                continue
            i = top // sh
            for j in range(wo):
                src = cols[(s * ho + i) * wo + j]
                if dw == 1:
                    dst_run = flat[j * sw * c:j * sw * c + run]
                    src_run = src[a * run:a * run + run]
                    for q in range(run):
                        dst_run[q] += src_run[q]
                    continue
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


_JIT_FMA = dict(_JIT, fastmath={"contract"})
_JIT_SUMS = dict(_JIT, fastmath={"contract", "reassoc"})  # reassociated sums: the dot products vectorise


@nb.njit(**_JIT)
def _input_row(src, sample, src_rows, src_offsets, i, span):
    """Input row i of :func:`_shifted_matmul`: a window of ``span`` values of a flat image plane."""
    return src[src_rows[i], sample, src_offsets[i]:src_offsets[i] + span]


@nb.njit(**_JIT_FMA)
def _shifted_matmul(dst, at, src, sample, src_rows, src_offsets, weights, span):
    """dst[o, at, :span] = Σ_i weights[o, i] · src[src_rows[i], sample, src_offsets[i] : src_offsets[i] + span]
    for every output row o: a matmul whose input rows are shifted windows of flat image planes.

    Two output rows and four input rows per pass (measured faster than one or four output rows): the
    pass loads each of the six rows once for eight multiply-adds."""
    n_out, n_in = weights.shape
    for o in range(0, n_out - 1, 2):
        d = dst[o, at, :span]
        e = dst[o + 1, at, :span]
        d[:] = 0
        e[:] = 0
        i = 0
        while i + 4 <= n_in:
            s0 = _input_row(src, sample, src_rows, src_offsets, i, span)
            s1 = _input_row(src, sample, src_rows, src_offsets, i + 1, span)
            s2 = _input_row(src, sample, src_rows, src_offsets, i + 2, span)
            s3 = _input_row(src, sample, src_rows, src_offsets, i + 3, span)
            w0, w1, w2, w3 = weights[o, i], weights[o, i + 1], weights[o, i + 2], weights[o, i + 3]
            v0, v1, v2, v3 = weights[o + 1, i], weights[o + 1, i + 1], weights[o + 1, i + 2], weights[o + 1, i + 3]
            for p in range(span):
                x0, x1, x2, x3 = s0[p], s1[p], s2[p], s3[p]
                d[p] += w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3
                e[p] += v0 * x0 + v1 * x1 + v2 * x2 + v3 * x3
            i += 4
        while i < n_in:
            s0 = _input_row(src, sample, src_rows, src_offsets, i, span)
            w0, v0 = weights[o, i], weights[o + 1, i]
            for p in range(span):
                x0 = s0[p]
                d[p] += w0 * x0
                e[p] += v0 * x0
            i += 1
    if n_out % 2:  # the odd last row alone: the loop above for one row (a pair with itself would alias)
        o = n_out - 1
        d = dst[o, at, :span]
        d[:] = 0
        i = 0
        while i + 4 <= n_in:
            s0 = _input_row(src, sample, src_rows, src_offsets, i, span)
            s1 = _input_row(src, sample, src_rows, src_offsets, i + 1, span)
            s2 = _input_row(src, sample, src_rows, src_offsets, i + 2, span)
            s3 = _input_row(src, sample, src_rows, src_offsets, i + 3, span)
            w0, w1, w2, w3 = weights[o, i], weights[o, i + 1], weights[o, i + 2], weights[o, i + 3]
            for p in range(span):
                d[p] += w0 * s0[p] + w1 * s1[p] + w2 * s2[p] + w3 * s3[p]
            i += 4
        while i < n_in:
            s0 = _input_row(src, sample, src_rows, src_offsets, i, span)
            w0 = weights[o, i]
            for p in range(span):
                d[p] += w0 * s0[p]
            i += 1


@nb.njit(**_JIT_SUMS)
def _dots_of_row(x, g, g_offset, span, out_row, zero):
    """out_row[k] += Σ_p x[p] · g[k, 0, g_offset + p] (p < span), four k per pass over x."""
    n_k = out_row.shape[0]
    k = 0
    while k + 4 <= n_k:
        g0 = g[k, 0, g_offset:g_offset + span]
        g1 = g[k + 1, 0, g_offset:g_offset + span]
        g2 = g[k + 2, 0, g_offset:g_offset + span]
        g3 = g[k + 3, 0, g_offset:g_offset + span]
        t0 = t1 = t2 = t3 = zero
        for p in range(span):
            v = x[p]
            t0 += v * g0[p]
            t1 += v * g1[p]
            t2 += v * g2[p]
            t3 += v * g3[p]
        out_row[k] += t0
        out_row[k + 1] += t1
        out_row[k + 2] += t2
        out_row[k + 3] += t3
        k += 4
    while k < n_k:
        g0 = g[k, 0, g_offset:g_offset + span]
        t0 = zero
        for p in range(span):
            t0 += x[p] * g0[p]
        out_row[k] += t0
        k += 1


@nb.njit(**_JIT_SUMS)
def _shifted_dots(src, sample, src_rows, src_offsets, g, g_offset, span, out):
    """out[i, k] += Σ_p src[src_rows[i], sample, src_offsets[i] + p] · g[k, 0, g_offset + p] (p < span):
    two input rows and four k per pass (eight sums from six loads; measured 25-30% faster than one
    input row)."""
    n_in, n_k = out.shape
    zero = np.zeros(1, out.dtype)[0]
    for i in range(0, n_in - 1, 2):
        x = src[src_rows[i], sample, src_offsets[i]:src_offsets[i] + span]
        y = src[src_rows[i + 1], sample, src_offsets[i + 1]:src_offsets[i + 1] + span]
        k = 0
        while k + 4 <= n_k:
            g0 = g[k, 0, g_offset:g_offset + span]
            g1 = g[k + 1, 0, g_offset:g_offset + span]
            g2 = g[k + 2, 0, g_offset:g_offset + span]
            g3 = g[k + 3, 0, g_offset:g_offset + span]
            t0 = t1 = t2 = t3 = u0 = u1 = u2 = u3 = zero
            for p in range(span):
                v, q = x[p], y[p]
                a0, a1, a2, a3 = g0[p], g1[p], g2[p], g3[p]
                t0 += v * a0
                t1 += v * a1
                t2 += v * a2
                t3 += v * a3
                u0 += q * a0
                u1 += q * a1
                u2 += q * a2
                u3 += q * a3
            out[i, k] += t0
            out[i, k + 1] += t1
            out[i, k + 2] += t2
            out[i, k + 3] += t3
            out[i + 1, k] += u0
            out[i + 1, k + 1] += u1
            out[i + 1, k + 2] += u2
            out[i + 1, k + 3] += u3
            k += 4
        if k < n_k:
            _dots_of_row(x, g[k:], g_offset, span, out[i, k:], zero)
            _dots_of_row(y, g[k:], g_offset, span, out[i + 1, k:], zero)
    if n_in % 2:
        i = n_in - 1
        _dots_of_row(src[src_rows[i], sample, src_offsets[i]:src_offsets[i] + span], g, g_offset, span, out[i], zero)


@nb.njit(**_JIT)
def _tap_offsets(c, kh, kw, dh, dw, wp):
    """For the kernel rows t = (a·kw + b)·C + ch: the channel ch and the flat offset a·dh·Wp + b·dw of
    the tap in an image plane of width Wp."""
    rows = np.empty(kh * kw * c, np.int64)
    offsets = np.empty(kh * kw * c, np.int64)
    for a in range(kh):
        for b in range(kw):
            for ch in range(c):
                t = (a * kw + b) * c + ch
                rows[t] = ch
                offsets[t] = a * dh * wp + b * dw
    return rows, offsets


@nb.njit(**_JIT)
def direct_conv(xpad, x_cm, weights_t, bias, activation, first, last, kh, kw, dh, dw, out):
    """Stride-1 convolution without a column matrix, for the samples first:last: out[s, i, j, k] =
    bias[k] + Σ_(a, b, ch) weights_t[k, (a·kw + b)·C + ch] · xpad[s, i + a·dh, j + b·dw, ch] (no bias when
    ``bias`` is empty), then the relu when ``activation`` is its code (1; other activations are the
    caller's).

    The samples' padded input is first copied channel-major into ``x_cm`` (C, N, Hp·Wp), each plane
    flat (kept for the backward). A sample's output plane k is then computed "wide", at the Ho·Wp
    positions i·Wp + j of the input plane (the columns j ≥ Wo are thrown away): every tap is one long
    contiguous multiply-add of a shifted plane."""
    _, hp, wp, c = xpad.shape
    _, ho, wo, f = out.shape
    for s in range(first, last):
        for ch in range(c):
            plane = x_cm[ch, s]
            for y in range(hp):
                line = xpad[s, y]
                for x in range(wp):
                    plane[y * wp + x] = line[x, ch]
    span = (ho - 1) * wp + wo
    rows, offsets = _tap_offsets(c, kh, kw, dh, dw, wp)
    wide = np.empty((f, 1, span), out.dtype)
    zero = out.dtype.type(0)
    for s in range(first, last):
        _shifted_matmul(wide, 0, x_cm, s, rows, offsets, weights_t, span)
        o = out[s]
        for k in range(f):
            add = bias[k] if bias.shape[0] else zero
            for i in range(ho):
                row = wide[k, 0, i * wp:i * wp + wo]
                for j in range(wo):
                    v = row[j] + add
                    if activation == 1:
                        v = v if v > zero or v != v else zero  # as np.maximum(v, 0): NaN kept, −0 → +0
                    o[i, j, k] = v


@nb.njit(**_JIT)
def direct_conv_backward(x_cm, g, out, activation, first, last, weights_in, kh, kw, dh, dw, wp, exact, dk, db,
                         dx_cm):
    """The gradients of :func:`direct_conv` for the samples first:last, from ``g`` (N, Ho, Wo, F) and,
    with an ``activation`` code (1: relu, 2: tanh; 0: none), the activation's output ``out``.

    ``dk`` (kh·kw·C, F) and ``db`` (F,) get this block's kernel and bias gradients added (when they have
    rows); ``dx_cm`` (C, N, Hp·Wp) gets the block's samples' input gradient planes written (when it has
    planes), from ``weights_in`` (C, kh·kw·F), the kernel ordered (ch, a, b, k). Planes are Wp wide.

    All come from the pre-activation gradient laid out wide and zero-padded (``spread``: the plane k
    at the positions top + i·Wp + j, zeros elsewhere, top = the largest tap offset), made in one pass
    that also sums the bias gradient: the kernel gradient is the dot product of each shifted input
    plane with it, and the input gradient plane is a direct convolution of it with the flipped kernel:
    dx[ch, q] = Σ_(a, b, k) w[a, b, ch, k] · spread[k, top + q − offset(a, b)]. The zero columns j ≥ Wo
    of the wide layout are also the left padding (Wp − Wo = (kw − 1)·dw).

    The kernel gradient's dot products run over whole rows, so input values at the columns j ≥ Wo
    meet those zeros: an inf or NaN there gives NaN where NumPy's sum has none. With ``exact`` they run
    over the columns j < Wo only (slower: the caller uses it when the fast sums are not finite), and
    the input gradient's taps are exact only for a finite kernel (the caller's condition)."""
    _, ho, wo, f = g.shape
    c = x_cm.shape[0]
    plane = x_cm.shape[2]
    span = (ho - 1) * wp + wo
    top = (kh - 1) * dh * wp + (kw - 1) * dw
    rows, offsets = _tap_offsets(c, kh, kw, dh, dw, wp)
    g_rows, g_offsets = _tap_offsets(f, kh, kw, dh, dw, wp)  # the same taps, over the spread planes
    g_offsets = top - g_offsets
    spread = np.zeros((f, 1, top + plane), g.dtype)
    one = g.dtype.type(1)
    zero = g.dtype.type(0)
    for s in range(first, last):
        for k in range(f):
            total = zero
            for i in range(ho):
                row = spread[k, 0, top + i * wp:top + i * wp + wo]
                gs, outs = g[s, i], out[s, i]
                for j in range(wo):
                    v = gs[j, k]
                    if activation == 1:  # as the fused relu's gradient: g·0 keeps NumPy's NaN and −0
                        v = v if outs[j, k] > 0 else v * zero
                    elif activation == 2:
                        v = v * (one - outs[j, k] * outs[j, k])
                    row[j] = v
                    total += v
            if db.shape[0]:
                db[k] += total
        if dk.shape[0] and not exact:
            _shifted_dots(x_cm, s, rows, offsets, spread, top, span, dk)
        elif dk.shape[0]:
            for i in range(ho):
                _shifted_dots(x_cm, s, rows, offsets + i * wp, spread, top + i * wp, wo, dk)
        if dx_cm.shape[0]:
            _shifted_matmul(dx_cm, s, spread, 0, g_rows, g_offsets, weights_in, plane)


@nb.njit(**_JIT)
def max_pool(xpad, kh, kw, sh, sw, out):
    """out[n, i, j, c] = max over the window's taps of xpad[n, i·sh + a, j·sw + b, c]."""
    n, ho, wo, c = out.shape
    for row in range(n * ho):
        s = row // ho
        i = row - s * ho
        for j in range(wo):
            o = out[s, i, j]
            first = xpad[s, i * sh, j * sw]
            for ch in range(c):
                o[ch] = first[ch]
            for a in range(kh):
                line = xpad[s, i * sh + a]
                for b in range(kw):
                    v = line[j * sw + b]
                    for ch in range(c):  # a select, not a branch: the loop vectorises
                        x = v[ch]
                        o[ch] = x if x > o[ch] or x != x else o[ch]  # the larger, or a NaN (kept, as np.maximum)


@nb.njit(**_JIT)
def max_pool_grad(xpad, out, g, kh, kw, sh, sw, dx):
    """dx (shaped like xpad, overwritten): each window's g goes to its first tap equal to the
    window's maximum ``out`` (one winner per window, as argmax), summed over overlapping windows.

    Each window's winning tap is found first, from the last tap to the first (an equal tap overwrites,
    so the first one stays) with selects that vectorise over the channels; then every tap is written.
    Windows that tile the input exactly (stride = pool, no remainder) write every element once, with
    no zeroing pass first.
    """
    n, ho, wo, c = g.shape
    taps = kh * kw
    tiled = sh == kh and sw == kw and ho * sh == dx.shape[1] and wo * sw == dx.shape[2]
    zero = g.dtype.type(0)
    winner = np.empty(c, np.int32)
    for s in range(n):
        if not tiled:
            dx[s] = 0
        for i in range(ho):
            for j in range(wo):
                m = out[s, i, j]
                gg = g[s, i, j]
                winner[:] = taps  # none (a NaN maximum equals no tap)
                for t in range(taps - 1, -1, -1):
                    a, b = t // kw, t % kw
                    v = xpad[s, i * sh + a, j * sw + b]
                    for ch in range(c):
                        winner[ch] = t if v[ch] == m[ch] else winner[ch]
                for t in range(taps):
                    a, b = t // kw, t % kw
                    d = dx[s, i * sh + a, j * sw + b]
                    if tiled:
                        for ch in range(c):
                            d[ch] = gg[ch] if winner[ch] == t else gg[ch] * zero  # g·0 keeps NumPy's NaN
                    else:
                        for ch in range(c):
                            d[ch] += gg[ch] if winner[ch] == t else gg[ch] * zero


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
