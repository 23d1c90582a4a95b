"""The LSTM's register-blocked steps (``microkernel.lstm_forward`` / ``lstm_backward``, used by
``shenjing.autodiff.rnn`` for float32 sigmoid/tanh LSTMs of a multiple of 16 units) against the
step-by-step path (NumPy's matmul and tanh with the numba gate kernels, themselves tested against the
NumPy ufuncs in test_rnn_jit.py): outputs, final states and every gradient, on one to four threads;
the kernels' own tanh against the exact one; the fallbacks; and the barrier's way out when a party
never comes or fails."""

import threading

import numpy as np
import pytest

pytest.importorskip("llvmlite")

from shenjing import backend, layers, models, optimizers  # noqa: E402
from shenjing.autodiff import Tensor, ops, rnn  # noqa: E402
from shenjing.backend import jit, parallel  # noqa: E402


@pytest.fixture
def kernels(monkeypatch):
    """The microkernel module, forced on where the CPU lacks AVX-512 (slower there, not wrong), its
    LSTM entry points counted."""
    jit.set_enabled(True)
    module = jit.kernels("microkernel")
    if not module.prepare():
        pytest.skip("this llvmlite cannot build the kernels")
    monkeypatch.setitem(module._state, "suited", True)
    calls = {"lstm_forward": 0, "lstm_backward": 0}
    for name in calls:
        function = getattr(module, name)

        def counted(*args, _function=function, _name=name):
            calls[_name] += 1
            return _function(*args)

        monkeypatch.setattr(module, name, counted)
    module.calls = calls
    return module


def lstm_results(arrays, embedding=False, **options):
    """Outputs, final h and c, and the gradients of every input, for a fixed weighting of all three.
    With ``embedding``, x is an embedding lookup (table rows gathered by ids): its projection is gathered."""
    x, kernel, bias, h0, c0, recurrent = arrays
    tensors = [None if a is None else Tensor(a, requires_grad=True) for a in (kernel, bias, h0, c0, recurrent)]
    if embedding:
        table = Tensor(x[0], requires_grad=True)
        source, inputs = ops.take(table, x[1], axis=0), [table]
    else:
        source = Tensor(x, requires_grad=True)
        inputs = [source]
    outs = rnn.lstm_with_input(source, *tensors, **options)
    n, t, u = outs[0].shape
    weights = np.random.default_rng(8).normal(size=(n, t + 2, u)).astype(np.float32)
    packed = ops.concatenate([outs[0], ops.expand_dims(outs[1], 1), ops.expand_dims(outs[2], 1)], axis=1)
    ops.sum(ops.mul(packed, weights)).backward()
    return [o.numpy() for o in outs] + [a.grad for a in inputs + tensors if a is not None]


