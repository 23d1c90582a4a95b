"""Thread-parallel blocks, for the work NumPy runs on one core.

Only NumPy's BLAS calls use several cores; its copies and elementwise loops use one. Where an
op's work splits into independent blocks of samples (the cache-blocked convolution, pooling),
:func:`run` hands contiguous runs of blocks to a pool of threads — NumPy and the compiled kernels
release the GIL inside their loops — and BLAS is single-threaded meanwhile
(``openblas_set_num_threads_local`` — in a pthreads OpenBLAS a process-wide setting, so it is set
around the parallel region and restored after it — or MKL's ``mkl_set_num_threads_local``), so that
the copies and elementwise work use every core that the matmuls use, without oversubscribing them.
The pool's threads and the caller hand tasks over by polling (:data:`SPIN_POLLS`) before they block.

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
_state = {"probed": False, "set_local": None, "get": None, "quiet": False, "pool": None, "sync": None, "owner": None}
_gate = threading.Lock()  # guards the claim on the pool: ``_state["owner"]``, the thread running a region

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
    the first parallel region or :func:`threads` call (a convolution, pooling, a recurrent layer); a
    BLAS call running at that very moment in another thread of the program would race with the restart
    (``SHENJING_TUNE_BLAS=0`` leaves OpenBLAS alone).
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


CALLER_EXTRA = 0.06
"""When every thread gets one block, the calling thread's has this share of the samples more than an
even split: it starts its part at once, while a pool thread starts it a little later (the hand-over).
The seed CNN, whose eight regions a step are one block a thread: 5.3-5.5 → 5.0-5.2 ms."""

MIN_SPLIT_BYTES = 1 << 20
"""Work whose working set is smaller than this is not split over threads: handing a part to a
thread and waiting for it costs tens of microseconds, as much as such a job takes."""


def sample_blocks(n: int, bytes_per_sample: int) -> tuple[int, list]:
    """``(step, parts)``: ``n`` samples in blocks ``(start, stop)`` of at most ``step`` samples,
    each block's working set within the cache (``B.block_rows``), grouped into one contiguous run
    of blocks per thread for :func:`run`. Only a job worth splitting (:data:`MIN_SPLIT_BYTES`) gets
    more than one part; then the blocks are as many as a multiple of the parts, of near-equal size,
    so that every thread gets the same share of the work (the caller a little more when each thread
    has one block: :data:`CALLER_EXTRA`)."""
    step = _backend.block_rows(bytes_per_sample, n)
    small = n * bytes_per_sample < MIN_SPLIT_BYTES
    if small and step == n:  # one block on the calling thread (a single sample, most often)
        return step, [[(0, n)]]
    parts = 1 if small else min(threads(), n)
    count = -(-n // step)
    if parts > 1:
        count = min(n, -(-count // parts) * parts)
        step = -(-n // count)
        if count == parts:  # one block a thread: the caller's grows by CALLER_EXTRA, the others share the rest
            first = min(n - (parts - 1), -(-n // parts) + round(n * CALLER_EXTRA))
            return max(first, step), [[(0, first)]] + [[block] for block in _even_blocks(first, n, parts - 1)]
    # not blocks of ``step``: those leave the last one short, and may be fewer than count (128 samples in
    # steps of 10 are 13 blocks, not 14)
    return step, split(_even_blocks(0, n, count), parts)


def _even_blocks(start: int, stop: int, count: int) -> list:
    """Samples start:stop in ``count`` contiguous blocks ``(start, stop)`` whose sizes differ by one at most,
    the larger ones spread among the smaller (so that runs of them, one per thread, stay even too)."""
    size = stop - start
    return [(start + size * i // count, start + size * (i + 1) // count) for i in range(count)]


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


SPIN_POLLS = 3000
"""A pool thread that has finished a part polls this many times for the next one (``sched_yield``
between polls: about 0.5 ms on this project's machine) before it blocks, and the calling thread polls
as long for the parts to finish. Waking a blocked thread cost 30-100 µs on a virtual machine whose
idle core had halted — the cost of each parallel region twice over (the seed CNN runs eight regions
a step: 5.7 → 5.4 ms with the polling). The polls are compiled (``kernels.sync``, without the GIL;
compiled at the first parallel region of a process, 0.2-0.4 s, since numba cannot cache them): with
the compiled path off, the threads block at once."""


SETTLE_POLLS = 40
"""A pool thread that sees its task come yields the core this many more times (a few µs) before it takes
the GIL: the caller that posted it holds the GIL until its own part enters compiled code, and a thread
that asks for the GIL meanwhile sleeps until it is let go and then wakes (measured on two 170 µs parts:
the worker's began 33 µs after the region's start, 16 µs with 40 yields; the seed CNN's step:
5.00-5.22 → 4.79-5.00 ms)."""


class _Worker:
    """A pool thread: runs the (work, part) tasks handed to it one at a time, with BLAS on one thread.

    Hand-over by counters: the caller posts task n (``posted`` = n), the worker finishes it
    (``finished`` = n). Each side polls the other's counter first and blocks on an event only when
    the polls run out; a flag says the other side is blocked, so the event is signalled only then.
    The worker reports a finished task from the compiled poll, without the GIL, so that a caller
    still polling for it does not then wait for the GIL (measured: a region of two 170 µs parts took
    250-400 µs, the caller returning 40 µs after the worker's part ended; now 210 µs, 5 µs after);
    the compiled poll also watches the caller's blocked flag (``caller_waits``, an array it can read)
    and returns at once to signal a caller that blocked just before the report.
    The events are plain locks (locked: nothing signalled), whose acquire and release an interrupt
    (Ctrl-C) cannot cut in half — ``threading.Event`` can be left with its lock held — and every wait
    is timed: an interrupted hand-over costs at most one timed wait, not a hang."""

    def __init__(self, blas_threads_local, name):
        import numpy

        self.posted = numpy.zeros(1, numpy.int64)
        self.finished = numpy.zeros(1, numpy.int64)
        self.task = self.result = self.error = None
        self.caller_waits = numpy.zeros(1, numpy.int64)  # caller_blocked, where the compiled poll sees it
        self.worker_blocked = False
        self.task_ready, self.task_done = threading.Lock(), threading.Lock()
        self.task_ready.acquire()
        self.task_done.acquire()
        threading.Thread(target=self._loop, args=(blas_threads_local,), daemon=True, name=name).start()

    def _loop(self, blas_threads_local):
        blas_threads_local(1)
        expected, done = 1, 0  # the next task's number; the task finished last, not yet reported
        while True:
            if not self._finish_and_poll(done, expected):
                _block(self.posted, expected, self.task_ready, "worker_blocked", self)
            expected = int(self.posted[0])  # the task posted last (a post cut short left the count ahead)
            task, self.task = self.task, None
            try:
                work, part = task
                self.result, self.error = work(part), None
            except BaseException as error:  # handed to the caller, which raises it
                self.result, self.error = None, error
            task = work = part = None  # hold none of the region's arrays until the next task
            done, expected = expected, expected + 1

    @property
    def caller_blocked(self) -> bool:
        return bool(self.caller_waits[0])

    @caller_blocked.setter
    def caller_blocked(self, value: bool) -> None:
        self.caller_waits[0] = value

    def _finish_and_poll(self, done, expected) -> bool:
        """Report task ``done`` finished (0: none), then poll for task ``expected``; whether it came.
        With the compiled path the report and the polls happen without the GIL
        (``kernels.sync.next_task``, which returns early when the caller is blocked, to be signalled
        here); without it the report is made here and the polls fail at once."""
        sync = _state["sync"]
        if sync is None:
            if done:
                self.finished[0] = done
                if self.caller_blocked:
                    _signal(self.task_done)
            return False
        while True:
            state = sync.next_task(self.finished, done, self.posted, expected, SPIN_POLLS, SETTLE_POLLS,
                                   self.caller_waits)
            if state >= 0:
                return state == 1
            _signal(self.task_done)  # the caller blocked on the reported task
            done = 0

    def post(self, work, part):
        if self.finished[0] < self.posted[0]:  # a region cut short left this worker busy: wait for it
            self.collect()
        self.task = (work, part)
        self.posted[0] += 1
        if self.worker_blocked:
            _signal(self.task_ready)

    def collect(self) -> tuple:
        """(result, error) of the task posted last, once it is finished."""
        posted = int(self.posted[0])
        if not _poll(self.finished, posted):
            _block(self.finished, posted, self.task_done, "caller_blocked", self)
        outcome = (self.result, self.error)
        self.result = self.error = None
        return outcome


def _poll(counter, value) -> bool:
    """Whether ``counter[0]`` reaches ``value`` within :data:`SPIN_POLLS` compiled polls (False at once
    without the compiled path)."""
    sync = _state["sync"]
    return sync is not None and sync.poll(counter, value, SPIN_POLLS)


def _block(counter, value, event, flag, worker) -> None:
    """Until ``counter[0]`` reaches ``value``: waits on ``event`` (a lock, see :class:`_Worker`), with
    ``worker.<flag>`` up meanwhile; a signal left over from an earlier hand-over only costs a re-check."""
    setattr(worker, flag, True)
    try:
        while counter[0] < value:  # checked again after the flag is up: a post or finish in between is seen
            event.acquire(timeout=0.05)
    finally:
        setattr(worker, flag, False)


def _signal(event) -> None:
    """Signal an event lock (released: signalled; already released: still signalled)."""
    try:
        event.release()
    except RuntimeError:
        pass


def _pool(n: int) -> list:
    """``n`` pool threads (started on first use; more are added when a run asks for more). Sets the
    polls to the compiled path's state."""
    from . import jit

    _state["sync"] = jit.kernels("sync")  # None with the compiled path off: blocking waits only
    workers = _state["pool"]
    if workers is None or len(workers) < n:
        with _lock:
            workers = _state["pool"] or []
            workers = workers + [_Worker(_state["set_local"], f"shenjing-{k + 1}") for k in range(len(workers), n)]
            _state["pool"] = workers
    return workers


def _forget_pool_in_child() -> None:
    """After a fork: the pool's threads do not exist in the child; it starts its own."""
    global _gate
    _state["pool"] = _state["owner"] = None
    _gate = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def run(work, parts: list) -> list:
    """``work(part)`` for each of ``parts`` (from :func:`sample_blocks` or :func:`split`), one part
    per thread — the calling thread takes the first — with BLAS single-threaded meanwhile; returns
    the results in order. One part runs on the calling thread alone, and so do all of them when
    another thread of the program is running a parallel region at the moment (the pool is one), or
    when this region is started inside a part of another.

    ``work`` must only write to places no other part writes to (its own buffers and output rows).
    Every part handed out is finished before ``run`` returns or raises (a part's error, or an
    interrupt while waiting, is raised after that).
    """
    if len(parts) <= 1 or not _available():
        return [work(part) for part in parts]
    return _claimed(lambda: _on_one_blas_thread(_run_parts, work, parts), lambda: [work(part) for part in parts])


def run_together(work, parties: int, cancel=None) -> int:
    """``work(k, parties)`` for k in range(``parties``), all at once on as many threads (the calling
    thread takes k = 0): for work whose parts wait for each other (a barrier), which :func:`run`'s
    one-after-another fallback would deadlock. Where that many threads cannot be had at once (the pool
    is running another region, or this is inside one; no pool), ``work(0, 1)`` alone does the whole job
    on the calling thread. Returns the number of parties that ran. On the pool, BLAS is single-threaded
    meanwhile. No more parties than the cores this process may use.

    A part that fails before its barriers must make the others stop waiting for it, and so must
    ``cancel()``: it is called when the calling thread's part raises or does not run (an interrupt just
    before it, or while handing the parts out)."""
    parties = max(1, min(parties, threads(), _cores()))

    def alone():
        work(0, 1)
        return 1

    def together():
        _on_one_blas_thread(_run_parts, lambda k: work(k, parties), list(range(parties)), cancel)
        return parties

    return alone() if parties == 1 or not _available() else _claimed(together, alone)


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _claimed(on_pool, elsewise):
    """``on_pool()`` with this thread's claim on the pool, or ``elsewise()`` when another region holds it
    (another thread's, or this thread's own, around this one)."""
    me = threading.get_ident()
    try:  # the claim is made and given back inside one try (CPython raises an interrupt only after a call
        # or at a jump, so the claim's steps, inside ``with _gate``, are not split)
        with _gate:
            if _state["owner"] is None:
                _state["owner"] = me
            else:
                me = None
        return elsewise() if me is None else on_pool()
    finally:
        if me is not None and _state["owner"] == me:
            _state["owner"] = None


def _on_one_blas_thread(function, *args, **kwargs):
    """``function(*args, **kwargs)`` with BLAS on one thread, its thread count restored afterwards — also
    when an interrupt is raised just as the setting call returns, before its result is kept."""
    fallback = _state["get"]()
    previous = None
    try:
        previous = _state["set_local"](1)
        return function(*args, **kwargs)
    finally:
        _state["set_local"](fallback if previous is None else previous)


def _run_parts(work, parts: list, cancel=None) -> list:
    handed = []
    try:
        for worker, part in zip(_pool(len(parts) - 1), parts[1:]):
            handed.append(worker)
            worker.post(work, part)
        first = work(parts[0])
    except BaseException:
        if cancel is not None:
            cancel()
        raise
    finally:  # collect every part handed out, even when interrupted while waiting; raise afterwards
        outcomes, interrupt = [], None
        for worker in handed:
            while True:
                try:
                    outcomes.append(worker.collect())
                    break
                except BaseException as error:
                    interrupt = interrupt or error
                    if cancel is not None:  # (again: an interrupt may have cut the first call short)
                        cancel()
        if interrupt is not None:
            raise interrupt
    for _, error in outcomes:
        if error is not None:
            raise error
    return [first] + [result for result, _ in outcomes]


BLAS_ONE_THREAD_MACS = 1 << 18
"""OpenBLAS runs a matrix product of fewer multiply-adds than this on the calling thread alone (its own bound):
such a product wakes no worker."""

SMALL_MATMUL_MACS = 1 << 23
"""A matrix product of fewer multiply-adds than this runs on one BLAS thread (above OpenBLAS's own
one-thread bound, 2**18). The second thread saves it a few tens of microseconds, but OpenBLAS's worker
then spins on the second core for up to 2**SPIN_LOG2 cycles, and the thread-parallel region that
follows (a convolution's or pooling's blocks, :func:`run`) shares that core with it: measured on the
seed CNN (Dense 256→128 at batch 100 between its convolutions), a step took 8.0 ms against 6.8 ms."""


TILE_MIN_ROWS = 512
TILE_MIN_COLUMNS = 256
TILE_DEPTHS = (64, 1024)
"""The float32 products that run on the CPU's matrix unit where it has one (:mod:`.kernels.tiles`): at
least TILE_MIN_ROWS rows and TILE_MIN_COLUMNS columns, a depth within TILE_DEPTHS. Measured on this
project's machine (two threads, against OpenBLAS): 1000×784 @ 784×512 2.18 against 2.95 ms, 1000×512 @
512×512 1.49 against 1.88, 4096×64 @ 64×1024 1.93 against 2.33, 2048³ 49 against 56 ms; slower below these
bounds (at 128 rows 0.68×, at 64 columns 0.54×) and beyond a depth of 1,024 (1000×9216 @ 9216×128: 0.67×;
a thread's 32-row blocks of ``a`` then leave its L2 between column blocks)."""


def _tile_product(a, b):
    """``a @ b`` on the matrix unit when ``tiles.takes`` them and the compiled path and the unit are
    there; else None, also for values the unit cannot take (BLAS keeps IEEE's rules for those). The
    caller has checked the shape bounds (:data:`TILE_MIN_ROWS`)."""
    if _state.get("tiles") is False:
        return None
    from . import jit  # the compiled path (llvmlite) loads on first use: ``import shenjing`` stays fast
    tiles = jit.kernels("tiles")
    if tiles is None or not tiles.suited():
        if tiles is not None:
            _state["tiles"] = False  # no unit here: asked once
        return None
    return tiles.matmul(a, b) if tiles.takes(a, b) else None


def matmul(a, b, out=None):
    """``a @ b`` (into ``out`` when given) for 2-D ``a`` (m, k) and ``b`` (k, n); on the CPU's matrix unit
    for large float32 products (:data:`TILE_MIN_ROWS`); on one BLAS thread when the product of two matrices
    is small (:data:`SMALL_MATMUL_MACS`) and the pool runs parallel regions (its quieted OpenBLAS is set up
    at the first parallel region or :func:`threads` call)."""
    xp = _backend.xp
    m, n = a.shape[0], b.shape[1]
    if (m >= TILE_MIN_ROWS and n >= TILE_MIN_COLUMNS and TILE_DEPTHS[0] <= a.shape[1] <= TILE_DEPTHS[1]
            and out is None and xp.__name__ == "numpy"):
        product = _tile_product(a, b)
        if product is not None:
            return product
    macs = m * a.shape[1] * n
    # a matrix-vector product (m or n is 1) is bound by reading the matrix: two threads read it faster
    if (macs < BLAS_ONE_THREAD_MACS or macs >= SMALL_MATMUL_MACS or m == 1 or n == 1 or not _state["quiet"]
            or threads() < 2):
        return xp.matmul(a, b, out=out)
    return _on_one_blas_thread(xp.matmul, a, b, out=out)
