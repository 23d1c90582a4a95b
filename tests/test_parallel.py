"""backend.parallel: blocks spread over threads give the same results as one thread."""

import os
import threading
import time

import numpy as np
import pytest

from shenjing import backend
from shenjing.autodiff import Tensor, conv
from shenjing.backend import parallel


def test_split_covers_every_block_once_in_order():
    blocks = list(range(10))
    for parts in (1, 3, 4, 10, 12):
        runs = parallel.split(blocks, parts)
        assert sum(runs, []) == blocks
        assert len(runs) == min(parts, 10)
        assert max(map(len, runs)) - min(map(len, runs)) <= 1
    assert parallel.split([7], 3) == [[7]]


def test_run_gives_each_part_to_a_thread_and_the_results_in_order(monkeypatch):
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    parts = parallel.split(list(range(10)), 3)
    together = threading.Barrier(3 if parallel._available() else 1)

    def work(part):
        together.wait(timeout=30)  # the three parts run at the same time, on three threads
        return list(part), threading.current_thread().name

    names = parallel.run(work, parts)
    assert [p for p, _ in names] == parts
    assert names[0][1] == threading.current_thread().name  # the caller takes the first part
    assert len({name for _, name in names}) == (3 if parallel._available() else 1)
    assert parallel.run(lambda part: list(part), [[7]]) == [[7]]


