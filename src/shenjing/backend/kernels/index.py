"""Compiled kernels for gathers and their scatters. The NumPy twin is ``ops._scatter_add_rows``.

:func:`scatter_add_rows` sums the rows of a gradient into the rows of a table that repeated ids
read (an embedding lookup's backward, and that of a projection gathered from a table). NumPy has
no one-pass way: its twin sorts the ids, gathers the rows in that order and sums each run of equal
ids, passes over memory that the kernel replaces with one in-order pass; for wide rows NumPy's
``add.reduceat`` along the first axis is also slow (it walks each column down the rows: 29 ms for
4,096 rows of 1,024 against about 1 ms here). The kernel sums each id's rows one after another in
their original order; ``add.reduceat`` groups the additions its own way, so the paths agree to
rounding, not bit for bit.
"""

from __future__ import annotations

import numba as nb

from . import JIT_OPTIONS as _JIT


@nb.njit(**_JIT)
def scatter_add_rows(idx, g, out):
    """``out[idx[k]] += g[k]`` for k = 0, 1, … in order; ``idx`` (n,) integers in [0, rows),
    ``g`` (n, width), ``out`` (rows, width). Returns False (and stops) at an id out of range."""
    rows = out.shape[0]
    width = g.shape[1]
    for k in range(idx.shape[0]):
        i = idx[k]
        if i < 0 or i >= rows:
            return False
        target = out[i]
        source = g[k]
        for j in range(width):
            target[j] += source[j]
    return True