def random_inputs(n, t, features, units, states=True, embedding=False, fortran=False, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    if embedding:
        x = (rng.normal(size=(7, features)).astype(f32), rng.integers(-7, 7, size=(n, t)))
    else:
        x = rng.normal(size=(n, t, features)).astype(f32)
    kernel = (rng.normal(size=(features, 4 * units)) * 0.4).astype(f32)
    bias = (rng.normal(size=4 * units) * 0.3).astype(f32)
    h0, c0 = ((rng.normal(size=(n, units)).astype(f32), rng.normal(size=(n, units)).astype(f32)) if states
              else (None, None))
    recurrent = (rng.normal(size=(units, 4 * units)) / np.sqrt(units)).astype(f32)
    if fortran:
        kernel, recurrent = np.asfortranarray(kernel), np.asfortranarray(recurrent)
    return [x, kernel, bias, h0, c0, recurrent]


def step_by_step(monkeypatch, arrays, **options):
    with monkeypatch.context() as patch:
        patch.setattr(rnn, "_fused_forward", lambda *a: None)
        return lstm_results(arrays, **options)


CASES = {  # (batch, steps, features, units, options)
    "plain": (6, 9, 5, 32, {}),
    "rows-not-a-multiple-of-6": (13, 7, 3, 16, {}),
    "go_backwards": (5, 8, 4, 48, dict(go_backwards=True)),
    "zero-states": (8, 30, 16, 64, dict(states=False)),
    "embedding": (9, 12, 6, 80, dict(embedding=True)),
    "embedding-go_backwards": (4, 10, 6, 16, dict(embedding=True, go_backwards=True)),
    "one-step-144-units": (3, 1, 4, 144, {}),
    "fortran-ordered-kernels": (5, 6, 4, 64, dict(fortran=True)),
}


@pytest.fixture
def parties_seen(monkeypatch):
    """The number of parties of each ``run_together`` (the pool's cores not capped: the tests may ask for
    more threads than the machine has)."""
    seen = []
    run_together = parallel.run_together

    def counted(work, parties, cancel=None):
        seen.append(run_together(work, parties, cancel))
        return seen[-1]

    monkeypatch.setattr(parallel, "run_together", counted)
    monkeypatch.setattr(parallel, "_cores", lambda: 8)
    return seen


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_register_blocked_lstm_steps_match_the_step_by_step_path(kernels, case, threads, parties_seen, monkeypatch):
    """Both kernels run, on as many threads as asked for and as the units have panels of 16 (1 to 9
    panels; output panels of 1 to 4 vectors of 16), and every result is the step-by-step path's within
    float32 rounding (the kernels' own tanh and order of the sums)."""
    n, t, features, units, options = CASES[case]
    options = dict(options)
    arrays = random_inputs(n, t, features, units, states=options.pop("states", True),
                           embedding=options.get("embedding", False), fortran=options.pop("fortran", False))
    want = step_by_step(monkeypatch, arrays, **options)
    monkeypatch.setenv("SHENJING_NUM_THREADS", str(threads))
    got = lstm_results(arrays, **options)
    assert kernels.calls == {"lstm_forward": 1, "lstm_backward": 1}
    expected = min(threads, units // 16) if parallel._available() else 1
    assert parties_seen == [expected, expected]
    for ours, ref in zip(got, want):
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("through", ["weights", "dense"])
@pytest.mark.parametrize("case", ["plain", "go_backwards", "embedding"])
def test_the_kernels_take_the_outputs_gradient_without_the_states(kernels, case, through, monkeypatch):
    """``return_states=False``: the backward kernel reads the gradient of the (batch, time, units) outputs
    alone, batch-major (a weighting of the outputs) or time-major (a Dense on them: ``ops.linear`` works
    in the outputs' time-major row order); the results are the step-by-step path's."""
    n, t, features, units, options = CASES[case]
    options = dict(options)
    embedding = options.pop("embedding", False)
    arrays = random_inputs(n, t, features, units, embedding=embedding)
    weights = np.random.default_rng(9).normal(size=(n, t, units)).astype(np.float32)
    dense = Tensor(np.random.default_rng(10).normal(size=(units, 5)).astype(np.float32), requires_grad=True)
    results = []
    for fused in (False, True):
        with monkeypatch.context() as patch:
            if not fused:
                patch.setattr(rnn, "_fused_forward", lambda *a: None)
            x, *rest = arrays
            source = Tensor(x[0] if embedding else x, requires_grad=True)
            tensors = [source] + [Tensor(a, requires_grad=True) for a in rest]
            looked_up = ops.take(source, x[1], axis=0) if embedding else source
            (outputs,) = rnn.lstm_with_input(looked_up, *tensors[1:], return_states=False, **options)
            if through == "dense":
                dense.grad = None
                projected = ops.linear(outputs, dense)
                assert projected.shape == (n, t, 5)
                ops.sum(ops.mul(projected, weights[..., :5])).backward()
                tensors = tensors + [dense]
            else:
                ops.sum(ops.mul(outputs, weights)).backward()
            results.append([outputs.numpy()] + [a.grad for a in tensors])
    assert kernels.calls == {"lstm_forward": 1, "lstm_backward": 1}
    for ours, ref in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(ref).max()))


def test_one_and_two_threads_give_the_same_forward(kernels, parties_seen, monkeypatch):
    """Each unit's steps are computed by the same code whichever thread owns it: the forward is the same
    to the bit on one and two threads."""
    arrays = random_inputs(7, 11, 5, 64)
    runs = []
    for threads in ("1", "3"):
        monkeypatch.setenv("SHENJING_NUM_THREADS", threads)
        outs = rnn.lstm_with_input(*[Tensor(a) if a is not None else None for a in arrays])
        runs.append([o.numpy() for o in outs])
    assert parties_seen == [1, 3 if parallel._available() else 1]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("units", [16, 48, 64, 80, 144, 256])
@pytest.mark.parametrize("order", ["C", "F"])
def test_the_backwards_packed_kernel_is_the_forwards_panels_transposed(kernels, units, order):
    """``lstm_transposed`` (one strided copy) holds, panel of 64 columns after panel, the rows of the
    forward's panels transposed: element [j, k] is R[k, j] with j in the panels' column order."""
    rng = np.random.default_rng(units)
    kernel = np.asarray(rng.normal(size=(units, 4 * units)).astype(np.float32), order=order)
    rows = kernels.lstm_panels(np.ascontiguousarray(kernel)).transpose(0, 2, 1).reshape(4 * units, units)
    want = np.concatenate([rows[:, col:col + 64].reshape(-1) for col in range(0, units, 64)])
    got = kernels.lstm_transposed(kernel)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("embedding", [False, True])