def test_sample_blocks_balance_the_threads_and_leave_small_jobs_whole(monkeypatch):
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    # a pooling input of mnist_cnn's training batch, and samples whose blocks do not divide the batch
    for n, size, block_bytes in [(100, 70_000, 3 << 20), (100, 70_000, 3 << 19), (128, 147_456, 3 << 19),
                                 (1000, 663_552, 3 << 19), (77, 90_000, 1 << 20)]:
        monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", block_bytes)
        step, parts = parallel.sample_blocks(n, size)
        blocks = sum(parts, [])
        sizes = [stop - start for start, stop in blocks]
        assert blocks[0][0] == 0 and blocks[-1][1] == n and all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        assert len(parts) == 2 and len(blocks) % 2 == 0 and max(sizes) - min(sizes) <= 1
        assert max(sizes) <= step <= max(1, block_bytes // size)
        shares = [sum(stop - start for start, stop in part) for part in parts]
        assert abs(shares[0] - shares[1]) <= len(blocks) // 2, (n, size, block_bytes, shares)
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 3000)
    # a job below MIN_SPLIT_BYTES stays on the calling thread, in cache-sized blocks
    step, parts = parallel.sample_blocks(10, 1000)
    assert len(parts) == 1 and step == 3
    monkeypatch.setenv("SHENJING_NUM_THREADS", "1")
    assert len(parallel.sample_blocks(100, 70_000)[1]) == 1
    # one block a thread: the calling thread's is larger by CALLER_EXTRA of the samples, the others even
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 3 << 20)
    for threads, n in [(2, 100), (3, 100), (2, 45), (4, 64)]:  # 25 KB a sample: every job above MIN_SPLIT_BYTES
        monkeypatch.setenv("SHENJING_NUM_THREADS", str(threads))
        step, parts = parallel.sample_blocks(n, 25_000)
        assert len(parts) == threads and all(len(part) == 1 for part in parts)
        sizes = [stop - start for (start, stop), in parts]
        assert parts[0][0][0] == 0 and parts[-1][-1][1] == n and min(sizes) >= 1
        assert all(parts[k][0][1] == parts[k + 1][0][0] for k in range(len(parts) - 1))  # contiguous
        assert sizes[0] == min(n - (threads - 1), -(-n // threads) + round(n * parallel.CALLER_EXTRA))
        assert max(sizes[1:]) - min(sizes[1:]) <= 1 and step >= max(sizes)


def test_default_threads_follow_blas_once_its_workers_are_quiet(monkeypatch):
    """Without SHENJING_NUM_THREADS the pool has BLAS's thread count, but only where OpenBLAS's
    idle workers were made to stop spinning soon (else they would take a core from the pool)."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control")
    monkeypatch.delenv("SHENJING_NUM_THREADS", raising=False)
    assert "OPENBLAS_THREAD_TIMEOUT" not in os.environ or parallel._state["quiet"] is not None
    if parallel._state["quiet"]:
        assert parallel.threads() == max(1, parallel._state["get"]())
    monkeypatch.setitem(parallel._state, "quiet", False)
    assert parallel.threads() == 1
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    assert parallel.threads() == 3


@pytest.mark.parametrize("channels", [1, 6])
def test_threaded_convolution_equals_one_thread(channels, monkeypatch):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((7, 9, 8, channels)), rng.standard_normal((3, 3, channels, 5)),
              rng.standard_normal(5)]
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)  # one sample per block
    monkeypatch.setattr(parallel, "MIN_SPLIT_BYTES", 0)  # split even this small job

    def run():
        x, k, b = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = conv.conv2d(x, k, b, padding="same", activation="relu")
        (out * out).sum().backward()
        return [out.data, x.grad, k.grad, b.grad]

    monkeypatch.setenv("SHENJING_NUM_THREADS", "1")
    one = run()
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    for got, want in zip(run(), one):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("kwargs", [{}, {"pool_size": 3, "strides": 2, "padding": "same"}])
def test_threaded_pooling_equals_one_thread(op, kwargs, monkeypatch):
    x0 = np.random.default_rng(6).standard_normal((7, 9, 8, 3))
    g = None
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)
    monkeypatch.setattr(parallel, "MIN_SPLIT_BYTES", 0)

    def run():
        nonlocal g
        x = Tensor(x0.copy(), requires_grad=True)
        out = getattr(conv, op)(x, **kwargs)
        g = np.random.default_rng(1).standard_normal(out.shape) if g is None else g
        (out * Tensor(g)).sum().backward()
        return [out.data, x.grad]

    monkeypatch.setenv("SHENJING_NUM_THREADS", "1")
    one = run()
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    for got, want in zip(run(), one):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)



@pytest.mark.parametrize("shape", [(4, 8, 3), (100, 256, 128), (1, 9216, 128), (300, 300, 300)])
def test_matmul_runs_small_products_on_one_blas_thread(shape, monkeypatch):
    """Products of two matrices between OpenBLAS's own one-thread bound and SMALL_MATMUL_MACS run with
    BLAS set to one thread (and its count restored after); all give NumPy's product."""
    m, k, n = shape
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((m, k)).astype("float32"), rng.standard_normal((k, n)).astype("float32")
    counts = []
    monkeypatch.setitem(parallel._state, "quiet", True)
    monkeypatch.setitem(parallel._state, "set_local", lambda count: counts.append(count) or 2)
    monkeypatch.setattr(parallel, "threads", lambda: 2)
    out = np.empty((m, n), dtype="float32")
    np.testing.assert_array_equal(parallel.matmul(a, b, out=out), a @ b)
    small = 1 << 18 <= m * k * n < parallel.SMALL_MATMUL_MACS and m > 1 and n > 1
    assert counts == ([1, 2] if small else [])  # one thread, then the previous count back
    assert small == (shape == (100, 256, 128))
    counts.clear()
    monkeypatch.setattr(parallel, "threads", lambda: 1)  # no pool, no parallel regions: BLAS keeps its threads
    np.testing.assert_array_equal(parallel.matmul(a, b), a @ b)
    assert counts == []


@pytest.mark.parametrize("polls", [0, parallel.SPIN_POLLS])  # 0: every hand-over blocks on its event
def test_pool_hands_over_many_tasks_and_errors_in_step(polls, monkeypatch):
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    monkeypatch.setattr(parallel, "SPIN_POLLS", polls)
    parts = parallel.split(list(range(9)), 3)
    for round_ in range(50):  # back-to-back regions: no task is lost or run twice
        assert parallel.run(lambda part, r=round_: [r * 100 + v for v in part], parts) == [
            [round_ * 100 + v for v in part] for part in parts]

    def failing(part):
        if 4 in part:
            raise ValueError("part 2 failed")
        return sum(part)

    with pytest.raises(ValueError, match="part 2 failed"):  # a worker's error reaches the caller
        parallel.run(failing, parts)
    ran = []

    def caller_fails(part):
        ran.append(tuple(part))
        if 0 in part:
            raise KeyError("caller")
        return sum(part)

    with pytest.raises(KeyError):  # the caller's own part fails: the workers' parts still finish
        parallel.run(caller_fails, parts)
    assert sorted(ran) == sorted(tuple(p) for p in parts)
    assert parallel.run(sum, parts) == [sum(p) for p in parts]  # and the pool is still in step


def test_a_second_thread_runs_its_region_on_itself(monkeypatch):
    """The pool serves one region at a time: a region started while another runs takes all its parts
    on its own thread."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    inside, release = threading.Event(), threading.Event()
    names = []

    def slow(part):
        inside.set()
        release.wait(timeout=30)
        return part

    outer = threading.Thread(target=lambda: parallel.run(slow, [[1], [2]]))
    outer.start()
    assert inside.wait(timeout=30)
    other = parallel.run(lambda part: names.append(threading.current_thread().name) or part, [[3], [4]])
    release.set()
    outer.join(timeout=30)
    assert other == [[3], [4]] and set(names) == {threading.current_thread().name}


def test_a_region_gives_its_claim_back_after_an_interrupt_and_keeps_it_through_a_nested_region(monkeypatch):
    """An interrupt in a part leaves the pool free for the next region (which runs on two threads), and
    a region started inside a part runs on that part's thread without taking the claim from the outer one."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")

    def interrupted(part):
        if part == [1]:
            raise KeyboardInterrupt
        return part

    with pytest.raises(KeyboardInterrupt):
        parallel.run(interrupted, [[1], [2]])
    assert parallel._state["owner"] is None
    names = []

    def nested(part):
        inner = parallel.run(lambda p: names.append(threading.current_thread().name) or p, [[part[0], 0], [0]])
        assert parallel._state["owner"] == threading.main_thread().ident  # still the outer region's
        return inner

    assert parallel.run(nested, [[5], [6]]) == [[[5, 0], [0]], [[6, 0], [0]]]
    assert parallel._state["owner"] is None
    assert len(set(names)) == 2  # each outer part ran its inner region on its own thread: two threads


def test_interrupts_as_the_claim_or_the_blas_setting_returns_leave_nothing_behind(monkeypatch):
    """An interrupt raised just as the claim's lock is let go, or just as BLAS is set to one thread (before
    the old count is kept), leaves the pool unclaimed and BLAS's thread count as it was."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    real_gate = parallel._gate

    class InterruptedGate:
        def __enter__(self):
            real_gate.acquire()

        def __exit__(self, *exc):
            real_gate.release()
            raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "_gate", InterruptedGate())
    with pytest.raises(KeyboardInterrupt):
        parallel.run(sum, [[1], [2]])
    assert parallel._state["owner"] is None and not real_gate.locked()
    monkeypatch.setattr(parallel, "_gate", real_gate)

    before = parallel._state["get"]()
    real_set = parallel._state["set_local"]

    def interrupted_set(count):
        real_set(count)
        raise KeyboardInterrupt  # as if delivered when the call returned

    monkeypatch.setitem(parallel._state, "set_local", interrupted_set)
    with pytest.raises(KeyboardInterrupt):
        parallel.run(sum, [[1], [2]])
    monkeypatch.setitem(parallel._state, "set_local", real_set)
    assert parallel._state["get"]() == before and parallel._state["owner"] is None
    names = []
    assert parallel.run(lambda p: names.append(threading.current_thread().name) or p, [[1], [2]]) == [[1], [2]]
    assert len(set(names)) == 2


def test_a_worker_returns_to_signal_a_caller_that_blocked_around_its_report():
    """``sync.next_task``: 1 when the task came, 0 when the polls ran out, −1 at once when the caller's
    blocked flag is up after a report (only then: with nothing reported the flag is not its business)."""
    from shenjing.backend import jit

    sync = jit.kernels("sync")
    if sync is None:
        pytest.skip("the compiled path is off")
    finished, posted, waits = (np.zeros(1, np.int64) for _ in range(3))
    assert sync.next_task(finished, 3, posted, 4, 50, 0, waits) == 0 and finished[0] == 3
    waits[0] = 1
    assert sync.next_task(finished, 4, posted, 5, 10**9, 0, waits) == -1 and finished[0] == 4
    assert sync.next_task(finished, 0, posted, 5, 50, 0, waits) == 0
    posted[0] = 5
    assert sync.next_task(finished, 0, posted, 5, 50, 3, waits) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_its_own_pool(monkeypatch):
    """The pool's threads do not survive a fork: the child's first region must not wait for them."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    parts = [[1], [2]]
    assert parallel.run(sum, parts) == [1, 2]  # the parent's pool is up
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its region ran to the end
        try:
            os._exit(0 if parallel.run(sum, parts) == [1, 2] else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    pytest.fail("the forked child's parallel region hung")
