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


@nb.njit(nogil=True)
def finish_and_poll(finished, done, counter, value, polls):
    """``finished[0] = done``, then :func:`poll` of ``counter`` for ``value``: a pool thread that has
    finished a part says so without holding the GIL, so that the caller polling for it goes on at
    once instead of waiting for the GIL (a hand-over that cost 30-50 µs a region)."""
    finished[0] = done
    return poll(counter, value, polls)
