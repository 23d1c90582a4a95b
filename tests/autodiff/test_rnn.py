"""The fused recurrent primitives (shenjing.autodiff.rnn): central differences, masking semantics,
and PyTorch as an oracle for the LSTM, GRU and SimpleRNN layers built on them.

Weight mapping to torch (torch stores (out, in) matrices, Keras (in, out): transpose them):

- LSTM: Keras gates i, f, c, o = torch's i, f, g, o (same order). weight_ih = kernelᵀ,
  weight_hh = recurrent_kernelᵀ, bias_ih = bias, bias_hh = 0 (Keras has one bias).
- GRU: Keras z, r, h vs torch r, z, n: permute the gate blocks [z, r, h] -> [r, z, h].
  torch's GRU is Keras's reset_after=True: bias_ih = bias[0] (input bias), bias_hh = bias[1]
  (recurrent bias), both permuted. (reset_after=False has no torch counterpart; it is checked
  against the step-by-step GRUCell.)
- SimpleRNN: torch.nn.RNN (tanh), weight_ih = kernelᵀ, weight_hh = recurrent_kernelᵀ, bias_ih = bias,
  bias_hh = 0.
"""

import numpy as np
import pytest

from shenjing import backend
from shenjing.autodiff import Tensor, check_gradients, ops, rnn

N, T, U = 2, 4, 3
MASK = np.array([[True, False, True, True], [False, True, False, True]])
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3, "gru_reset_before": 3}


def case(kind, seed=0):
    """float64 inputs of a primitive: x_proj, the initial states, the recurrent kernel (and bias)."""
    rng = np.random.default_rng(seed)
    g = GATES[kind]
    arrays = [rng.normal(size=(N, T, g * U)) * 0.5, rng.normal(size=(N, U))]
    if kind == "lstm":
        arrays.append(rng.normal(size=(N, U)))
    arrays.append(rng.normal(size=(U, g * U)) * 0.5)
    if kind == "gru":
        arrays.append(rng.normal(size=(3 * U,)) * 0.5)
    return arrays


def run(kind, *tensors, **options):
    if kind == "simple_rnn":
        return rnn.simple_rnn(*tensors, **options)
    if kind == "lstm":
        return rnn.lstm(*tensors, **options)
    if kind == "gru":
        return rnn.gru(*tensors, reset_after=True, **options)
    return rnn.gru(*tensors, recurrent_bias=None, reset_after=False, **options)


def everything(outs):
    """The output sequence and every final state as one tensor (so one check covers all of them)."""
    return ops.concatenate([ops.reshape(o, (N, -1)) for o in outs], axis=1)


# ------------------------------------------------------------------------ central differences


@pytest.mark.parametrize("kind", list(GATES))
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_gradients(kind, masked, go_backwards):
    options = dict(mask=MASK if masked else None, go_backwards=go_backwards)
    err = check_gradients(lambda *t: everything(run(kind, *t, **options)), *case(kind))
    assert err < 1e-6, f"{kind}: relative error {err:.2e}"


@pytest.mark.parametrize("kind", list(GATES))
def test_gradients_with_recurrent_dropout_and_zero_output_for_mask(kind):
    mask = np.random.default_rng(5).uniform(0.5, 1.5, (N, U))
    options = dict(mask=MASK, recurrent_dropout_mask=mask, zero_output_for_mask=True)
    err = check_gradients(lambda *t: everything(run(kind, *t, **options)), *case(kind, seed=1))
    assert err < 1e-6, f"{kind}: relative error {err:.2e}"


@pytest.mark.parametrize("activation,recurrent", [("hard_sigmoid", "hard_sigmoid"), ("relu", "sigmoid"),
                                                  ("linear", "hard_sigmoid")])
