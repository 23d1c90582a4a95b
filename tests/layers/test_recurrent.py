import numpy as np
import pytest

from shenjing import backend, regularizers
from shenjing.autodiff import Tensor, numerical_gradient, ops, relative_error
from shenjing.layers.core import Dense, Input
from shenjing.layers.embedding import Masking
from shenjing.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from shenjing.models import Model, Sequential

from .harness import layer_test, regularizer_test

SHAPE = (2, 4, 3)  # batch, timesteps, features
FUSED = [SimpleRNN, LSTM, GRU]


# ---------------------------------------------------------------------------------- harness

MODES = [
    {},
    {"return_sequences": True},
    {"go_backwards": True},
    {"return_sequences": True, "go_backwards": True, "use_bias": False},
    {"activation": "relu", "return_sequences": True},
]


@pytest.mark.parametrize("layer_cls", FUSED)
@pytest.mark.parametrize("mode", MODES)
def test_layer(layer_cls, mode):
    units = 3
    out_shape = (None, 4, units) if mode.get("return_sequences") else (None, units)
    layer_test(layer_cls, dict(mode, units=units), SHAPE, out_shape, expected_weights=2 if "use_bias" in mode else 3)


@pytest.mark.parametrize("mode", [{"reset_after": False}, {"reset_after": False, "return_sequences": True,
                                                           "recurrent_activation": "hard_sigmoid"}])
def test_gru_original_convention(mode):
    layer = layer_test(GRU, dict(mode, units=3), SHAPE)
    assert layer.bias.shape == (9,)


def test_gru_reset_after_has_two_biases():
    layer = GRU(3)
    layer(np.zeros(SHAPE, "float32"))
    assert [w.shape for w in layer.weights] == [(3, 9), (3, 9), (2, 9)]
    assert [w.name for w in layer.weights] == [f"{layer.name}/gru_cell/{n}" for n in ("kernel", "recurrent_kernel",
                                                                                        "bias")]


@pytest.mark.parametrize("layer_cls", FUSED)
def test_dropout_only_in_training(layer_cls):
    layer_test(layer_cls, dict(units=3, dropout=0.4, recurrent_dropout=0.4, return_sequences=True), SHAPE,
               training_only=True)


@pytest.mark.parametrize("cell", [SimpleRNNCell, LSTMCell, GRUCell])
def test_generic_rnn_layer(cell):
    layer_test(RNN, dict(cell=cell(3), return_sequences=True), SHAPE, (None, 4, 3), expected_weights=3)


@pytest.mark.parametrize("argument,weight", [("kernel_regularizer", "kernel"),
                                             ("recurrent_regularizer", "recurrent_kernel"),
                                             ("bias_regularizer", "bias")])
@pytest.mark.parametrize("layer_cls", FUSED)
def test_regularizers(layer_cls, argument, weight):
    regularizer_test(layer_cls, {"units": 3}, SHAPE, argument, weight)


def test_activity_regularizer():
    layer = LSTM(3, activity_regularizer=regularizers.L2(0.5))
    out = layer(np.random.default_rng(0).normal(size=SHAPE).astype("float32"))
    np.testing.assert_allclose(float(layer.losses[0].data), 0.5 * (out.numpy() ** 2).sum() / 2, rtol=1e-5)


def test_constraints_are_attached():
    layer = LSTM(3, kernel_constraint="non_neg", recurrent_constraint="unit_norm")
    layer(np.zeros(SHAPE, "float32"))
    assert layer.kernel.constraint is not None and layer.recurrent_kernel.constraint is not None


def test_defaults():
    layer = LSTM(4)
    layer(np.zeros(SHAPE, "float32"))
    bias = layer.bias.numpy()
    np.testing.assert_array_equal(bias[4:8], 1)  # unit_forget_bias
    np.testing.assert_array_equal(np.delete(bias, range(4, 8)), 0)
    rk = layer.recurrent_kernel.numpy()
    np.testing.assert_allclose(rk @ rk.T, np.eye(4), atol=1e-5)  # orthogonal rows
    assert layer.get_config()["recurrent_activation"] == "sigmoid" and layer.get_config()["activation"] == "tanh"
    assert GRU(2).reset_after is True and LSTM(2, unit_forget_bias=False).unit_forget_bias is False


# ------------------------------------------------------------------------------- fused = generic


