import numpy as np
import pytest

from shenjing import regularizers
from shenjing.autodiff import Tensor, ops
from shenjing.layers.core import Dense, Input
from shenjing.layers.embedding import Embedding, Masking
from shenjing.layers.recurrent import LSTM
from shenjing.layers.wrappers import TimeDistributed
from shenjing.models import Model, Sequential

from .harness import layer_test

IDS = [[1, 2, 3, 4], [0, 1, 1, 2]]


def test_layer():
    # ids are not differentiable: the gradient check runs on the embeddings below
    layer_test(Embedding, dict(input_dim=5, output_dim=3), (2, 4), (None, 4, 3), expected_weights=1,
               input_data=IDS, check_grad=False)


def test_lookup_and_defaults():
    layer = Embedding(10, 4)
    out = layer(np.array(IDS))
    table = layer.embeddings.numpy()
    np.testing.assert_array_equal(out.numpy(), table[np.array(IDS)])
    assert out.dtype == np.float32 and layer.embeddings.name == f"{layer.name}/embeddings"
    assert np.abs(table).max() <= 0.05  # 'uniform': RandomUniform(-0.05, 0.05)
    assert layer.compute_output_shape((None, 4)) == (None, 4, 4)
    assert out._keras_mask is None


def test_float_ids_are_cast():
    layer = Embedding(10, 4)
    np.testing.assert_array_equal(layer(np.array(IDS, dtype="float32")).numpy(), layer(np.array(IDS)).numpy())


def test_gradient_accumulates_repeated_ids():
    layer = Embedding(5, 3)
    layer(np.array(IDS))
    weights = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    ops.sum(ops.mul(layer(np.array(IDS)), weights)).backward()
    expected = np.zeros((5, 3), "float32")
    np.add.at(expected, np.array(IDS), weights)
    np.testing.assert_allclose(layer.embeddings.grad, expected, rtol=1e-6)
    np.testing.assert_allclose(layer.embeddings.grad[1], weights[0, 0] + weights[1, 1] + weights[1, 2], rtol=1e-6)
    np.testing.assert_array_equal(layer.embeddings.grad[3], weights[0, 2])


def test_out_of_range_ids():
    layer = Embedding(5, 3, name="words")
    with pytest.raises(ValueError, match=r"Embedding 'words': index 5 is out of range; the ids must lie in \[0, 5\)"):
        layer(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"index -1 is out of range"):
        layer(np.array([[-1, 2]]))


def test_mask_zero():
    layer = Embedding(5, 3, mask_zero=True)
    out = layer(np.array(IDS))
    np.testing.assert_array_equal(out._keras_mask, np.array(IDS) != 0)


def test_regularizer_and_constraint():
    layer = Embedding(5, 3, embeddings_regularizer=regularizers.L2(0.5), embeddings_constraint="non_neg")
    layer(np.array(IDS))
    (penalty,) = layer.losses
    np.testing.assert_allclose(float(penalty.data), 0.5 * (layer.embeddings.numpy().astype("float64") ** 2).sum(),
                               rtol=1e-5)
    assert layer.embeddings.constraint is not None


def test_input_length_and_keras1_spellings():
    layer = Embedding(20, 8, input_length=6, init="normal", W_regularizer="l2")
    model = Sequential([layer, LSTM(4)])
    assert model.output_shape == (None, 4)
    assert layer.get_config()["input_length"] == 6 and len(layer.losses) == 1
    inp = Input(shape=(6,), dtype="int32")
    assert Embedding(20, 8)(inp).shape == (None, 6, 8)


def test_keras1_dropout_drops_whole_ids_in_training():
    layer = Embedding(50, 4, dropout=0.5)
    ids = np.tile(np.arange(50), (2, 1))
    trained = layer(ids, training=True).numpy()
    dropped = (trained == 0).all(axis=-1)
    np.testing.assert_array_equal(dropped[0], dropped[1])  # the same id is dropped everywhere
    assert 0 < dropped.sum() < 100
    np.testing.assert_array_equal(layer(ids).numpy(), layer.embeddings.numpy()[ids])


# -------------------------------------------------------------------------------- Masking


def test_masking_layer():
    layer_test(Masking, {}, (2, 4, 3), (None, 4, 3))
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    x[0, 1] = -1.0
    x[1, 3] = -1.0
    out = Masking(mask_value=-1.0)(x)
    np.testing.assert_array_equal(out._keras_mask, [[True, False, True, True], [True, True, True, False]])
    np.testing.assert_array_equal(out.numpy()[0, 1], 0)
    np.testing.assert_array_equal(out.numpy()[0, 0], x[0, 0])
    x[0, 2, 0] = -1.0  # a step with only some features equal to mask_value is kept
    assert Masking(mask_value=-1.0)(x)._keras_mask[0, 2]


# -------------------------------------------------------------- mask_zero through a model


