"""Compiled optimizer updates: a rule's dozen array passes fused into one pass over the variable.
The NumPy twins (the reference) are the rules in ``shenjing.optimizers.rules``; the scalars come in
the arrays' dtype, so that float32 arithmetic stays float32 operation by operation, as NumPy's."""

from __future__ import annotations

import numba as nb
import numpy as np

from . import JIT_OPTIONS as _JIT


@nb.njit(**_JIT)
def adam(w, g, m, v, keep_1, keep_2, alpha, eps, floor):
    """In place over flat views: m += keep_1·(g − m); v += keep_2·(g² − v); w −= alpha·m / (√v + eps)
    (keep_i = 1 − β_i; the same operations, in the same order, as the NumPy rule).

    Moments below ``floor`` (:data:`shenjing.optimizers.rules.MOMENT_FLOOR`) are flushed to zero, as
    TensorFlow's flush-to-zero would: a weight whose gradient stays 0 (a dead unit, an always-blank pixel)
    has its m decay by β1 every step, and once it and its products reach the subnormal range every
    operation on them takes a slow microcode path (an MLP's steps ran 2–3× slower from step ~600 on).
    Above the floor the results are the NumPy rule's, bit for bit.
    """
    w1, g1, m1, v1 = w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    zero = floor - floor  # 0 in the arrays' dtype
    for k in range(w1.size):
        gk = g1[k]
        mk = m1[k] + (gk - m1[k]) * keep_1
        vk = v1[k] + (gk * gk - v1[k]) * keep_2
        mk = zero if abs(mk) < floor else mk  # (a NaN is kept)
        vk = zero if vk < floor else vk
        m1[k] = mk
        v1[k] = vk
        w1[k] -= (mk * alpha) / (np.sqrt(vk) + eps)


@nb.njit(**_JIT)
def _flushed(x, floor):
    """``x``, or 0 where its magnitude is below ``floor`` (a moment decaying into the subnormal range); a
    NaN stays NaN."""
    return floor - floor if abs(x) < floor else x


@nb.njit(**_JIT)
def sgd_momentum(w, g, m, mu, lr, nesterov, floor):
    """m = m·mu − g·lr (flushed below ``floor``); w += m, or with ``nesterov`` w += m·mu − g·lr."""
    w1, g1, m1 = w.reshape(-1), g.reshape(-1), m.reshape(-1)
    for k in range(w1.size):
        step = g1[k] * lr
        mk = _flushed(m1[k] * mu - step, floor)
        m1[k] = mk
        w1[k] += (mk * mu - step) if nesterov else mk


@nb.njit(**_JIT)
def rmsprop(w, g, v, mg, b, rho, keep, eps, lr, mu, centered, momentum, floor):
    """v = v·rho + (1 − rho)·g²; with ``centered`` mg = mg·rho + g·(1 − rho) and the denominator
    √(v − mg² + eps), else √(v + eps); inc = g·lr / denominator; with ``momentum`` b = b·mu + inc,
    w −= b, else w −= inc. The moving averages are flushed below ``floor`` (``mg`` and ``b`` are
    unused arrays of any size when their flag is off)."""
    w1, g1, v1 = w.reshape(-1), g.reshape(-1), v.reshape(-1)
    mg1, b1 = mg.reshape(-1), b.reshape(-1)
    for k in range(w1.size):
        gk = g1[k]
        vk = _flushed(v1[k] * rho + (gk * gk) * keep, floor)
        v1[k] = vk
        if centered:
            mk = _flushed(mg1[k] * rho + gk * keep, floor)
            mg1[k] = mk
            denom = (vk - mk * mk) + eps
        else:
            denom = vk + eps
        inc = (gk * lr) / np.sqrt(denom)
        if momentum:
            bk = _flushed(b1[k] * mu + inc, floor)
            b1[k] = bk
            w1[k] -= bk
        else:
            w1[k] -= inc


@nb.njit(**_JIT)
def adadelta(w, g, eg, ed, rho, keep, eps, lr, minus_one, floor):
    """Eg = Eg·rho + (g²)·(1 − rho); d = (√(Ed + eps)·g / √(Eg + eps))·(−1); Ed = Ed·rho + (d²)·(1 − rho);
    w += d·lr; both averages flushed below ``floor``. ``minus_one`` is −1 in the arrays' dtype (a product
    with it keeps a NaN's sign bit, as the NumPy rule's ``delta *= -1.0`` does)."""
    w1, g1, eg1, ed1 = w.reshape(-1), g.reshape(-1), eg.reshape(-1), ed.reshape(-1)
    for k in range(w1.size):
        gk = g1[k]
        egk = _flushed(eg1[k] * rho + (gk * gk) * keep, floor)
        eg1[k] = egk
        delta = ((np.sqrt(ed1[k] + eps) * gk) / np.sqrt(egk + eps)) * minus_one
        ed1[k] = _flushed(ed1[k] * rho + (delta * delta) * keep, floor)
        w1[k] += delta * lr


@nb.njit(**_JIT)
def adamax(w, g, m, u, keep_1, beta_2, eps, correction, lr, floor):
    """m += (g − m)·keep_1; u = max(u·β2, |g|) (NaN propagates, as np.maximum); w −= m·lr / ((u + eps)·correction);
    m and u flushed below ``floor``."""
    w1, g1, m1, u1 = w.reshape(-1), g.reshape(-1), m.reshape(-1), u.reshape(-1)
    for k in range(w1.size):
        gk = g1[k]
        mk = _flushed(m1[k] + (gk - m1[k]) * keep_1, floor)
        decayed = u1[k] * beta_2
        a = abs(gk)
        uk = _flushed(decayed if (decayed >= a or decayed != decayed) else a, floor)
        m1[k] = mk
        u1[k] = uk
        w1[k] -= (mk * lr) / ((uk + eps) * correction)


@nb.njit(**_JIT)
def nadam(w, g, m, v, keep_1, keep_2, c_m, c_g, c_v, eps, lr, floor):
    """Adam's moments (flushed below ``floor``), then m̂ = m·c_m + g·c_g and
    w −= (m̂·lr) / (√(v / c_v) + eps)."""
    w1, g1, m1, v1 = w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    for k in range(w1.size):
        gk = g1[k]
        mk = _flushed(m1[k] + (gk - m1[k]) * keep_1, floor)
        vk = _flushed(v1[k] + (gk * gk - v1[k]) * keep_2, floor)
        m1[k] = mk
        v1[k] = vk
        w1[k] -= ((mk * c_m + gk * c_g) * lr) / (np.sqrt(vk / c_v) + eps)
