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
def next_task(finished, done, counter, value, polls, settle):
    """A pool thread's wait for its next task: ``finished[0] = done`` (when ``done`` > 0), then
    :func:`poll` of ``counter`` for ``value``, and once it has come ``settle`` more yields; whether it
    came.

    Both ends of a hand-over avoid a wait for the GIL, which costs a thread that sleeps on it a futex
    wake-up (20-30 µs on this project's VM): the finished task is reported without the GIL, so the
    caller polling for it goes on at once; and a task that has come is taken up a few microseconds
    later, once the caller that posted it has entered its own part's compiled code and let the GIL go."""
    if done > 0:
        finished[0] = done
    ready = poll(counter, value, polls)
    if ready:
        for _ in range(settle):
            _sched_yield()
    return ready