def test_the_kernels_arrays_start_on_a_vector_boundary(kernels, monkeypatch, embedding):
    """Every array the kernels stream in 64-byte vectors (the packed recurrent kernel above all, read from
    L2 at every step) is 64-byte aligned, the gradient that reaches the backward from a Dense layer too:
    a misaligned vector load touches two cache lines (char-LSTM kernels: about 10% slower)."""
    seen = {}
    for name in ("lstm_forward", "lstm_backward"):
        function = getattr(kernels, name)

        def recorded(*args, _function=function, _name=name):
            skipped = args[6] if _name == "lstm_backward" else None  # gh: copied once, not streamed
            seen[_name] = [a.ctypes.data % 64 for a in args
                           if isinstance(a, np.ndarray) and a.dtype == np.float32 and a is not skipped]
            return _function(*args)

        monkeypatch.setattr(kernels, name, recorded)
    x, *rest = random_inputs(5, 7, 6, 32, embedding=embedding)
    tensors = [Tensor(a, requires_grad=True) for a in rest]
    source = Tensor(x[0] if embedding else x, requires_grad=True)
    looked_up = ops.take(source, x[1], axis=0) if embedding else source
    (outputs,) = rnn.lstm_with_input(looked_up, *tensors, return_states=False)
    projected = ops.linear(outputs, Tensor(np.ones((32, 3), np.float32), requires_grad=True))
    ops.sum(projected).backward()
    assert seen == {"lstm_forward": [0] * 6, "lstm_backward": [0] * 7}


def test_the_kernels_tanh_is_within_a_few_ulp_of_numpys(kernels):
    """With a zero recurrent kernel the g gate is tanh of the input projection: the kernels' tanh over
    float32 values from 1e-30 to 30, both signs, and ±inf (±1) and NaN (NaN)."""
    values = np.geomspace(1e-30, 30, 4096 * 4 - 3).astype(np.float32)
    values[::2] *= -1
    values = np.concatenate([values, [np.inf, -np.inf, np.nan]]).astype(np.float32)
    u, n = 16, values.size // 16
    proj = np.zeros((1, n, 64), np.float32)
    proj[0, :, 32:48] = values.reshape(n, 16)
    h = np.zeros((2, n, u), np.float32)
    c, tc, a = h.copy(), np.empty((1, n, u), np.float32), np.empty((1, n, 64), np.float32)
    offsets = (np.arange(n, dtype=np.int64) * 64)[None]
    kernels.lstm_forward(h, c, tc, a, proj, offsets, np.zeros(1, np.int64),
                         kernels.lstm_panels(np.zeros((u, 64), np.float32)))(0, 1)
    got = a[0, :, 32:48].reshape(-1).astype(np.float64)
    want = np.tanh(values.astype(np.float64))
    finite = np.isfinite(values)
    assert np.isnan(got[-1]) and list(got[-3:-1]) == [1.0, -1.0]
    ulp = np.spacing(np.abs(want[finite]).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got[finite] - want[finite]) / ulp) <= 8
    assert np.max(np.abs(got[finite])) <= 1


@pytest.mark.parametrize("case", ["mask", "recurrent-dropout", "float64", "24-units", "sigmoid-only"])
def test_the_step_by_step_path_takes_what_the_kernels_do_not(kernels, case):
    arrays = random_inputs(3, 4, 2, 24 if case == "24-units" else 16)
    options = {}
    if case == "mask":
        options["mask"] = np.array([[True, True, False, True]] * 3)
    elif case == "recurrent-dropout":
        options["recurrent_dropout_mask"] = np.full((3, 16), 0.5, np.float32)
    elif case == "float64":
        arrays = [a.astype(np.float64) if a is not None else None for a in arrays]
    elif case == "sigmoid-only":
        options["activation"] = "sigmoid"
    lstm_results(arrays, **options)
    assert kernels.calls == {"lstm_forward": 0, "lstm_backward": 0}


