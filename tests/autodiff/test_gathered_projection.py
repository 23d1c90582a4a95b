"""A projection of an embedding lookup projects the table and gathers (ops.linear, lstm_with_input,
the GRU/SimpleRNN layers): the same values and gradients as projecting the looked-up rows, and the
scatter-add of rows that its backward (and the lookup's own) relies on."""

import numpy as np
import pytest

from shenjing.autodiff import Tensor, check_gradients, nn, no_grad, ops, rnn
from shenjing.backend import jit
from shenjing.layers import GRU, LSTM, Dense, Embedding, Lambda, SimpleRNN
from shenjing.models import Sequential
from shenjing.utils import set_random_seed

VOCAB, FEATURES, UNITS, N, T = 6, 4, 3, 3, 5


@pytest.fixture(params=[False, True], ids=["numpy", "compiled"])
def path(request):
    jit.set_enabled(request.param)  # the conftest restores the switch
    return request.param


# --------------------------------------------------------------------- scatter-add of rows


@pytest.mark.parametrize("rows,shape", [(65, (400, 1024)), (65, (400, 64)), (7, (50, 3)), (300, (400, 256)),
                                        (4, (10, 2, 3)), (5, (0, 4)), (5, (6, 0))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scatter_add_rows_sums_each_rows_uses(path, rows, shape, dtype):
    rng = np.random.default_rng(0)
    g = rng.normal(size=shape).astype(dtype)
    idx = rng.integers(-rows, rows, shape[0])  # negative ids wrap, as in the lookup
    expected = np.zeros((rows,) + shape[1:])
    np.add.at(expected, np.where(idx < 0, idx + rows, idx), g.astype("float64"))
    out = ops._scatter_add_rows(rows, idx, g)
    assert out.dtype == dtype and out.shape == expected.shape
    # the paths sum in different orders: agreement to rounding, relative to the magnitudes summed
    scale = np.zeros_like(expected)
    np.add.at(scale, np.where(idx < 0, idx + rows, idx), np.abs(g.astype("float64")))
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(out - expected) <= 4 * eps * scale + np.finfo(dtype).tiny)


def test_scatter_add_rows_paths_take_the_wide_and_narrow_numpy_branches_alike():
    """The NumPy path sums wide rows run by run and narrow ones with one reduceat: both are the float64 sums
    rounded within a few ulp, and the compiled pass agrees with them as closely."""
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 9, 3000)
    for width in (16, ops.WIDE_ROWS, 4 * ops.WIDE_ROWS):
        g = rng.normal(size=(3000, width)).astype("float32")
        results = []
        for on in (False, True):
            jit.set_enabled(on)
            results.append(ops._scatter_add_rows(9, idx, g))
        np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-4)


def test_compiled_scatter_add_rows_refuses_an_id_out_of_range():
    jit.set_enabled(True)
    with pytest.raises(IndexError, match="out of range for 3 rows"):
        ops._scatter_add_rows(3, np.array([0, 3]), np.ones((2, 4), "float32"))
    idx = np.zeros(4096, int)
    idx[-1] = 3  # the last of many rows
    with pytest.raises(IndexError, match="out of range for 3 rows"):
        ops._scatter_add_rows(3, idx, np.ones((4096, 256), "float32"))


# --------------------------------------------------------------------------- the lookup's tag


def test_take_of_table_rows_is_tagged_and_gathered_rows_checks_it():
    table = Tensor(np.ones((VOCAB, FEATURES)), requires_grad=True)
    ids = np.array([[0, 1, 5], [2, 2, 3]])
    x = ops.take(table, ids)
    assert x._made_by[:2] == ("rows", table) and x._made_by[3] is table.data
    assert ops.gathered_rows(x, 6 + 1)[0] is table
    assert ops.gathered_rows(x, VOCAB) == (None, None)  # projecting the table would cost as much or more
    assert ops.take(table, [1, 2], axis=1)._made_by is None  # columns: no row lookup
    assert ops.gathered_rows(ops.mul(x, 1.0), 100) == (None, None)  # any op in between drops the tag


