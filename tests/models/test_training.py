import numpy as np
import pytest

from shenjing import callbacks, layers, optimizers
from shenjing.models import Model, Sequential
from shenjing.utils import gradient_check, set_random_seed


def blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    y = rng.integers(0, 3, n)
    x = centers[y] + rng.normal(0, 0.6, (n, 2))
    return x.astype("float32"), y


@pytest.mark.parametrize("column_major", [False, True])
def test_gradient_check_whole_model(float64, column_major, monkeypatch):
    if column_major:  # the kernels stored as large ones are: perturbed in place all the same
        from shenjing.layers import core

        monkeypatch.setattr(core, "COLUMN_MAJOR_KERNEL_SIZE", 0)
    model = Sequential([layers.Dense(5, activation="tanh", input_shape=(3,), kernel_regularizer="l2"),
                        layers.Dense(4, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    y = np.eye(4)[rng.integers(0, 4, 6)]
    assert model.layers[0].kernel.data.flags.f_contiguous == column_major
    report = gradient_check(model, x, y)
    assert set(report) == {w.name for w in model.trainable_weights}
    assert max(report.values()) < 1e-6


def test_functional_model_gradient_check_with_residual_and_concat(float64):
    inp = layers.Input(shape=(4,))
    h = layers.Dense(4, activation="elu")(inp)
    r = layers.Add()([inp, h])
    c = layers.Concatenate()([r, layers.Dense(2, activation="sigmoid")(inp)])
    out = layers.Dense(1)(c)
    model = Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(1)
    report = gradient_check(model, rng.normal(size=(5, 4)), rng.normal(size=(5, 1)))
    assert max(report.values()) < 1e-6


def test_functional_summary_shows_connections(capsys):
    a = layers.Input(shape=(3,), name="a")
    b = layers.Input(shape=(3,), name="b")
    merged = layers.Add(name="sum")([layers.Dense(3, name="da")(a), b])
    model = Model([a, b], layers.Dense(1, name="out")(merged), name="two_inputs")
    model.summary()
    text = capsys.readouterr().out
    assert 'Model: "two_inputs"' in text and "Connected to" in text
    assert "da[0][0]" in text and "b[0][0]" in text
    assert "Total params: 16" in text


def test_same_seed_same_run_bit_for_bit():
    x, y = blobs()

    def run(seed):
        set_random_seed(seed)
        model = Sequential([layers.Dense(8, activation="relu", input_shape=(2,)), layers.Dropout(0.3),
                            layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        return history.history["loss"], model.get_weights()

    loss_a, w_a = run(3)
    loss_b, w_b = run(3)
    loss_c, _ = run(4)
    assert loss_a == loss_b
    assert all(np.array_equal(p, q) for p, q in zip(w_a, w_b))
    assert loss_a != loss_c


def test_ema_model_evaluates_with_averaged_weights():
    x, y = blobs()
    set_random_seed(0)
    model = Sequential([layers.Dense(8, activation="tanh", input_shape=(2,)), layers.Dense(3, activation="softmax")])
    optimizer = optimizers.SGD(0.1, use_ema=True, ema_momentum=0.9)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=5, batch_size=16, verbose=0)
    raw = model.get_weights()
    with optimizer.averaged_weights(model.trainable_weights):
        averaged = model.get_weights()
        averaged_accuracy = model.evaluate(x, y, verbose=0)[1]
    assert not all(np.array_equal(a, b) for a, b in zip(raw, averaged))
    assert all(np.array_equal(a, b) for a, b in zip(raw, model.get_weights()))
    assert averaged_accuracy > 0.8
    np.testing.assert_allclose(averaged[0], optimizer.ema_weights[0])


def test_swap_ema_weights_callback_finalizes_into_the_model():
    x, y = blobs()
    set_random_seed(0)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(2,))])
    optimizer = optimizers.Adam(0.05, use_ema=True)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.2, callbacks=[callbacks.SwapEMAWeights()])
    np.testing.assert_allclose(model.get_weights()[0], optimizer.ema_weights[0])


