import numpy as np
import pytest

from shenjing.autodiff import Tensor, ops
from shenjing.layers.convolutional import Conv1D
from shenjing.layers.core import Dense, Input
from shenjing.layers.embedding import Masking
from shenjing.layers.recurrent import GRU, LSTM, SimpleRNN
from shenjing.layers.wrappers import Bidirectional, RepeatVector, TimeDistributed
from shenjing.models import Model, Sequential

from .harness import layer_test

SHAPE = (2, 4, 3)


def data(shape=SHAPE, seed=0, dtype="float32"):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


# ---------------------------------------------------------------------------- RepeatVector


def test_repeat_vector():
    layer_test(RepeatVector, {"n": 3}, (2, 4), (None, 3, 4))
    x = data((2, 4))
    out = RepeatVector(3)(x).numpy()
    np.testing.assert_array_equal(out, np.repeat(x[:, None], 3, axis=1))
    with pytest.raises(ValueError, match=r"RepeatVector 'rv': expected an input of rank 2 \(batch, features\)"):
        RepeatVector(2, name="rv")(data())


# ------------------------------------------------------------------------- TimeDistributed


def test_time_distributed_dense():
    layer = layer_test(TimeDistributed, {"layer": Dense(2, activation="tanh")}, SHAPE, (None, 4, 2),
                       expected_weights=2)
    assert layer.layer.kernel.shape == (3, 2)


def test_time_distributed_equals_the_layer_at_each_step():
    dense = Dense(5)
    wrapper = TimeDistributed(dense)
    x = data()
    out = wrapper(x).numpy()
    for t in range(4):
        np.testing.assert_allclose(out[:, t], dense(x[:, t]).numpy(), rtol=1e-6)


def test_time_distributed_on_sequences_of_sequences():
    x = data((2, 3, 6, 2))
    layer = TimeDistributed(Conv1D(4, 3))
    assert layer(x).shape == (2, 3, 4, 4)
    assert layer.compute_output_shape((None, 3, 6, 2)) == (None, 3, 4, 4)


def test_time_distributed_passes_the_mask_and_errors():
    x = data()
    x[1, 2:] = 0
    out = TimeDistributed(Dense(2))(Masking()(x))
    np.testing.assert_array_equal(out._keras_mask, [[True] * 4, [True, True, False, False]])
    with pytest.raises(ValueError, match=r"TimeDistributed 'td': expected an input of rank >= 3 \(batch, time, …\), "
                                         r"got shape \(2, 3\)"):
        TimeDistributed(Dense(2), name="td")(data((2, 3)))


def test_time_distributed_in_a_functional_model():
    inp = Input(shape=(4, 3))
    out = TimeDistributed(Dense(2))(LSTM(5, return_sequences=True)(inp))
    assert out.shape == (None, 4, 2)
    assert Model(inp, out).predict(data(), verbose=0).shape == (2, 4, 2)


# --------------------------------------------------------------------------- Bidirectional


@pytest.mark.parametrize("merge_mode,units", [("concat", 6), ("sum", 3), ("mul", 3), ("ave", 3)])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_merge_modes(merge_mode, units, return_sequences):
    expected = (None, 4, units) if return_sequences else (None, units)
    layer_test(Bidirectional, {"layer": LSTM(3, return_sequences=return_sequences), "merge_mode": merge_mode}, SHAPE,
               expected, expected_weights=6)


def test_bidirectional_is_forward_plus_reversed_backward():
    x = data()
    layer = Bidirectional(GRU(3, return_sequences=True), merge_mode=None)
    forward, backward = layer(x)
    np.testing.assert_allclose(forward.numpy(), layer.forward_layer(x).numpy(), rtol=1e-6)
    np.testing.assert_allclose(backward.numpy(), layer.backward_layer(x).numpy()[:, ::-1], rtol=1e-6)
    # the backward direction equals a forward GRU run on the reversed input, read backwards
    plain = GRU(3, return_sequences=True)
    plain(x)
    plain.set_weights(layer.backward_layer.get_weights())
    np.testing.assert_allclose(backward.numpy(), plain(x[:, ::-1].copy()).numpy()[:, ::-1], rtol=1e-5, atol=1e-6)
    assert layer.forward_layer.name.startswith("forward_") and layer.backward_layer.go_backwards
    assert [w.name.split("/")[0] for w in layer.weights] == [layer.forward_layer.name] * 3 + \
        [layer.backward_layer.name] * 3
    concat = Bidirectional(GRU(3, return_sequences=True))
    concat(x)
    concat.set_weights(layer.get_weights())
    np.testing.assert_allclose(concat(x).numpy(), np.concatenate([forward.numpy(), backward.numpy()], -1),
                               rtol=1e-6)