def test_an_lstm_layer_trains_through_the_kernels(kernels, monkeypatch):
    """Embedding → LSTM(32) → Dense softmax: the public API takes the kernels (on two threads), and the
    loss falls as on the step-by-step path."""
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 10, size=(64, 12))
    targets = np.maximum(ids, np.roll(ids, 1, axis=1))  # the larger of this id and the one before

    def train():
        backend.set_random_seed(5)
        model = models.Sequential([layers.Input((12,)), layers.Embedding(10, 8), layers.LSTM(32, return_sequences=True),
                                   layers.Dense(10, activation="softmax")])
        model.compile(optimizers.Adam(learning_rate=0.02), "sparse_categorical_crossentropy")
        history = model.fit(ids, targets, epochs=4, batch_size=16, verbose=0)
        return history.history["loss"]

    losses = train()
    assert kernels.calls["lstm_forward"] >= 16 and kernels.calls["lstm_backward"] >= 16
    monkeypatch.setattr(rnn, "_fused_forward", lambda *a: None)
    reference = train()
    assert losses[-1] < losses[0] - 0.3
    np.testing.assert_allclose(losses, reference, rtol=1e-3)


def test_run_together_runs_alone_where_the_pool_is_taken(monkeypatch):
    """Parts that wait for each other never run one after another: inside another region (the pool
    taken) the whole job runs as one party on the calling thread."""
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    seen = []

    def outer(part):
        return parallel.run_together(lambda k, parties: seen.append((k, parties)), 2)

    assert parallel.run(outer, [[0], [1]]) == [1, 1]
    assert seen == [(0, 1), (0, 1)]
    if parallel._available():
        both = []
        assert parallel.run_together(lambda k, parties: both.append((k, parties)), 2) == 2
        assert sorted(both) == [(0, 2), (1, 2)]


def test_a_called_off_run_returns_from_its_barrier(kernels):
    """A party that never comes (its caller interrupted before its part ran) does not leave the others
    waiting: ``cancel`` makes them return, with an error."""
    arrays = [np.zeros((3, 2, 16), np.float32), np.zeros((3, 2, 16), np.float32), np.zeros((2, 2, 16), np.float32),
              np.zeros((2, 2, 64), np.float32)]
    h, c, tc, a = arrays
    run = kernels.lstm_forward(h, c, tc, a, a, np.zeros((2, 2), np.int64), np.arange(2, dtype=np.int64),
                               kernels.lstm_panels(np.zeros((16, 64), np.float32)))
    timer = threading.Timer(0.05, run.cancel)
    timer.start()
    with pytest.raises(RuntimeError, match="called off"):
        run(0, 2)
    timer.join()


def test_an_interrupt_before_the_callers_part_calls_the_run_off(monkeypatch):
    """``run_together`` calls ``cancel`` when the caller's own part never starts, so the pool's part
    returns and the interrupt comes through (no hang)."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    cancelled = threading.Event()

    def work(k, parties):
        if k == 0:
            raise KeyboardInterrupt
        assert cancelled.wait(timeout=30)  # the other part waits until the run is called off

    with pytest.raises(KeyboardInterrupt):
        parallel.run_together(work, 2, cancelled.set)
    assert parallel._state["owner"] is None


def test_a_part_that_fails_calls_the_run_off(kernels, monkeypatch):
    """A pool thread whose part fails before its kernel starts (here: its call raises) calls the run off,
    so the caller's part returns from its barrier and the run raises instead of hanging."""
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control: one thread")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    h, c = np.zeros((4, 2, 32), np.float32), np.zeros((4, 2, 32), np.float32)
    tc, a = np.zeros((3, 2, 32), np.float32), np.zeros((3, 2, 128), np.float32)
    run = kernels.lstm_forward(h, c, tc, a, a, np.zeros((3, 2), np.int64), np.arange(3, dtype=np.int64),
                               kernels.lstm_panels(np.zeros((32, 128), np.float32)))
    function, caller = run.function, threading.current_thread()

    def fails_on_the_pool(*args):
        if threading.current_thread() is not caller:
            raise MemoryError
        return function(*args)

    run.function = fails_on_the_pool
    with pytest.raises(RuntimeError, match="called off"):
        parallel.run_together(run, 2, run.cancel)


def test_more_parties_than_slots_are_refused(kernels):
    """The backward's partial sums have a slot per party: a run asked of more parties raises (and calls
    itself off) instead of writing past them."""
    n, t, u = 2, 2, 32
    a, dz = np.zeros((t, n, 4 * u), np.float32), np.zeros((t, n, 4 * u), np.float32)
    part, _ = kernels.lstm_backward(np.zeros((n, t + 2, u), np.float32), a, np.zeros((t, n, u), np.float32),
                                    np.zeros((t + 1, n, u), np.float32), dz, np.zeros((n, u), np.float32),
                                    np.zeros((n, u), np.float32), np.arange(t, dtype=np.int64),
                                    kernels.lstm_transposed(np.zeros((u, 4 * u), np.float32)), 1)
    with pytest.raises(ValueError, match="at most 1 parties"):
        part(0, 2)
    assert part.counter[1] == 1