def test_predict_records_no_graph_and_train_step_releases_it():
    model = Sequential([layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "mse")
    out = model.predict(np.ones((4, 3)))
    assert isinstance(out, np.ndarray) and out.shape == (4, 2)
    model.train_on_batch(np.ones((4, 3)), np.zeros((4, 2)))
    assert all(w.grad is None for w in model.weights)


def test_float32_end_to_end_no_upcast():
    x, y = blobs()
    model = Sequential([layers.Dense(4, activation="relu", input_shape=(2,)), layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x.astype("float64"), y, epochs=1, verbose=0)
    assert all(w.dtype == np.float32 for w in model.weights)
    assert model.predict(x).dtype == np.float32
    assert all(np.asarray(slot).dtype == np.float32 for key, slot in model.optimizer.get_state().items()
               if key != "iterations" and hasattr(slot, "dtype") and np.asarray(slot).ndim > 0)


def test_fit_before_compile_and_unknown_fit_argument():
    model = Sequential([layers.Dense(1, input_shape=(2,))])
    with pytest.raises(RuntimeError, match="must be compiled"):
        model.fit(np.ones((2, 2)), np.ones((2, 1)))
    model.compile("sgd", "mse")
    with pytest.raises(TypeError, match="nb_epochs"):
        model.fit(np.ones((2, 2)), np.ones((2, 1)), nb_epochs=3)


def test_keras2_generator_methods():
    x, y = blobs()

    def batches():
        while True:
            for start in range(0, len(x), 20):
                yield x[start:start + 20], y[start:start + 20]

    set_random_seed(0)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(2,))])
    model.compile(optimizers.Adam(0.05), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit_generator(batches(), steps_per_epoch=6, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 5 and history.history["loss"][-1] < history.history["loss"][0]
    loss, accuracy = model.evaluate_generator(batches(), steps=6)
    assert accuracy > 0.8
    assert model.predict_generator((x[i:i + 30] for i in range(0, 120, 30)), steps=4).shape == (120, 3)
    with pytest.raises(TypeError, match="bogus"):
        model.fit_generator(batches(), steps_per_epoch=1, bogus=1)


def test_evaluate_a_plain_generator_on_a_fresh_model_keeps_every_batch():
    x, y = blobs(40)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(2,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    from_arrays = model.evaluate(x, y, batch_size=10, verbose=0)
    from_generator = model.evaluate(((x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10)), steps=4, verbose=0)
    assert abs(from_arrays - from_generator) < 1e-6


# ------------------------------------------------ the *_on_batch short path raises what the general path raises


def _bad_batches():
    good_x, good_y = np.ones((4, 3), np.float32), np.array([[0.0], [1.0], [1.0], [0.0]], np.float32)
    nan_x = good_x.copy()
    nan_x[1, 2] = np.nan
    inf_y = good_y.copy()
    inf_y[2, 0] = np.inf
    return {
        "nan_x": (nan_x, good_y),
        "inf_y": (good_x, inf_y),
        "y_out_of_range": (good_x, good_y * 3),
        "wrong_width": (np.ones((4, 5), np.float32), good_y),
        "wrong_rank": (np.ones((4, 3, 1), np.float32), good_y),
        "lengths": (good_x, good_y[:3]),
        "empty": (good_x[:0], good_y[:0]),
        "y_shape": (good_x, np.ones((4, 2), np.float32)),
        "float64_nan_x": (nan_x.astype("float64"), good_y),
        "strings": (np.array([["a", "b", "c"]] * 4), good_y),
    }


@pytest.mark.parametrize("case", sorted(_bad_batches()))
def test_on_batch_methods_raise_the_errors_of_fit(case):
    x, y = _bad_batches()[case]

    def error(call):
        with pytest.raises(Exception) as info:
            call()
        return type(info.value), str(info.value).replace("fit:", "METHOD:").replace("train_on_batch:", "METHOD:")

    model = Sequential([layers.Dense(3, activation="tanh", input_shape=(3,)), layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    model.train_on_batch(np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32))  # ready: the short path
    weights = model.get_weights()
    assert error(lambda: model.train_on_batch(x, y)) == error(lambda: model.fit(x, y, verbose=0))
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    if case in ("nan_x", "wrong_width", "wrong_rank", "empty", "float64_nan_x", "strings"):
        expected = error(lambda: model.predict(x))
        assert error(lambda: model.predict_on_batch(x)) == (expected[0], expected[1].replace("predict:",
                                                                                              "predict_on_batch:"))


def test_on_batch_short_path_gives_the_general_paths_results():
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 3)), (rng.random((8, 1)) > 0.5).astype("float64")  # float64: the general path casts

    def run(x, y):
        set_random_seed(7)
        model = Sequential([layers.Dense(4, activation="tanh", input_shape=(3,)),
                            layers.Dense(1, activation="sigmoid")])
        model.compile(optimizers.SGD(0.1), "binary_crossentropy", metrics=["accuracy"])
        logs = [model.train_on_batch(x, y, return_dict=True) for _ in range(3)]
        return logs, model.predict_on_batch(x), model.get_weights()

    short = run(x.astype("float32"), y.astype("float32"))
    general = run(x, y)
    assert short[0] == general[0]
    np.testing.assert_array_equal(short[1], general[1])
    for a, b in zip(short[2], general[2]):
        np.testing.assert_array_equal(a, b)


def test_on_batch_checks_the_values_of_every_batch_and_the_shapes_again_after_changes():
    """The short path checks shapes once per kind of batch; values (finite, label ranges) every batch."""
    from shenjing import losses

    x = np.ones((4, 2), np.float32)
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(2,))])
    model.compile("sgd", "sparse_categorical_crossentropy")
    labels = np.array([0, 1, 2, 0], np.float32)
    model.train_on_batch(x, labels)
    model.train_on_batch(x, labels)
    with pytest.raises(ValueError, match="class label 3"):
        model.train_on_batch(x, labels + 1)
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        model.train_on_batch(x, labels + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        model.train_on_batch(x, labels * np.nan)
    model.compile("sgd", "categorical_crossentropy")  # a new loss: the target's shape is checked again
    with pytest.raises(ValueError, match="integer class labels"):
        model.train_on_batch(x, labels)
    model.add(layers.Dense(2))  # a new output width: checked again
    with pytest.raises(ValueError, match="one-hot width 3"):
        model.train_on_batch(x, np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])

    class Counting(losses.MeanSquaredError):
        calls = 0

        def validate_targets(self, y_true, y_pred_shape):
            Counting.calls += 1
            super().validate_targets(y_true, y_pred_shape)

    model.compile("sgd", Counting())
    for _ in range(3):
        model.train_on_batch(x, np.zeros((4, 2), np.float32))
    assert Counting.calls == 3  # a loss's own validate_targets runs on every batch

    calls = []
    loss = losses.MeanSquaredError()
    loss.validate_targets = lambda y_true, y_pred_shape: calls.append(1)  # on the object: the same
    model.compile("sgd", loss)
    for _ in range(3):
        model.train_on_batch(x, np.zeros((4, 2), np.float32))
    assert len(calls) == 3


# ------------------------------------------------------------- penalties: the cached sources follow changes


def test_penalties_follow_regularizers_and_layers_added_after_training():
    from shenjing import regularizers

    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    model = Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    model.train_on_batch(x, y)  # the sources of penalties are looked up (and cached) here
    assert model.losses == []
    plain = model.test_on_batch(x, y)
    kernel = model.layers[0].kernel
    kernel.regularizer = regularizers.l2(0.5)  # set after training started
    (penalty,) = model.losses
    expected = 0.5 * float((kernel.data.astype("float64") ** 2).sum())
    np.testing.assert_allclose(float(penalty.data), expected, rtol=1e-6)
    np.testing.assert_allclose(model.test_on_batch(x, y), plain + expected, rtol=1e-6)
    kernel.regularizer = None
    assert model.losses == [] and model.test_on_batch(x, y) == plain
    model.add(layers.Dense(2, activity_regularizer="l1", bias_regularizer="l2"))  # a layer added later
    model.compile("sgd", "mse")
    model.train_on_batch(x, y)
    assert len(model.losses) == 2  # its bias penalty, then the activity penalty of this step
    model.pop()
    assert model.losses == []
