"""Compiled optimizer updates: a rule's dozen array passes fused into one pass over the variable.
The NumPy twins (the reference) are the rules in ``shenjing.optimizers.rules``; the scalars come in
the arrays' dtype, so that float32 arithmetic stays float32 operation by operation, as NumPy's."""

from __future__ import annotations

import numba as nb
import numpy as np

from . import JIT_OPTIONS as _JIT


@nb.njit(**_JIT)
def adam(w, g, m, v, keep_1, keep_2, alpha, eps):
    """In place over flat views: m += keep_1·(g − m); v += keep_2·(g² − v); w −= alpha·m / (√v + eps)
    (keep_i = 1 − β_i; the same operations, in the same order, as the NumPy rule)."""
    w1, g1, m1, v1 = w.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1)
    for k in range(w1.size):
        gk = g1[k]
        mk = m1[k] + (gk - m1[k]) * keep_1
        vk = v1[k] + (gk * gk - v1[k]) * keep_2
        m1[k] = mk
        v1[k] = vk
        w1[k] -= (mk * alpha) / (np.sqrt(vk) + eps)