def tagger(seed=0):
    from shenjing import backend

    backend.set_random_seed(seed)
    model = Sequential([Embedding(10, 6, mask_zero=True), LSTM(5, return_sequences=True),
                        TimeDistributed(Dense(3, activation="softmax"))])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_mask_zero_reaches_time_distributed_and_the_loss():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 10, size=(4, 6))
    lengths = [6, 4, 2, 5]
    for b, n in enumerate(lengths):
        ids[b, n:] = 0
    y = rng.integers(0, 3, size=(4, 6))
    model = tagger()
    out = model(ids)
    np.testing.assert_array_equal(out._keras_mask, ids != 0)
    loss = model.evaluate(ids, y, verbose=0)[0]
    y_changed = y.copy()
    y_changed[ids == 0] = (y[ids == 0] + 1) % 3  # labels on padded steps must not matter
    assert abs(model.evaluate(ids, y_changed, verbose=0)[0] - loss) < 1e-6
    # the loss is the mean over the real steps of the per-sequence (unpadded) predictions
    probs = [model(ids[b:b + 1, :n]).numpy()[0] for b, n in enumerate(lengths)]
    nll = np.concatenate([-np.log(p[np.arange(n), y[b, :n]]) for b, (p, n) in enumerate(zip(probs, lengths))])
    assert abs(loss - nll.mean()) < 1e-5


def test_padded_steps_do_not_change_the_training_step():
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 10, size=(3, 5))
    ids[:, 3:] = 0
    y = rng.integers(0, 3, size=(3, 5))
    a, b = tagger(), tagger()
    longer = np.concatenate([ids, np.zeros((3, 4), ids.dtype)], axis=1)  # more padding
    a(ids)
    b(longer)
    b.set_weights(a.get_weights())
    a.train_on_batch(ids, y)
    b.train_on_batch(longer, np.concatenate([y, rng.integers(0, 3, size=(3, 4))], axis=1))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


def test_functional_model_with_int_input():
    inp = Input(shape=(5,), dtype="int32")
    x = Embedding(10, 4, mask_zero=True)(inp)
    model = Model(inp, LSTM(3)(x))
    out = model.predict(np.array([[1, 2, 3, 0, 0]]), verbose=0)
    assert out.shape == (1, 3)
    tail = Tensor(np.array([[1, 2, 3]]))
    np.testing.assert_allclose(out, model(tail).numpy(), rtol=1e-6)


# ------------------------------------------------------------------ the scatter-add of the gather backward


def _add_at(shape, index, g):
    out = np.zeros(shape, g.dtype)
    np.add.at(out, index, g)
    return out


@pytest.mark.parametrize("rows,n,features", [(65, 4096, 64), (3, 7, 2), (1000, 50, 5), (4, 1, 3)])
def test_take_backward_sums_repeated_ids_like_add_at(rows, n, features):
    rng = np.random.default_rng(rows)
    ids = rng.integers(0, rows, (n,))
    table = Tensor(rng.normal(size=(rows, features)).astype("float32"), requires_grad=True)
    g = rng.normal(size=(n, features)).astype("float32")
    ops.sum(ops.mul(ops.take(table, ids, axis=0), g)).backward()
    assert table.grad.dtype == np.float32
    np.testing.assert_allclose(table.grad, _add_at((rows, features), ids, g), rtol=1e-5, atol=1e-5)


def test_take_backward_other_axes_negative_and_2d_ids():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 5, 3))
    ids = np.array([[4, -1, 0], [1, 1, -5]])  # -1 is row 4, -5 is row 0
    t = Tensor(a, requires_grad=True)
    g = rng.normal(size=(2, 2, 3, 3))
    ops.sum(ops.mul(ops.take(t, ids, axis=1), g)).backward()
    expected = np.zeros_like(a)
    for (i, j), k in np.ndenumerate(ids):
        expected[:, k % 5] += g[:, i, j]
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12)


def test_getitem_integer_array_backward_accumulates():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 4)).astype("float32")
    ids = np.array([[5, 0, 5], [2, 5, -1]])
    t = Tensor(a, requires_grad=True)
    g = rng.normal(size=(2, 3, 4)).astype("float32")
    ops.sum(ops.mul(ops.getitem(t, ids), g)).backward()
    np.testing.assert_allclose(t.grad, _add_at(a.shape, ids, g), rtol=1e-5, atol=1e-6)
    # a tuple index (rows and columns) still goes through add.at semantics
    t2 = Tensor(a, requires_grad=True)
    rows, cols = np.array([0, 0, 3]), np.array([1, 1, 2])
    ops.sum(ops.getitem(t2, (rows, cols))).backward()
    np.testing.assert_allclose(t2.grad, _add_at(a.shape, (rows, cols), np.ones(3, "float32")))


def test_embedding_gradient_of_empty_batch():
    layer = Embedding(4, 2)
    out = layer(np.zeros((0, 3), dtype=int))
    ops.sum(out).backward()
    np.testing.assert_array_equal(layer.embeddings.grad, np.zeros((4, 2), "float32"))
