"""Thread-parallel blocks, for the work NumPy runs on one core.

Only NumPy's BLAS calls use several cores; its copies and elementwise loops use one. Where an
op's work splits into independent blocks of samples (the cache-blocked convolution, pooling),
:func:`run` hands contiguous runs of blocks to a pool of threads — NumPy and the compiled kernels
release the GIL inside their loops — and BLAS is single-threaded meanwhile
(``openblas_set_num_threads_local`` — in a pthreads OpenBLAS a process-wide setting, so it is set
around the parallel region and restored after it — or MKL's ``mkl_set_num_threads_local``), so that
the copies and elementwise work use every core that the matmuls use, without oversubscribing them.

How many threads (:func:`threads`):

- ``SHENJING_NUM_THREADS=N`` gives the pool N threads (1 turns it off);
- otherwise, with NumPy's OpenBLAS, as many as BLAS uses (``OPENBLAS_NUM_THREADS``, threadpoolctl
  …), once :func:`_quiet_blas` has shortened how long OpenBLAS's idle workers spin. By default they
  busy-wait 2²⁸ cycles (≈ 0.1 s) after every call; during a parallel region that followed a BLAS
  call they took the second core from the pool's worker, and mnist_cnn training took 124 ms a step
  with 2 threads against 97 ms with one. With the spin cut to 2²² cycles (≈ 1.5 ms; long enough
  that back-to-back small matmuls still find the workers awake, measured: the MLP and LSTM steps
  are unchanged) the same step takes 78 ms, and mnist_cnn inference at batch 1000 goes from 242 to
  172 ms;
- 1 — the blocks run one after another on the calling thread — on a GPU, where the BLAS offers no
  thread-count control, and where the spin could not be shortened (another BLAS, the user's own
  ``OPENBLAS_THREAD_TIMEOUT`` above 22, or ``SHENJING_TUNE_BLAS=0``).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import threading

_backend = importlib.import_module(__package__)  # read per call: set_backend rebinds its ``xp``
_lock = threading.Lock()
_state = {"probed": False, "set_local": None, "get": None, "quiet": False, "pool": None, "threads": None}

_SET_LOCAL = ("openblas_set_num_threads_local", "mkl_set_num_threads_local")
_GET = ("openblas_get_num_threads", "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
        "MKL_Get_Max_Threads")

SPIN_LOG2 = 22
"""OpenBLAS's idle workers spin for 2**SPIN_LOG2 CPU cycles after a call before they sleep (its
``OPENBLAS_THREAD_TIMEOUT``; the library's default is 28)."""


def _probe() -> None:
    """Find the loaded BLAS library's per-thread and global thread-count functions (NumPy's own
    library first, where a process has several), and quiet its idle workers."""
    _state["probed"] = True
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() or "mkl" in line.lower()}
    except OSError:  # not Linux
        return
    for path in sorted(paths, key=lambda p: ("numpy" not in p, p)):
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
            _state["quiet"] = _quiet_blas(lib)
            return


def _quiet_blas(lib) -> bool:
    """Shorten the spin of an OpenBLAS's idle workers to 2**SPIN_LOG2 cycles; returns whether it is
    that short (or shorter: the user's own ``OPENBLAS_THREAD_TIMEOUT``).

    OpenBLAS reads the timeout from the environment when it starts its workers, so it is set in the
    environment for the moment of ``openblas_read_env()`` and the running workers are stopped
    (``blas_thread_shutdown_``, what OpenBLAS itself does before a ``fork``); the next BLAS call
    starts them again with the new timeout. Nothing is left in ``os.environ``. This happens once, at
    the first convolution or pooling op; a BLAS call running at that very moment in another thread of
    the program would race with the restart (``SHENJING_TUNE_BLAS=0`` leaves OpenBLAS alone).
    """
    names = ("openblas_read_env", "openblas_thread_timeout", "blas_thread_shutdown_")
    if not all(hasattr(lib, name) for name in names):
        return False  # MKL, or an OpenBLAS without these entry points
    lib.openblas_thread_timeout.restype = ctypes.c_int
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ or os.environ.get("SHENJING_TUNE_BLAS", "1") == "0":
        return 0 < lib.openblas_thread_timeout() <= SPIN_LOG2
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(SPIN_LOG2)
    try:
        lib.openblas_read_env()
    finally:
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]
    lib.blas_thread_shutdown_()
    return lib.openblas_thread_timeout() == SPIN_LOG2