def test_bidirectional_return_state_and_initial_state():
    x = data()
    layer = Bidirectional(LSTM(3, return_state=True))
    outs = layer(x)
    assert len(outs) == 5 and outs[0].shape == (2, 6) and all(o.shape == (2, 3) for o in outs[1:])
    np.testing.assert_allclose(outs[0].numpy()[:, :3], outs[1].numpy())  # forward output = forward h
    states = [data((2, 3), seed=s) for s in range(4)]
    started = layer(x, initial_state=states)
    ref_forward = layer.forward_layer(x, initial_state=states[:2])
    np.testing.assert_allclose(started[1].numpy(), ref_forward[1].numpy(), rtol=1e-6)
    assert layer.compute_output_shape((None, 4, 3)) == [(None, 6), (None, 3), (None, 3), (None, 3), (None, 3)]
    with pytest.raises(ValueError, match="initial_state expected 2"):
        layer(x, initial_state=states[:2])
    none_merge = Bidirectional(SimpleRNN(2, return_state=True, return_sequences=True), merge_mode=None)
    assert len(none_merge(x)) == 4


def test_bidirectional_masks():
    x = data((3, 5, 3), dtype="float64")
    lengths = [5, 3, 2]
    for b, n in enumerate(lengths):
        x[b, n:] = 0
    layer = Bidirectional(LSTM(2, return_sequences=True), merge_mode=None)
    forward, backward = layer(Masking()(x))
    np.testing.assert_array_equal(forward._keras_mask, np.abs(x).sum(-1) > 0)
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(forward.numpy()[b, n:], 0)  # zero output at masked steps (as Keras)
        np.testing.assert_array_equal(backward.numpy()[b, n:], 0)
        # the backward direction starts at the last real step, not at the padding
        alone = layer.backward_layer(x[b:b + 1, :n]).numpy()[0, ::-1]
        np.testing.assert_allclose(backward.numpy()[b, :n], alone, rtol=1e-10)
    last = Bidirectional(LSTM(2))
    assert last(Masking()(x))._keras_mask is None


def test_bidirectional_gradient_with_mask(float64):
    from shenjing.autodiff import numerical_gradient, relative_error

    x = np.random.default_rng(3).normal(size=SHAPE)
    x[1, 2:] = 0
    layer = Bidirectional(GRU(2, return_sequences=True), merge_mode="sum")
    masking = Masking()
    R = np.random.default_rng(4).normal(size=(2, 4, 2))
    ops.sum(ops.mul(layer(masking(Tensor(x))), R)).backward()
    weights = layer.trainable_weights
    analytic = [w.grad for w in weights]
    numeric = numerical_gradient(lambda *_: float((layer(masking(Tensor(x))).data * R).sum()),
                                 [w.data for w in weights])
    assert max(relative_error(a, n) for a, n in zip(analytic, numeric)) < 1e-6


def test_bidirectional_backward_layer_and_config():
    forward = LSTM(3, return_sequences=True)
    backward = GRU(3, return_sequences=True, go_backwards=True)
    layer = Bidirectional(forward, backward_layer=backward, merge_mode="sum")
    x = data()
    layer(x)
    clone = Bidirectional.from_config(layer.get_config())
    clone(x)
    assert isinstance(clone.backward_layer, GRU) and clone.merge_mode == "sum"
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(ValueError, match="different go_backwards"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2))
    with pytest.raises(ValueError, match="return_sequences"):
        Bidirectional(LSTM(2), backward_layer=LSTM(2, go_backwards=True, return_sequences=True))


def test_bidirectional_in_models():
    model = Sequential([Bidirectional(LSTM(4, return_sequences=True), input_shape=(4, 3)),
                        Bidirectional(GRU(2)), Dense(1)])
    assert model.output_shape == (None, 1)
    model.compile("adam", "mse")
    x = data()
    model.fit(x, np.ones((2, 1), "float32"), epochs=1, verbose=0)
    stateful = Bidirectional(LSTM(2, stateful=True), batch_input_shape=(2, 4, 3))
    a = stateful(x).numpy()
    assert not np.allclose(stateful(x).numpy(), a)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x).numpy(), a, rtol=1e-6)
    assert len(stateful.states) == 4