def test_gradients_other_activations(activation, recurrent):
    arrays = case("lstm", seed=2)
    err = check_gradients(lambda *t: everything(rnn.lstm(*t, recurrent_activation=recurrent, activation=activation)),
                          *arrays)
    assert err < 1e-6
    arrays = case("gru", seed=3)
    err = check_gradients(lambda *t: everything(rnn.gru(*t, recurrent_activation=recurrent, activation=activation)),
                          *arrays)
    assert err < 1e-6
    arrays = case("simple_rnn", seed=4)
    assert check_gradients(lambda *t: everything(rnn.simple_rnn(*t, activation=activation)), *arrays) < 1e-6


def test_one_node_for_the_whole_sequence():
    tensors = [Tensor(a, requires_grad=True) for a in case("lstm")]
    outputs, h, c = rnn.lstm(*tensors)
    (node,) = outputs._parents
    assert h._parents == (node,) and c._parents == (node,)
    assert node._parents == tuple(tensors)


@pytest.mark.parametrize("kind", list(GATES) + ["lstm_with_input"])
@pytest.mark.parametrize("options", [{}, dict(mask=MASK, go_backwards=True),
                                     dict(mask=MASK, zero_output_for_mask=True)])
def test_without_states_the_node_is_the_time_major_outputs(kind, options):
    """``return_states=False``: one tensor, the node itself, (batch, time, units) laid out time-major, with
    the same outputs and, for a weighting of them, the same gradients of every input as with the states."""
    arrays = with_input_case(3) if kind == "lstm_with_input" else case(kind)
    primitive = (lambda *t, **o: rnn.lstm_with_input(*t, **o)) if kind == "lstm_with_input" else \
        (lambda *t, **o: run(kind, *t, **o))
    weights = np.random.default_rng(3).normal(size=(N, T, U))
    results = []
    for states in (True, False):
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        outs = primitive(*tensors, return_states=states, **options)
        assert len(outs) == (1 if not states else 2 + (kind in ("lstm", "lstm_with_input")))
        if not states:
            (node,) = outs
            assert node._parents == tuple(tensors) and np.swapaxes(node.data, 0, 1).flags.c_contiguous
        ops.sum(ops.mul(outs[0], weights)).backward()
        results.append([outs[0].numpy()] + [t.grad for t in tensors])
    for ours, ref in zip(*results):
        np.testing.assert_array_equal(ours, ref)
    err = check_gradients(lambda *t: primitive(*t, return_states=False, **options)[0], *arrays)
    assert err < 1e-6, f"{kind}: relative error {err:.2e}"


# --------------------------------------------------------------------------- semantics


def test_masked_steps_carry_the_state_and_repeat_the_output():
    x, h0, c0, R = case("lstm")
    outputs, h, c = rnn.lstm(x, h0, c0, R, mask=MASK)
    full, _, _ = rnn.lstm(x, h0, c0, R)
    out = outputs.numpy()
    # sample 0: step 1 masked -> repeats step 0's output; the final state is the last step's
    np.testing.assert_array_equal(out[0, 1], out[0, 0])
    np.testing.assert_allclose(out[0, 0], full.numpy()[0, 0])
    # sample 1: step 0 masked -> zeros (no real step yet); step 1 starts from h0, c0
    np.testing.assert_array_equal(out[1, 0], 0)
    np.testing.assert_array_equal(out[1, 2], out[1, 1])
    np.testing.assert_allclose(h.numpy(), out[:, -1])
    # the same as running only the real steps
    for b in range(N):
        steps = np.flatnonzero(MASK[b])
        ref, rh, rc = rnn.lstm(x[b:b + 1, steps], h0[b:b + 1], c0[b:b + 1], R)
        np.testing.assert_allclose(out[b, steps], ref.numpy()[0], rtol=1e-12)
        np.testing.assert_allclose(c.numpy()[b], rc.numpy()[0], rtol=1e-12)


