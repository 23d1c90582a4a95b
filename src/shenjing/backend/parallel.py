"""Thread-parallel blocks, for the work NumPy runs on one core.

Only NumPy's BLAS calls use several cores; its copies and elementwise loops use one. Where an
op's work splits into independent blocks of samples (the cache-blocked convolution), :func:`run`
hands contiguous runs of blocks to a pool of threads — NumPy releases the GIL inside its loops —
and BLAS is single-threaded meanwhile (``openblas_set_num_threads_local`` — in a pthreads OpenBLAS
a process-wide setting, so it is set around the parallel region and restored after it — or MKL's
``mkl_set_num_threads_local``), so that the copies and elementwise work use every core that the
matmuls use, without oversubscribing them.

Opt-in: ``SHENJING_NUM_THREADS=N`` gives the pool N threads. Without it — and where the BLAS offers
no thread-count control, or on a GPU — the blocks run one after another on the calling thread.
It is off by default because on the 2-core benchmark machine it did not pay: mnist_cnn training
took 150 ms a step with 2 threads against 125 ms with one thread and 2-thread BLAS (OpenBLAS's
idle pool threads spin for a while after each call and take the second core from the worker).
"""

from __future__ import annotations

import ctypes
import os
import threading

_lock = threading.Lock()
_state = {"probed": False, "set_local": None, "get": None, "pool": None, "threads": None}

_SET_LOCAL = ("openblas_set_num_threads_local", "mkl_set_num_threads_local")
_GET = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
        "MKL_Get_Max_Threads")


def _probe() -> None:
    """Find the loaded BLAS library's per-thread and global thread-count functions."""
    _state["probed"] = True
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() or "mkl" in line.lower()}
    except OSError:  # not Linux
        return
    for path in sorted(paths):
        if not os.path.isfile(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        set_local = next((getattr(lib, name) for name in _SET_LOCAL if hasattr(lib, name)), None)
        get = next((getattr(lib, name) for name in _GET if hasattr(lib, name)), None)
        if set_local is not None and get is not None:
            set_local.restype = get.restype = ctypes.c_int
            set_local.argtypes = [ctypes.c_int]
            _state["set_local"], _state["get"] = set_local, get
            return


def threads() -> int:
    """How many threads :func:`run` spreads blocks over (1: it runs them on the calling thread)."""
    override = os.environ.get("SHENJING_NUM_THREADS")
    if not override:
        return 1
    from . import xp

    if xp.__name__ != "numpy" or not _available():
        return 1
    return max(1, int(override))


def _available() -> bool:
    if not _state["probed"]:
        with _lock:
            if not _state["probed"]:
                _probe()
    return _state["set_local"] is not None


def _pool(n: int):
    pool = _state["pool"]
    if pool is None or _state["threads"] != n:
        from concurrent.futures import ThreadPoolExecutor

        with _lock:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=False)
            pool = ThreadPoolExecutor(n, thread_name_prefix="shenjing", initializer=_state["set_local"], initargs=(1,))
            _state["pool"], _state["threads"] = pool, n
    return pool


def run(work, blocks: list) -> list:
    """``work(part)`` for contiguous parts of ``blocks``, one part per thread, in parallel when more
    than one thread and more than one block; returns the results in order (one per part).

    ``work`` must only write to places no other part writes to (its own buffers and output rows).
    """
    n = min(threads(), len(blocks))
    if n <= 1:
        return [work(blocks)]
    size, extra = divmod(len(blocks), n)
    parts, start = [], 0
    for i in range(n):
        stop = start + size + (1 if i < extra else 0)
        parts.append(blocks[start:stop])
        start = stop
    previous = _state["set_local"](1)
    try:
        futures = [_pool(n - 1).submit(work, part) for part in parts[1:]]
        first = work(parts[0])  # the calling thread does a share too
        return [first] + [f.result() for f in futures]
    finally:
        _state["set_local"](previous)
