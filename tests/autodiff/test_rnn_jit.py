"""The LSTM's compiled gate kernels (shenjing.backend.kernels.rnn) against the NumPy path of
shenjing.autodiff.rnn: the same outputs, final states and gradients on both paths (masking,
go_backwards, recurrent dropout, zero_output_for_mask, both dtypes), central differences through the
compiled path, the kernels against their NumPy twins, and the LSTM layer on both paths."""

import importlib

import numpy as np
import pytest

pytest.importorskip("numba")

from shenjing.autodiff import Tensor, check_gradients, ops, rnn  # noqa: E402
from shenjing.backend import jit  # noqa: E402

N, T, F, U = 3, 5, 4, 6
MASK = np.array([[True, False, True, True, False],
                 [False, True, False, True, True],
                 [True, True, True, True, True]])
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}

VARIANTS = {
    "plain": {},
    "mask": dict(mask=MASK),
    "go_backwards": dict(go_backwards=True),
    "mask-go_backwards": dict(mask=MASK, go_backwards=True),
    "dropout-zero_output": dict(mask=MASK, recurrent_dropout_mask=np.random.default_rng(5).uniform(0.5, 1.5, (N, U)),
                                zero_output_for_mask=True),
}


@pytest.fixture(autouse=True)
def numba_gate_kernels(monkeypatch):
    """These tests are about the numba gate kernels: the register-blocked steps that float32 LSTMs of a
    multiple of 16 units take on AVX-512 CPUs are left out (tests/autodiff/test_rnn_microkernel.py)."""
    monkeypatch.setattr(rnn, "_fused_forward", lambda *a: None)


def kernels_module():
    """The rnn kernels (the tests turn the compiled path on themselves, whatever SHENJING_JIT says)."""
    return importlib.import_module("shenjing.backend.kernels.rnn")


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts of the rnn kernels' calls (the kernels still run)."""
    module = kernels_module()
    calls = {}

    def counting(name, kernel):
        def counted(*args):
            calls[name] = calls.get(name, 0) + 1
            return kernel(*args)
        return counted

    for name in ("lstm_gates", "lstm_gates_backward", "gather_add"):
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    return calls


def inputs(seed=0, states=True):
    """float64 arrays of lstm_with_input: x, kernel, bias, h0, c0 (None without ``states``), recurrent kernel."""
    rng = np.random.default_rng(seed)
    x, kernel, bias = rng.normal(size=(N, T, F)), rng.normal(size=(F, 4 * U)) * 0.5, rng.normal(size=(4 * U,)) * 0.5
    h0, c0 = (rng.normal(size=(N, U)), rng.normal(size=(N, U))) if states else (None, None)
    return [x, kernel, bias, h0, c0, rng.normal(size=(U, 4 * U)) * 0.5]