def test_no_shortcut_where_the_lookup_is_more_than_a_view_of_the_table():
    """The table is projected only while x is the recorded lookup and nothing else: not for a lookup made
    under no_grad (the table must get no gradient through it), one whose own gradient is asked for, or
    one whose table array was replaced since (set_weights)."""
    rng = np.random.default_rng(5)
    ids = rng.integers(0, VOCAB, (N, T))
    kernel = Tensor(rng.normal(size=(FEATURES, 2)), requires_grad=True)
    table = Tensor(rng.normal(size=(VOCAB, FEATURES)), requires_grad=True)
    with no_grad():
        x = ops.take(table, ids)
    assert ops.gathered_rows(x, 100) == (None, None)
    ops.sum(ops.linear(x, kernel)).backward()
    assert table.grad is None and kernel.grad.shape == (FEATURES, 2)
    with no_grad():  # all of it in inference: no gradient anywhere, the shortcut is fine
        assert ops.gathered_rows(ops.take(table, ids), 100)[0] is table

    frozen = Tensor(table.data)
    x = ops.take(frozen, ids)
    x.requires_grad = True  # the embeddings' own gradient (saliency)
    ops.sum(ops.linear(x, kernel)).backward()
    np.testing.assert_allclose(x.grad, np.broadcast_to(kernel.data.sum(1), x.shape))

    x = ops.take(frozen, ids)
    expected = x.data @ kernel.data
    frozen.data = frozen.data + 1.0  # a new array, as set_weights gives
    np.testing.assert_allclose(ops.linear(x, kernel).data, expected)


def test_a_broadcast_bias_takes_the_general_path():
    table, kernel, bias, ids = _lookup_case(6)
    results = []
    for fused in (True, False):
        b = Tensor(bias.reshape(1, -1), requires_grad=True)
        x = ops.take(Tensor(table, requires_grad=True), ids)
        ops.sum(ops.linear(x if fused else ops.mul(x, 1.0), Tensor(kernel), b)).backward()
        results.append(b.grad)
    assert results[0].shape == (1, 7)
    np.testing.assert_allclose(results[0], results[1])


# ------------------------------------------------------------------------------------ linear


def _lookup_case(seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    table = rng.normal(size=(VOCAB, FEATURES)).astype(dtype)
    kernel = (rng.normal(size=(FEATURES, 7)) * 0.5).astype(dtype)
    bias = (rng.normal(size=(7,)) * 0.5).astype(dtype)
    ids = rng.integers(-VOCAB, VOCAB, (N, T))
    return table, kernel, bias, ids


@pytest.mark.parametrize("act", [None, "relu", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_of_a_lookup_has_finite_difference_gradients(path, act, with_bias):
    table, kernel, bias, ids = _lookup_case(1)
    fused_act = None if act is None else nn.fused_activation(act)

    def fn(t, k, *b):
        return ops.linear(ops.take(t, ids), k, b[0] if b else None, act=fused_act)

    err = check_gradients(fn, table, kernel, *([bias] if with_bias else []))
    assert err < 1e-6, f"relative error {err:.2e}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", [None, "relu"])
@pytest.mark.parametrize("flat_ids", [False, True])
def test_linear_of_a_lookup_equals_linear_of_the_rows(path, dtype, act, flat_ids):
    table, kernel, bias, ids = _lookup_case(2, dtype)
    ids = ids.reshape(-1) if flat_ids else ids
    weights = np.random.default_rng(3).normal(size=ids.shape + (7,)).astype(dtype)
    results = []
    for fused in (True, False):
        tensors = [Tensor(a, requires_grad=True) for a in (table, kernel, bias)]
        x = ops.take(tensors[0], ids)
        if not fused:
            x = ops.mul(x, 1.0)
        out = ops.linear(x, tensors[1], tensors[2], act=None if act is None else nn.fused_activation(act))
        ops.sum(ops.mul(out, weights)).backward()
        assert out.dtype == dtype and out.shape == ids.shape + (7,)
        assert all(t.grad.dtype == dtype for t in tensors)
        results.append([out.numpy()] + [t.grad for t in tensors])
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, **tol)


def test_linear_of_a_lookup_keeps_a_column_major_kernels_layout():
    table, kernel, bias, ids = _lookup_case(4, "float32")
    k = Tensor(np.asfortranarray(kernel), requires_grad=True)
    t = Tensor(table, requires_grad=True)
    ops.sum(ops.linear(ops.take(t, ids), k, Tensor(bias))).backward()
    assert k.grad.flags.f_contiguous and t.grad.shape == table.shape


# --------------------------------------------------------------------------- lstm_with_input


def _lstm_arrays(seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(VOCAB, FEATURES)).astype(dtype),
            (rng.normal(size=(FEATURES, 4 * UNITS)) * 0.5).astype(dtype),
            (rng.normal(size=(4 * UNITS,)) * 0.5).astype(dtype),
            rng.normal(size=(N, UNITS)).astype(dtype), rng.normal(size=(N, UNITS)).astype(dtype),
            (rng.normal(size=(UNITS, 4 * UNITS)) * 0.5).astype(dtype)]


