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
        mk = mk if abs(mk) >= floor else zero
        vk = vk if vk >= floor else zero
        m1[k] = mk
        v1[k] = vk
        w1[k] -= (mk * alpha) / (np.sqrt(vk) + eps)
