"""Compiled waits for the thread pool (:mod:`shenjing.backend.parallel`): polling a counter without
the GIL, yielding the core between polls, and a pool thread's report of a finished task."""

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
def next_task(finished, done, counter, value, polls, settle, caller_waits):
    """A pool thread's wait for its next task: ``finished[0] = done`` (when ``done`` > 0), then up to
    ``polls`` polls of ``counter`` for ``value``, and once it has come ``settle`` more yields. Returns 1
    when the task came, 0 when the polls ran out, and −1 as soon as ``caller_waits[0]`` shows that the
    caller blocked on the reported task (it must be signalled: that is done in Python).

    Both ends of a hand-over avoid a wait for the GIL, which costs a thread that sleeps on it a futex
    wake-up (20-30 µs on this project's VM): the finished task is reported without the GIL, so a
    caller polling for it goes on at once; and a task that has come is taken up a few microseconds
    later, once the caller that posted it has entered its own part's compiled code and let the GIL go.
    The flag is read again after every yield (a system call), so a flag raised just as the report was
    stored is seen."""
    if done > 0:
        finished[0] = done
    for _ in range(polls):
        if counter[0] >= value:
            for _ in range(settle):
                _sched_yield()
            return 1
        if done > 0 and caller_waits[0] != 0:
            return -1
        _sched_yield()
    if counter[0] >= value:
        return 1
    return -1 if done > 0 and caller_waits[0] != 0 else 0