def outputs_and_grads(arrays, dtype, fused=True, **options):
    """Outputs, final h and c, and the gradients of every input, for a fixed weighting of all three."""
    tensors = [None if a is None else Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    if fused:
        outs = rnn.lstm_with_input(*tensors, **options)
    else:  # lstm on the projection: the unscaled (not prescaled) fast path
        x, k, b, h0, c0, r = tensors
        outs = rnn.lstm(ops.linear(x, k, b), h0, c0, r, **options)
    weights = np.random.default_rng(8).normal(size=(N, T + 2, U)).astype(dtype)
    packed = ops.concatenate([outs[0], ops.expand_dims(outs[1], 1), ops.expand_dims(outs[2], 1)], axis=1)
    ops.sum(ops.mul(packed, weights)).backward()
    return [o.numpy() for o in outs] + [t.grad for t in tensors if t is not None]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("fused", [True, False], ids=["with_input", "on_projection"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_both_paths_agree(kernel_calls, dtype, fused, variant):
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        results.append(outputs_and_grads(inputs(1), dtype, fused, **VARIANTS[variant]))
    assert kernel_calls == {"lstm_gates": T, "lstm_gates_backward": T}  # only the compiled run calls them
    for ours, ref in zip(results[1], results[0]):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, ref, **TOL[dtype])


def test_both_paths_agree_from_zero_states_over_a_long_sequence():
    """Zero initial states (None), float32, 60 steps of 64 units: the paths do not drift apart."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 60, 16)).astype("float32")
    kernel = (rng.normal(size=(16, 256)) * 0.3).astype("float32")
    bias = np.zeros(256, "float32")
    recurrent = (rng.normal(size=(64, 256)) * 0.2).astype("float32")
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        tensors = [Tensor(a, requires_grad=True) for a in (x, kernel, bias, recurrent)]
        outs = rnn.lstm_with_input(tensors[0], tensors[1], tensors[2], None, None, tensors[3])
        ops.sum(ops.mul(outs[0], outs[0])).backward()
        results.append([o.numpy() for o in outs] + [t.grad for t in tensors])
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, **TOL["float32"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_central_differences_through_the_compiled_path(kernel_calls, variant):
    jit.set_enabled(True)
    options = VARIANTS[variant]
    err = check_gradients(lambda *t: _everything(rnn.lstm_with_input(*t, **options)), *inputs(3))
    assert err < 1e-6, f"relative error {err:.2e}"
    assert kernel_calls["lstm_gates_backward"] > 0


def test_central_differences_through_the_compiled_path_on_the_projection(kernel_calls):
    jit.set_enabled(True)
    x, k, b, h0, c0, r = inputs(4)
    proj = (x @ k + b) * 0.5
    err = check_gradients(lambda *t: _everything(rnn.lstm(*t, mask=MASK, go_backwards=True)), proj, h0, c0, r)
    assert err < 1e-6, f"relative error {err:.2e}"
    assert kernel_calls["lstm_gates_backward"] > 0


def _everything(outs):
    return ops.concatenate([ops.reshape(o, (N, -1)) for o in outs], axis=1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", ["plain", "mask-go_backwards"])
def test_a_lookups_projection_is_gathered_step_by_step_on_the_compiled_path(kernel_calls, dtype, variant):
    """lstm_with_input of an embedding lookup: on the compiled path each step gathers the projected
    table's rows into its gate rows (gather_add), on the NumPy path the whole sequence is gathered first;
    the same outputs and gradients."""
    rng = np.random.default_rng(11)
    ids = rng.integers(0, 4, (N, T)).astype(np.uint64)  # unsigned ids: the kernel gets them as signed
    _, kernel, bias, h0, c0, recurrent = inputs(12)
    arrays = [rng.normal(size=(4, F)), kernel, bias, h0, c0, recurrent]
    weights = np.random.default_rng(8).normal(size=(N, T + 2, U)).astype(dtype)
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        outs = rnn.lstm_with_input(ops.take(tensors[0], ids), *tensors[1:], **VARIANTS[variant])
        ops.sum(ops.mul(_lstm_packed(outs), weights)).backward()
        results.append([o.numpy() for o in outs] + [t.grad for t in tensors])
    assert kernel_calls == {"gather_add": T, "lstm_gates": T, "lstm_gates_backward": T}
    for ours, ref in zip(results[1], results[0]):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, ref, **TOL[dtype])


def _lstm_packed(outs):
    return ops.concatenate([outs[0], ops.expand_dims(outs[1], 1), ops.expand_dims(outs[2], 1)], axis=1)


def test_other_activations_and_other_dtypes_take_the_numpy_path(kernel_calls):
    jit.set_enabled(True)
    rnn.lstm_with_input(*[Tensor(a) for a in inputs()], activation="relu")  # the generic path
    rnn.lstm_with_input(*[Tensor(a.astype("float16")) for a in inputs()])  # no kernels for float16
    assert kernel_calls == {}


# ---------------------------------------------------------------------- kernels vs their twins


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_kernels_match_their_numpy_twins(dtype):
    kernels = kernels_module()
    rng = np.random.default_rng(6)
    n, u = 5, 7
    t = np.tanh(rng.normal(size=(n, 4 * u)) * 3).astype(dtype)
    c_prev = rng.normal(size=(n, u)).astype(dtype)
    # forward: gates and the new cell
    gates, c_new = t.copy(), np.empty_like(c_prev)
    kernels.lstm_gates(gates, c_prev, c_new)
    i, f, g, o = np.split(t, 4, axis=1)
    i, f, o = i * 0.5 + 0.5, f * 0.5 + 0.5, o * 0.5 + 0.5  # σ(z) = ½ + ½·tanh(z/2)
    np.testing.assert_allclose(gates, np.concatenate([i, f, g, o], axis=1), **TOL[dtype])
    np.testing.assert_allclose(c_new, f * c_prev + i * g, **TOL[dtype])
    # backward, with gc_prev written over gc (as the call site does)
    gh, gc = rng.normal(size=(n, u)).astype(dtype), rng.normal(size=(n, u)).astype(dtype)
    tc = np.tanh(c_new)
    d, gc_prev = np.empty_like(gates), gc.copy()
    g_out = rng.normal(size=(n, 3, u)).astype(dtype)  # the outputs' gradients, step 1 of 3 added in the kernel
    kernels.lstm_gates_backward(gh, g_out, 1, gc_prev, gates, tc, c_prev, d, gc_prev)
    gh = gh + g_out[:, 1]
    dc = gh * o * (1 - tc * tc) + gc
    expected = [dc * g * ((1 - i) * i), dc * c_prev * ((1 - f) * f), dc * i * ((1 - g) * g + (1 - g)),
                gh * tc * ((1 - o) * o)]
    np.testing.assert_allclose(d, np.concatenate(expected, axis=1), **TOL[dtype])
    np.testing.assert_allclose(gc_prev, dc * f, **TOL[dtype])
    # a step's gathered input projection plus h·R, ids wrapping as NumPy's take's do
    table, product = rng.normal(size=(3, 4 * u)).astype(dtype), rng.normal(size=(n, 4 * u)).astype(dtype)
    ids = np.array([0, 2, -1, 1, -3])
    out = np.empty_like(product)
    kernels.gather_add(table, ids, product, out)
    np.testing.assert_array_equal(out, np.take(table, ids, axis=0) + product)


# ----------------------------------------------------------------------------------- the layer


@pytest.mark.parametrize("options", [dict(return_sequences=True, return_state=True),
                                     dict(return_state=True, go_backwards=True),
                                     dict(return_sequences=True, go_backwards=True, zero_output_for_mask=True)])
def test_the_lstm_layer_on_both_paths(kernel_calls, options):
    """An LSTM layer on embedded tokens, 0 masked: outputs, states and gradients agree on both paths."""
    from shenjing.layers import LSTM, Embedding

    tokens = np.random.default_rng(7).integers(1, 9, size=(4, 6))
    tokens[0, :2] = 0  # masked steps
    tokens[2, 4:] = 0
    embed, lstm = Embedding(9, 5), LSTM(8, **options)
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        outs = lstm(embed(tokens), mask=tokens != 0)
        outs = outs if isinstance(outs, list) else [outs]
        weights = [embed.embeddings, lstm.cell.kernel, lstm.cell.recurrent_kernel, lstm.cell.bias]
        for w in weights:
            w.grad = None
        ops.sum(ops.concatenate([ops.reshape(o, (4, -1)) for o in outs], axis=1) ** 2).backward()
        results.append([o.numpy() for o in outs] + [w.grad.copy() for w in weights])
    assert kernel_calls["lstm_gates"] > 0 and kernel_calls["lstm_gates_backward"] > 0
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, **TOL["float32"])


# ---------------------------------------------------------------------- GRU (reset_after, sigmoid/tanh)


def gru_inputs(seed=0):
    """float64 arrays of gru: the projection, h0, the recurrent kernel and bias."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(N, T, 3 * U)) * 0.5, rng.normal(size=(N, U)), rng.normal(size=(U, 3 * U)) * 0.5,
            rng.normal(size=(3 * U,)) * 0.5]


@pytest.fixture
def gru_calls(monkeypatch):
    """The names of the GRU kernels called, one entry a call (the kernels still run)."""
    module = kernels_module()
    calls = []

    def counting(name, kernel):
        return lambda *args: calls.append(name) or kernel(*args)

    for name in ("gru_gates_input", "gru_gates_candidate", "gru_state", "gru_gates_backward"):
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gru_both_paths_agree(gru_calls, dtype, variant):
    weights = np.random.default_rng(8).normal(size=(N, T + 1, U)).astype(dtype)
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in gru_inputs(1)]
        outs = rnn.gru(*tensors, **VARIANTS[variant])
        packed = ops.concatenate([outs[0], ops.expand_dims(outs[1], 1)], axis=1)
        ops.sum(ops.mul(packed, weights)).backward()
        results.append([o.numpy() for o in outs] + [t.grad for t in tensors])
    # only the compiled run calls them, each once a step
    assert sorted(gru_calls) == sorted(["gru_gates_input", "gru_gates_candidate", "gru_state",
                                        "gru_gates_backward"] * T)
    for ours, ref in zip(results[1], results[0]):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, ref, **TOL[dtype])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gru_central_differences_through_the_compiled_path(gru_calls, variant):
    jit.set_enabled(True)
    err = check_gradients(lambda *t: _everything(rnn.gru(*t, **VARIANTS[variant])), *gru_inputs(3))
    assert err < 1e-6, f"relative error {err:.2e}"
    assert gru_calls


def test_gru_other_activations_and_reset_before_take_the_numpy_path(gru_calls):
    jit.set_enabled(True)
    x, h0, r, b = gru_inputs()
    for options in (dict(recurrent_activation="hard_sigmoid"), dict(activation="relu")):
        rnn.gru(Tensor(x, requires_grad=True), h0, r, b, **options)[0].sum().backward()
    rnn.gru(Tensor(x, requires_grad=True), h0, r, None, reset_after=False)[0].sum().backward()
    assert gru_calls == []