def test_zero_output_for_mask_and_no_gradient_through_masked_steps():
    x, h0, R = case("simple_rnn")
    xt = Tensor(x, requires_grad=True)
    outputs, h = rnn.simple_rnn(xt, h0, R, mask=MASK, zero_output_for_mask=True)
    np.testing.assert_array_equal(outputs.numpy()[~MASK], 0)
    ops.sum(outputs).backward()
    np.testing.assert_array_equal(xt.grad[~MASK], 0)
    assert np.all(xt.grad[MASK] != 0)


def test_go_backwards_runs_the_reversed_sequence():
    x, h0, R, b = case("gru")
    backwards, hb = rnn.gru(x, h0, R, b, go_backwards=True)
    forwards, hf = rnn.gru(x[:, ::-1].copy(), h0, R, b)
    np.testing.assert_allclose(backwards.numpy(), forwards.numpy(), rtol=1e-12)
    np.testing.assert_allclose(hb.numpy(), hf.numpy(), rtol=1e-12)


@pytest.mark.parametrize("recurrent_activation", ["sigmoid", "hard_sigmoid"])
def test_float32_stays_float32(recurrent_activation):
    tensors = [Tensor(a.astype("float32"), requires_grad=True) for a in case("lstm")]
    outs = rnn.lstm(*tensors, recurrent_activation=recurrent_activation, mask=MASK)
    assert all(o.dtype == np.float32 for o in outs)
    ops.sum(outs[0]).backward()
    assert all(t.grad.dtype == np.float32 for t in tensors)


def test_shape_errors():
    x, h0, c0, R = case("lstm")
    with pytest.raises(ValueError, match="recurrent_kernel must have shape"):
        rnn.lstm(x, h0, c0, R[:, :-1])
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn.lstm(x, h0[:, :2], c0, R)
    with pytest.raises(ValueError, match="mask must have shape"):
        rnn.lstm(x, h0, c0, R, mask=MASK[:, :3])
    with pytest.raises(ValueError, match="x_proj must be"):
        rnn.lstm(x[0], h0, c0, R)
    with pytest.raises(ValueError, match="activations"):
        rnn.lstm(x, h0, c0, R, activation="selu")


# ------------------------------------------------------------------------------ torch oracle

def _gru_to_torch(a, units):
    """Keras's gate blocks z, r, h -> torch's r, z, n along the last axis."""
    return np.concatenate([a[..., units:2 * units], a[..., :units], a[..., 2 * units:]], axis=-1)