def _fused_and_generic_runs(fused, generic, x):
    """The generic RNN given the fused layer's weights; for each layer, its outputs and the gradients
    of x and of its weights for one backward pass of Σ out² + Σ last state."""
    fused(x)
    generic(x)
    generic.set_weights(fused.get_weights())
    results = []
    for layer in (fused, generic):
        x.grad = None
        outs = layer(x)
        ops.sum(ops.add(ops.sum(ops.mul(outs[0], outs[0])), ops.sum(outs[-1]))).backward()
        results.append(([o.numpy() for o in outs], x.grad.copy(), [w.grad.copy() for w in layer.weights]))
        for w in layer.weights:
            w.grad = None
    return results


@pytest.mark.parametrize("layer_cls,cell_cls,kwargs", [
    (LSTM, LSTMCell, {}),
    (GRU, GRUCell, {}),
    (GRU, GRUCell, {"reset_after": False}),
    (SimpleRNN, SimpleRNNCell, {}),
    (LSTM, LSTMCell, {"recurrent_activation": "hard_sigmoid"}),
])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_generic_rnn_equals_fused_layer(layer_cls, cell_cls, kwargs, go_backwards, float64):
    rng = np.random.default_rng(3)
    x = Tensor(rng.normal(size=(3, 5, 4)), requires_grad=True)
    mask = np.ones((3, 5), bool)
    mask[0, :2] = False
    mask[1, 3] = False
    x._keras_mask = mask
    fused = layer_cls(3, return_sequences=True, return_state=True, go_backwards=go_backwards,
                      bias_initializer="random_normal", **kwargs)
    generic = RNN(cell_cls(3, **kwargs), return_sequences=True, return_state=True, go_backwards=go_backwards)
    (outs_a, gx_a, gw_a), (outs_b, gx_b, gw_b) = _fused_and_generic_runs(fused, generic, x)
    for a, b in zip(outs_a, outs_b):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gx_a, gx_b, rtol=1e-10, atol=1e-12)
    for a, b in zip(gw_a, gw_b):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_activation_outside_the_fused_table_falls_back_to_the_cell(float64):
    x = np.random.default_rng(0).normal(size=SHAPE)
    layer = LSTM(3, activation="selu", return_sequences=True)
    out = layer(x)
    generic = RNN(LSTMCell(3, activation="selu"), return_sequences=True)
    generic(x)
    generic.set_weights(layer.get_weights())
    np.testing.assert_allclose(out.numpy(), generic(x).numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------------- states


def test_return_state_shapes_and_values():
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    out, h, c = LSTM(5, return_state=True)(x)
    assert out.shape == h.shape == c.shape == (2, 5)
    np.testing.assert_array_equal(out.numpy(), h.numpy())
    seq, h = GRU(5, return_sequences=True, return_state=True)(x)
    assert seq.shape == (2, 4, 5)
    np.testing.assert_array_equal(seq.numpy()[:, -1], h.numpy())
    assert LSTM(5, return_state=True).compute_output_shape((None, 4, 3)) == [(None, 5), (None, 5), (None, 5)]


def test_initial_state_and_its_gradient(float64):
    rng = np.random.default_rng(1)
    x = rng.normal(size=SHAPE)
    h0, c0 = Tensor(rng.normal(size=(2, 3)), requires_grad=True), Tensor(rng.normal(size=(2, 3)), requires_grad=True)
    layer = LSTM(3, return_sequences=True)
    out = layer(x, initial_state=[h0, c0])
    assert not np.allclose(out.numpy(), layer(x).numpy())
    np.testing.assert_allclose(layer([x, h0, c0]).numpy(), out.numpy())  # the list form
    ops.sum(out).backward()
    assert h0.grad.shape == (2, 3) and np.abs(c0.grad).sum() > 0

    def value(h, c):
        return float(layer(x, initial_state=[h, c]).data.sum())

    numeric = numerical_gradient(value, [h0.data.copy(), c0.data.copy()])
    assert max(relative_error(h0.grad, numeric[0]), relative_error(c0.grad, numeric[1])) < 1e-6


def test_initial_state_errors():
    x = np.zeros(SHAPE, "float32")
    layer = LSTM(3, name="encoder")
    with pytest.raises(ValueError, match=r"LSTM 'encoder': initial_state expected 2 state\(s\).*\(2, 3\).*got 1"):
        layer(x, initial_state=[np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"'encoder'.*got 2 of shape\(s\) \(2, 4\), \(2, 3\)"):
        layer(x, initial_state=[np.zeros((2, 4)), np.zeros((2, 3))])


def test_symbolic_with_initial_state_and_return_state():
    inp = Input(shape=(4, 3))
    h = Input(shape=(5,))
    c = Input(shape=(5,))
    seq, hf, cf = LSTM(5, return_sequences=True, return_state=True)(inp, initial_state=[h, c])
    assert seq.shape == (None, 4, 5) and hf.shape == (None, 5)
    model = Model([inp, h, c], [seq, hf])
    rng = np.random.default_rng(0)
    outs = model.predict([rng.normal(size=SHAPE), np.zeros((2, 5)), np.ones((2, 5))], verbose=0)
    assert outs[0].shape == (2, 4, 5) and outs[1].shape == (2, 5)


def test_stateful_carries_states_across_calls_and_reset_clears():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    layer = GRU(4, stateful=True, return_sequences=True, batch_input_shape=(2, None, 3))
    first = layer(x[:, :3]).numpy()
    second = layer(x[:, 3:]).numpy()
    whole = GRU(4, return_sequences=True)
    whole(x)
    whole.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole(x).numpy(), rtol=1e-5, atol=1e-6)
    assert layer.states[0].shape == (2, 4)
    layer.reset_states()
    np.testing.assert_array_equal(layer.states[0], 0)
    np.testing.assert_allclose(layer(x[:, :3]).numpy(), first, rtol=1e-6)
    with pytest.raises(ValueError, match="stateful layer runs on batches of 2"):
        layer(x[:1, :3])
    with pytest.raises(AttributeError, match="stateful"):
        GRU(4).reset_states()


def test_stateful_in_a_model_and_lstm_states():
    model = Sequential([LSTM(3, stateful=True, batch_input_shape=(2, 4, 3)), Dense(1)])
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    a = model.predict(x, verbose=0)
    b = model.predict(x, verbose=0)
    assert not np.allclose(a, b)  # the second call starts from the first's final states
    model.layers[0].reset_states()
    np.testing.assert_allclose(model.predict(x, verbose=0), a, rtol=1e-6)
    assert len(model.layers[0].states) == 2


# ----------------------------------------------------------------------------------- masks


def masked_input(values, lengths):
    """Post-padded sequences: the steps past each length are zero."""
    x = np.array(values, dtype="float64")
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    return x


@pytest.mark.parametrize("layer_cls", FUSED)
def test_masking_equals_running_the_real_steps(layer_cls, float64):
    rng = np.random.default_rng(0)
    x = masked_input(rng.normal(size=(3, 5, 3)), [5, 3, 1])
    layer = layer_cls(4, return_sequences=True)
    out = layer(Masking()(x))
    np.testing.assert_array_equal(out._keras_mask, np.abs(x).sum(-1) > 0)
    last = layer_cls(4)
    last(x)
    last.set_weights(layer.get_weights())
    final = last(Masking()(x)).numpy()
    for b, n in enumerate([5, 3, 1]):
        ref = layer(x[b:b + 1, :n]).numpy()[0]
        np.testing.assert_allclose(out.numpy()[b, :n], ref, rtol=1e-12)
        np.testing.assert_allclose(out.numpy()[b, n:], np.repeat(ref[-1:], 5 - n, axis=0), rtol=1e-12)
        np.testing.assert_allclose(final[b], ref[-1], rtol=1e-12)
    assert last(Masking()(x))._keras_mask is None  # return_sequences=False drops the mask


@pytest.mark.parametrize("layer_cls", FUSED)
def test_masked_gradients(layer_cls, float64):
    rng = np.random.default_rng(2)
    x = masked_input(rng.normal(size=SHAPE), [4, 2])
    layer = layer_cls(3, return_sequences=True, go_backwards=True)
    masking = Masking()
    R = rng.normal(size=(2, 4, 3))
    xt = Tensor(x, requires_grad=True)
    ops.sum(ops.mul(layer(masking(xt)), R)).backward()
    weights = layer.trainable_weights
    analytic = [xt.grad] + [w.grad for w in weights]

    def value(*_):
        return float((layer(masking(Tensor(x))).data * R).sum())

    numeric = numerical_gradient(value, [x] + [w.data for w in weights])
    real = np.abs(x).sum(-1) > 0  # nudging a padded zero would unmask its step: compare the real steps
    analytic[0], numeric[0] = analytic[0][real], numeric[0][real]
    assert max(relative_error(a, n) for a, n in zip(analytic, numeric)) < 1e-6
    np.testing.assert_array_equal(xt.grad[1, 2:], 0)


def test_mask_errors():
    x = Tensor(np.zeros(SHAPE, "float32"))
    x._keras_mask = np.ones((2, 3), bool)
    with pytest.raises(ValueError, match=r"LSTM 'rnn_a': expected a mask of shape \(batch, timesteps\) = \(2, 4\), "
                                         r"got shape \(2, 3\)"):
        LSTM(3, name="rnn_a")(x)


def test_two_dimensional_input_is_rejected():
    with pytest.raises(ValueError, match=r"GRU 'g': expected an input of rank 3 \(batch, timesteps, features\), got "
                                         r"shape \(2, 3\)"):
        GRU(3, name="g")(np.zeros((2, 3), "float32"))
    layer = SimpleRNN(2, name="s")
    layer(np.zeros(SHAPE, "float32"))
    with pytest.raises(ValueError, match="'s': expected an input of rank 3"):
        layer(np.zeros((2, 3), "float32"))


# ------------------------------------------------------------------------------ conventions


def test_keras1_spellings():
    layer = LSTM(output_dim=4, init="he_normal", inner_init="orthogonal", inner_activation="hard_sigmoid",
                 W_regularizer=regularizers.L2(0.1), U_regularizer="l2", b_regularizer=None, dropout_W=0.1,
                 dropout_U=0.2, consume_less="gpu", input_dim=3, input_length=4)
    assert layer.units == 4 and layer.dropout == 0.1 and layer.recurrent_dropout == 0.2
    assert layer._batch_input_shape == (None, 4, 3)
    model = Sequential([layer])
    assert model.output_shape == (None, 4)
    assert len(layer.losses) == 2
    assert layer.get_config()["recurrent_activation"] == "hard_sigmoid"
    assert GRU(output_dim=2, input_dim=3)._batch_input_shape == (None, None, 3)
    assert not LSTM(2, forget_bias_init="zero").unit_forget_bias


def test_time_major():
    x = np.random.default_rng(0).normal(size=SHAPE).astype("float32")
    batch_major = LSTM(3, return_sequences=True)
    out = batch_major(x)
    time_major = LSTM(3, return_sequences=True, time_major=True)
    time_major(x.transpose(1, 0, 2))
    time_major.set_weights(batch_major.get_weights())
    np.testing.assert_allclose(time_major(x.transpose(1, 0, 2)).numpy(), out.numpy().transpose(1, 0, 2), rtol=1e-6)


def test_unroll_is_accepted_and_config_round_trip():
    layer = GRU(3, unroll=True, return_state=True, go_backwards=True, dropout=0.1, seed=3)
    clone = GRU.from_config(layer.get_config())
    assert clone.unroll and clone.return_state and clone.go_backwards and clone.dropout == 0.1 and clone.seed == 3
    generic = RNN(LSTMCell(2), return_sequences=True)
    clone = RNN.from_config(generic.get_config())
    assert isinstance(clone.cell, LSTMCell) and clone.return_sequences


def test_cells_directly():
    cell = LSTMCell(3)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    h, (h2, c) = cell(x, [np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32")])
    assert h.shape == c.shape == (2, 3) and h is h2
    assert cell.state_size == [3, 3] and GRUCell(2).state_size == 2


def test_custom_cell_in_generic_rnn():
    from shenjing.layers.base import Layer

    class Accumulate(Layer):
        """A cell whose state is the running sum of its inputs."""

        state_size = 2

        def call(self, inputs, states):
            total = ops.add(states[0], inputs)
            return total, [total]

    x = np.arange(12, dtype="float32").reshape(2, 3, 2)
    out = RNN(Accumulate(), return_sequences=True)(x)
    np.testing.assert_allclose(out.numpy(), np.cumsum(x, axis=1))


# ------------------------------------------------------------------------------ end to end


def test_lstm_learns_to_sum_a_sequence():
    backend.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(256, 5, 1)).astype("float32")
    y = x.sum(axis=1)
    model = Sequential([LSTM(12, input_shape=(5, 1)), Dense(1)])
    model.compile("adam", "mse")
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=25, batch_size=32, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.05 * before, (before, after)


@pytest.mark.parametrize("use_bias", [True, False])
def test_fused_lstm_float32_matches_the_cell_and_stays_float32(use_bias):
    """The LSTM layer's fused node (projection inside, sigmoid/tanh fast path) in float32 agrees with the
    step-by-step LSTMCell, outputs and every gradient float32."""
    rng = np.random.default_rng(11)
    x = Tensor(rng.normal(size=(4, 7, 5)).astype("float32"), requires_grad=True)
    fused = LSTM(6, return_sequences=True, return_state=True, use_bias=use_bias, bias_initializer="random_normal")
    generic = RNN(LSTMCell(6, use_bias=use_bias), return_sequences=True, return_state=True)
    results = []
    for outs, gx, gw in _fused_and_generic_runs(fused, generic, x):
        assert all(o.dtype == np.float32 for o in outs) and gx.dtype == np.float32
        assert all(g.dtype == np.float32 for g in gw)
        results.append(outs + [gx] + gw)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