def threads() -> int:
    """How many threads :func:`run` spreads blocks over (1: it runs them on the calling thread)."""
    from . import xp

    if xp.__name__ != "numpy" or not _available():
        return 1
    override = os.environ.get("SHENJING_NUM_THREADS")
    if override:
        return max(1, int(override))
    return max(1, _state["get"]()) if _state["quiet"] else 1


def _available() -> bool:
    if not _state["probed"]:
        with _lock:
            if not _state["probed"]:
                _probe()
    return _state["set_local"] is not None


MIN_SPLIT_BYTES = 1 << 20
"""Work whose working set is smaller than this is not split over threads: handing a part to a
thread and waiting for it costs tens of microseconds, as much as such a job takes."""


def sample_blocks(n: int, bytes_per_sample: int) -> tuple[int, list]:
    """``(step, parts)``: ``n`` samples in blocks ``(start, stop)`` of at most ``step`` samples,
    each block's working set within the cache (``B.block_rows``), grouped into one contiguous run
    of blocks per thread for :func:`run`. Only a job worth splitting (:data:`MIN_SPLIT_BYTES`) gets
    more than one part; then the blocks are as many as a multiple of the parts, of near-equal size,
    so that every thread gets the same share of the work."""
    step = _backend.block_rows(bytes_per_sample, n)
    small = n * bytes_per_sample < MIN_SPLIT_BYTES
    if small and step == n:  # one block on the calling thread (a single sample, most often)
        return step, [[(0, n)]]
    parts = 1 if small else min(threads(), n)
    if parts > 1:
        count = -(-n // step)
        count = min(n, -(-count // parts) * parts)
        step = -(-n // count)
    return step, split([(start, min(start + step, n)) for start in range(0, n, step)], parts)


def split(blocks: list, parts: int) -> list:
    """``blocks`` in ``parts`` contiguous runs whose lengths differ by at most one (fewer, if there
    are fewer blocks)."""
    parts = max(1, min(parts, len(blocks)))
    size, extra = divmod(len(blocks), parts)
    runs, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        runs.append(blocks[start:stop])
        start = stop
    return runs


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


def run(work, parts: list) -> list:
    """``work(part)`` for each of ``parts`` (from :func:`sample_blocks` or :func:`split`), one part
    per thread — the calling thread takes the first — with BLAS single-threaded meanwhile; returns
    the results in order. One part runs on the calling thread alone.

    ``work`` must only write to places no other part writes to (its own buffers and output rows).
    """
    if len(parts) <= 1 or not _available():
        return [work(part) for part in parts]
    previous = _state["set_local"](1)
    try:
        futures = [_pool(len(parts) - 1).submit(work, part) for part in parts[1:]]
        first = work(parts[0])
        return [first] + [f.result() for f in futures]
    finally:
        _state["set_local"](previous)


SMALL_MATMUL_MACS = 1 << 23
"""A matrix product of fewer multiply-adds than this runs on one BLAS thread (above OpenBLAS's own
one-thread bound, 2**18). The second thread saves it a few tens of microseconds, but OpenBLAS's worker
then spins on the second core for up to 2**SPIN_LOG2 cycles, and the thread-parallel region that
follows (a convolution's or pooling's blocks, :func:`run`) shares that core with it: measured on the
seed CNN (Dense 256→128 at batch 100 between its convolutions), a step took 8.0 ms against 6.8 ms."""


def matmul(a, b, out=None):
    """``a @ b`` (into ``out`` when given) for 2-D ``a`` (m, k) and ``b`` (k, n); on one BLAS thread when
    the product of two matrices is small (:data:`SMALL_MATMUL_MACS`) and the pool runs parallel regions
    (its quieted OpenBLAS is set up at the first convolution or pooling op)."""
    xp = _backend.xp
    m, n = a.shape[0], b.shape[1]
    macs = m * a.shape[1] * n
    # a matrix-vector product (m or n is 1) is bound by reading the matrix: two threads read it faster
    if macs < 1 << 18 or macs >= SMALL_MATMUL_MACS or m == 1 or n == 1 or not _state["quiet"] or threads() < 2:
        return xp.matmul(a, b, out=out)
    previous = _state["set_local"](1)
    try:
        return xp.matmul(a, b, out=out)
    finally:
        _state["set_local"](previous)