def _compare_with_torch(layer_cls, torch_cls, to_torch, kwargs):
    """Outputs, final states and the gradients of the input, the initial states and every weight agree
    with torch's module on the same float64 weights."""
    torch = pytest.importorskip("torch")
    backend.set_floatx("float64")
    rng = np.random.default_rng(7)
    batch, steps, features, units = 3, 5, 4, 6
    x = rng.normal(size=(batch, steps, features))
    layer = layer_cls(units, return_sequences=True, return_state=True, bias_initializer="random_normal", **kwargs)
    n_states = 2 if layer_cls.__name__ == "LSTM" else 1
    states = [rng.normal(size=(batch, units)) * 0.5 for _ in range(n_states)]
    xt = Tensor(x, requires_grad=True)
    st = [Tensor(s, requires_grad=True) for s in states]
    outs = layer(xt, initial_state=st)
    module = torch_cls(features, units, batch_first=True).double()
    kernel, recurrent, bias = layer.get_weights()
    with torch.no_grad():
        for name, value in to_torch(kernel, recurrent, bias, units).items():
            getattr(module, name).copy_(torch.tensor(value))
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s[None], requires_grad=True) for s in states]
    seq, final = module(tx, tuple(ts) if n_states == 2 else ts[0])
    finals = list(final) if n_states == 2 else [final]
    np.testing.assert_allclose(outs[0].numpy(), seq.detach().numpy(), rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(outs[1:], finals):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy()[0], rtol=1e-10, atol=1e-12)
    weights = [rng.normal(size=o.shape) for o in outs]
    total = None
    for o, w in zip(outs, weights):
        term = ops.sum(ops.mul(o, w))
        total = term if total is None else ops.add(total, term)
    total.backward()
    ref = sum((t * torch.tensor(w if t.ndim == 3 else w[None])).sum() for t, w in zip([seq] + finals, weights))
    ref.backward()
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for s, t in zip(st, ts):
        np.testing.assert_allclose(s.grad, t.grad.numpy()[0], rtol=1e-10, atol=1e-12)
    grads = to_torch(layer.kernel.grad, layer.recurrent_kernel.grad, layer.bias.grad, units)
    for name, value in grads.items():
        if name == "bias_hh_l0" and layer_cls.__name__ != "GRU":
            # Keras's single bias plays torch's b_ih + b_hh: their gradients are equal
            value = grads["bias_ih_l0"]
        np.testing.assert_allclose(value, getattr(module, name).grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def _lstm_to_torch(kernel, recurrent, bias, units):
    return {"weight_ih_l0": kernel.T, "weight_hh_l0": recurrent.T, "bias_ih_l0": bias,
            "bias_hh_l0": np.zeros_like(bias)}


def _gru_to_torch_weights(kernel, recurrent, bias, units):
    return {"weight_ih_l0": _gru_to_torch(kernel, units).T, "weight_hh_l0": _gru_to_torch(recurrent, units).T,
            "bias_ih_l0": _gru_to_torch(bias[0], units), "bias_hh_l0": _gru_to_torch(bias[1], units)}


def test_lstm_matches_torch():
    torch = pytest.importorskip("torch")
    from shenjing.layers.recurrent import LSTM

    _compare_with_torch(LSTM, torch.nn.LSTM, _lstm_to_torch, {})


def test_gru_matches_torch():
    torch = pytest.importorskip("torch")
    from shenjing.layers.recurrent import GRU

    _compare_with_torch(GRU, torch.nn.GRU, _gru_to_torch_weights, {"reset_after": True})


def test_simple_rnn_matches_torch():
    torch = pytest.importorskip("torch")
    from shenjing.layers.recurrent import SimpleRNN

    _compare_with_torch(SimpleRNN, torch.nn.RNN, _lstm_to_torch, {})


# ------------------------------------------------------------------- lstm_with_input (projection inside)

F = 5


def with_input_case(seed=0, bias=True):
    """float64 inputs of lstm_with_input: x, kernel, bias (or not), h0, c0, recurrent kernel."""
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(N, T, F)), rng.normal(size=(F, 4 * U)) * 0.5]
    if bias:
        arrays.append(rng.normal(size=(4 * U,)) * 0.5)
    arrays += [rng.normal(size=(N, U)), rng.normal(size=(N, U)), rng.normal(size=(U, 4 * U)) * 0.5]
    return arrays


def _with_input(arrays, bias, **options):
    if bias:
        return rnn.lstm_with_input(*arrays, **options)
    x, k, h0, c0, r = arrays
    return rnn.lstm_with_input(x, k, None, h0, c0, r, **options)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_lstm_with_input_gradients(bias, masked, go_backwards):
    options = dict(mask=MASK if masked else None, go_backwards=go_backwards)
    err = check_gradients(lambda *t: everything(_with_input(t, bias, **options)), *with_input_case(3, bias))
    assert err < 1e-6, f"relative error {err:.2e}"


@pytest.mark.parametrize("activation,recurrent", [("tanh", "sigmoid"), ("relu", "hard_sigmoid"),
                                                  ("linear", "sigmoid")])
def test_lstm_with_input_gradients_dropout_and_other_activations(activation, recurrent):
    rdm = np.random.default_rng(5).uniform(0.5, 1.5, (N, U))
    options = dict(mask=MASK, recurrent_dropout_mask=rdm, zero_output_for_mask=True, activation=activation,
                   recurrent_activation=recurrent)
    err = check_gradients(lambda *t: everything(_with_input(t, True, **options)), *with_input_case(4))
    assert err < 1e-6, f"relative error {err:.2e}"


