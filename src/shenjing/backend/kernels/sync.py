"""A compiled wait for the thread pool (:mod:`shenjing.backend.parallel`): polling a counter without
the GIL, yielding the core between polls."""

from __future__ import annotations

import ctypes

import numba as nb

_libc = ctypes.CDLL(None)
_sched_yield = _libc.sched_yield  # an opaque call: the counter is read again after it
_sched_yield.restype = ctypes.c_int
_sched_yield.argtypes = []


@nb.njit(nogil=True)  # not cached: numba cannot cache a function that calls a ctypes pointer
def poll(counter, value, polls):
    """Whether ``counter[0]`` reaches ``value`` within ``polls`` polls (``sched_yield`` between them:
    another thread that wants this core gets it)."""
    for _ in range(polls):
        if counter[0] >= value:
            return True
        _sched_yield()
    return counter[0] >= value