def _lstm_all(outs):
    return ops.concatenate([outs[0], ops.expand_dims(outs[1], 1), ops.expand_dims(outs[2], 1)], axis=1)


@pytest.mark.parametrize("options", [{}, {"go_backwards": True},
                                     {"mask": np.array([[True, True, False, True, True]] * N)},
                                     {"activation": "relu", "recurrent_activation": "hard_sigmoid"}],
                         ids=["plain", "backwards", "masked", "generic"])
def test_lstm_with_input_of_a_lookup_has_finite_difference_gradients(path, options):
    ids = np.random.default_rng(7).integers(0, VOCAB, (N, T))
    table, kernel, bias, h0, c0, r = _lstm_arrays(5)

    def fn(t, k, b, h, c, rk):
        return _lstm_all(rnn.lstm_with_input(ops.take(t, ids), k, b, h, c, rk, **options))

    err = check_gradients(fn, table, kernel, bias, h0, c0, r)
    assert err < 1e-6, f"relative error {err:.2e}"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_lstm_with_input_of_a_lookup_equals_the_rows_projection(path, dtype, with_bias):
    ids = np.random.default_rng(9).integers(0, VOCAB, (N, T))
    arrays = _lstm_arrays(6, dtype)
    weights = np.random.default_rng(8).normal(size=(N, T + 2, UNITS)).astype(dtype)
    results = []
    for fused in (True, False):
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        table, kernel, bias, h0, c0, r = tensors
        x = ops.take(table, ids)
        if not fused:
            x = ops.mul(x, 1.0)
        outs = rnn.lstm_with_input(x, kernel, bias if with_bias else None, h0, c0, r)
        ops.sum(ops.mul(_lstm_all(outs), weights)).backward()
        assert all(o.dtype == dtype for o in outs)
        results.append([o.numpy() for o in outs] + [t.grad for t in tensors if t.grad is not None])
    assert len(results[0]) == len(results[1]) == 3 + 5 + with_bias
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, **tol)


# ---------------------------------------------------------------------------------- layers


@pytest.mark.parametrize("layer", [LSTM, GRU, SimpleRNN, Dense])
def test_embedding_then_projection_trains_as_without_the_shortcut(path, layer, monkeypatch):
    """Two training steps of Embedding → layer → Dense give the same losses and weights whether the layer
    projects the table (the default) or the looked-up rows (a Lambda in between drops the lookup's tag)."""
    shortcuts = []
    grads = ops.rows_projection_grads
    monkeypatch.setattr(ops, "rows_projection_grads", lambda *a: shortcuts.append(1) or grads(*a))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, (5, 7))
    y = rng.normal(size=(5, 3)).astype("float32")
    runs = []
    for shortcut in (True, False):
        set_random_seed(1)
        layers = [Embedding(9, 4, input_shape=(7,))] + ([] if shortcut else [Lambda(lambda t: t * 1.0)])
        if layer is Dense:
            layers += [Dense(6, activation="tanh"), Lambda(lambda t: ops.mean(t, axis=1)), Dense(3)]
        else:
            layers += [layer(6), Dense(3)]
        model = Sequential(layers)
        model.compile(loss="mse", optimizer="sgd")
        losses = [model.train_on_batch(x, y) for _ in range(2)]
        runs.append((losses, model.get_weights()))
        assert len(shortcuts) == (2 if shortcut else 0)
        shortcuts.clear()
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-6)
    for ours, ref in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