@pytest.mark.parametrize("activation,recurrent", [("tanh", "sigmoid"), ("relu", "hard_sigmoid")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lstm_with_input_equals_lstm_on_the_projection(activation, recurrent, dtype):
    """The same outputs, final states and gradients (of x, kernel, bias, states, recurrent kernel) as
    lstm(x @ kernel + bias, …) built from separate ops."""
    arrays = [a.astype(dtype) for a in with_input_case(6)]
    options = dict(mask=MASK, activation=activation, recurrent_activation=recurrent)
    weights = np.random.default_rng(8).normal(size=(N, T + 2, U)).astype(dtype)
    results = []
    for fused in (True, False):
        tensors = [Tensor(a, requires_grad=True) for a in arrays]
        if fused:
            outs = rnn.lstm_with_input(*tensors, **options)
        else:
            x, k, b, h0, c0, r = tensors
            outs = rnn.lstm(ops.linear(x, k, b), h0, c0, r, **options)
        total = ops.sum(ops.mul(ops.concatenate([outs[0], ops.expand_dims(outs[1], 1),
                                                 ops.expand_dims(outs[2], 1)], axis=1), weights))
        total.backward()
        assert all(o.dtype == dtype for o in outs) and all(t.grad.dtype == dtype for t in tensors)
        results.append([o.numpy() for o in outs] + [t.grad for t in tensors])
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, **tol)


def test_lstm_with_input_backward_twice_with_retain_graph():
    """The gates are computed in the projection's own rows; the backward only reads them, so a second
    backward (retain_graph) gives the same gradients."""
    tensors = [Tensor(a, requires_grad=True) for a in with_input_case(3)]
    outputs, h, c = rnn.lstm_with_input(*tensors)
    total = ops.add(ops.sum(ops.square(outputs)), ops.sum(c))
    total.backward(retain_graph=True)
    first = [t.grad.copy() for t in tensors]
    for t in tensors:
        t.grad = None
    total.backward()
    for t, g in zip(tensors, first):
        np.testing.assert_array_equal(t.grad, g)


def test_lstm_with_input_one_node_and_shape_errors():
    tensors = [Tensor(a, requires_grad=True) for a in with_input_case()]
    outputs, h, c = rnn.lstm_with_input(*tensors)
    (node,) = outputs._parents
    assert h._parents == (node,) and c._parents == (node,) and node._parents == tuple(tensors)
    x, k, b, h0, c0, r = with_input_case()
    with pytest.raises(ValueError, match="x must be"):
        rnn.lstm_with_input(x[0], k, b, h0, c0, r)
    with pytest.raises(ValueError, match="kernel must have shape"):
        rnn.lstm_with_input(x, k[:-1], b, h0, c0, r)
    with pytest.raises(ValueError, match="bias must have shape"):
        rnn.lstm_with_input(x, k, b[:-1], h0, c0, r)
    with pytest.raises(ValueError, match="recurrent_kernel must have shape"):
        rnn.lstm_with_input(x, k, b, h0, c0, r[:, :-1])
    with pytest.raises(ValueError, match="c0 must have shape"):
        rnn.lstm_with_input(x, k, b, h0, c0[:, :2], r)


def test_lstm_fast_path_saturated_gates_stay_finite():
    """Large pre-activations (σ and tanh saturated) give finite outputs and gradients in float32."""
    rng = np.random.default_rng(9)
    x = Tensor((rng.normal(size=(N, T, 4 * U)) * 60).astype("float32"), requires_grad=True)
    r = Tensor((rng.normal(size=(U, 4 * U)) * 30).astype("float32"), requires_grad=True)
    outs = rnn.lstm(x, None, None, r)
    ops.sum(outs[0]).backward()
    assert np.isfinite(outs[0].numpy()).all() and np.isfinite(x.grad).all() and np.isfinite(r.grad).all()
    assert np.abs(outs[0].numpy()).max() <= 1
