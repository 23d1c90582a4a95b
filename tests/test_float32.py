"""float32 end to end: no silent float64 upcast anywhere.

Small versions of the benchmark models (and of the other layer families) run ``fit`` for a step,
``evaluate`` and ``predict`` with every op of the tape watched: each array an op produces, each
gradient that flows into a backward function and each gradient it returns must be float32 (integer
and boolean arrays are left alone: indices and masks). After the update every weight, every
optimizer slot and every gradient handed to the optimizer must be float32 too. Float64 *data* is fed
on purpose: the model must cast it, not compute in float64.

Streaming metrics keep their sums in float64 by design (they are host-side accumulators, not on the
tape), so they are not checked here.
"""

import sys

import numpy as np
import pytest

from shenjing import callbacks, layers, optimizers
from shenjing.autodiff import tensor as tensor_module
from shenjing.models import Sequential

F32 = np.dtype("float32")


# ----------------------------------------------------------------------------- the watch


class Watch:
    """Replaces ``make`` in every shenjing module that imported it; records float arrays that are not
    float32 (forward outputs, incoming and outgoing gradients), with the op that made them."""

    def __init__(self):
        self.bad = []
        self.ops = 0
        self.gradients = 0

    def check(self, what, op, array):
        dtype = getattr(array, "dtype", None)
        if dtype is not None and dtype.kind == "f" and dtype != F32:
            self.bad.append(f"{what} of {op}: {dtype}")

    def make(self, original):
        watch = self

        def make(data, parents, backward):
            op = getattr(backward, "__qualname__", repr(backward))
            watch.ops += 1
            watch.check("output", op, data)

            def checked_backward(g):
                watch.gradients += 1
                watch.check("incoming gradient", op, g)
                grads = backward(g)
                for grad in grads:
                    if grad is not None:
                        watch.check("gradient", op, grad)
                return grads

            checked_backward.__qualname__ = op
            return original(data, parents, checked_backward)

        return make


@pytest.fixture
def watch(monkeypatch):
    w = Watch()
    original = tensor_module.make
    patched = w.make(original)
    for name, module in list(sys.modules.items()):
        if name.startswith("shenjing") and getattr(module, "make", None) is original:
            monkeypatch.setattr(module, "make", patched)
    return w


class GradientDtypes(callbacks.Callback):
    """Records the dtype of every gradient handed to the optimizer."""

    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def on_gradients(self, batch, grads_and_vars, logs=None):
        self.dtypes.update(str(g.dtype) for g, _ in grads_and_vars if g is not None)


def optimizer_slots(opt) -> dict:
    """The per-variable slot arrays (``<slot>/<index>``) and the EMA averages of an optimizer."""
    return {key: value for key, value in opt.get_state().items() if "/" in key}


def assert_all_float32(model, watch, grads=None):
    assert watch.ops > 0 and watch.gradients > 0, "the watch saw no op: make() was not patched"
    assert not watch.bad, "float64 on the tape:\n" + "\n".join(sorted(set(watch.bad)))
    for w in model.weights:
        assert w.data.dtype == F32, f"weight {w.name} is {w.data.dtype}"
    for key, value in optimizer_slots(model.optimizer).items():
        assert value.dtype == F32, f"optimizer slot {key} is {value.dtype}"
    if grads is not None:
        assert grads.dtypes == {"float32"}, grads.dtypes


def run_everything(model, x, y, watch, batch_size=None):
    """fit one step (the whole data as one batch), evaluate, predict; everything float32."""
    grads = GradientDtypes()
    batch_size = batch_size or len(x)
    history = model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[grads])
    assert np.isfinite(history.history["loss"][0])
    assert_all_float32(model, watch, grads)
    model.evaluate(x, y, batch_size=batch_size, verbose=0)
    out = model.predict(x, batch_size=batch_size)
    outs = out if isinstance(out, list) else [out]
    for o in outs:
        assert o.dtype == F32, o.dtype
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss if np.isscalar(loss) else loss[0])
    assert_all_float32(model, watch, grads)


# ------------------------------------------------------------------------------ the data


def images(n=6, size=12, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, channels))  # float64 on purpose


def one_hot(n=6, classes=3, seed=1):
    return np.eye(classes)[np.random.default_rng(seed).integers(0, classes, n)]  # float64


def sequences(n=4, steps=5, features=3, seed=2):
    return np.random.default_rng(seed).normal(size=(n, steps, features))  # float64


# ------------------------------------------------------------------------------ the models


def test_w1_xor_mlp(watch):
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float64)
    y = np.array([[0], [1], [1], [0]], np.float64)
    model = Sequential([layers.Dense(10, input_dim=2), layers.Activation("tanh"), layers.Dense(1),
                        layers.Activation("sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=optimizers.SGD(learning_rate=0.1), metrics=["accuracy"])
    run_everything(model, x, y, watch)


def test_w2_mlp_with_dropout(watch):
    rng = np.random.default_rng(0)
    x = rng.random((8, 20))
    model = Sequential([layers.Dense(16, activation="relu", input_shape=(20,)), layers.Dropout(0.2),
                        layers.Dense(16, activation="relu"), layers.Dropout(0.2),
                        layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    run_everything(model, x, one_hot(8), watch)


def test_w3_cnn_sgd_nesterov(watch):
    model = Sequential([layers.Conv2D(4, (3, 3), activation="tanh", input_shape=(12, 12, 1)),
                        layers.Conv2D(4, (3, 3), activation="tanh"), layers.MaxPooling2D((2, 2)),
                        layers.Flatten(), layers.Dense(8, activation="tanh"), layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy",
                  optimizer=optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True))
    run_everything(model, images(), one_hot(), watch)


def test_w4_mnist_cnn(watch):
    model = Sequential([layers.Conv2D(4, (3, 3), activation="relu", input_shape=(12, 12, 1)),
                        layers.Conv2D(8, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
                        layers.Dropout(0.25), layers.Flatten(), layers.Dense(16, activation="relu"),
                        layers.Dropout(0.5), layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    run_everything(model, images(), one_hot(), watch)


def test_w5_embedding_lstm(watch):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 11, (4, 6))
    y = rng.integers(0, 11, (4, 6))
    model = Sequential([layers.Embedding(11, 5, input_shape=(6,)), layers.LSTM(7, return_sequences=True),
                        layers.Dense(11, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    run_everything(model, x, y, watch)


@pytest.mark.parametrize("cell", ["GRU", "SimpleRNN", "LSTM"])
def test_recurrent(watch, cell):
    model = Sequential([getattr(layers, cell)(6, input_shape=(5, 3)), layers.Dense(2)])
    model.compile(loss="mse", optimizer="rmsprop")
    run_everything(model, sequences(), np.random.default_rng(4).normal(size=(4, 2)), watch)


def test_masked_embedding_gru(watch):
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0], [1, 1, 1, 1, 1], [2, 0, 0, 0, 0]])
    model = Sequential([layers.Embedding(6, 4, mask_zero=True, input_shape=(5,)), layers.GRU(5),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam")
    run_everything(model, x, np.array([0.0, 1.0, 1.0, 0.0]), watch)


def test_bidirectional(watch):
    model = Sequential([layers.Bidirectional(layers.LSTM(4, return_sequences=True), input_shape=(5, 3)),
                        layers.Bidirectional(layers.GRU(3)), layers.Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="nadam")
    run_everything(model, sequences(), one_hot(4, 2), watch)


def test_batch_normalization(watch):
    model = Sequential([layers.Dense(8, input_shape=(5,)), layers.BatchNormalization(), layers.Activation("relu"),
                        layers.Dense(2)])
    model.compile(loss="mse", optimizer="adam")
    rng = np.random.default_rng(5)
    run_everything(model, rng.normal(size=(8, 5)), rng.normal(size=(8, 2)), watch)
    bn = model.layers[1]
    for w in bn.weights:  # the moving statistics too
        assert w.data.dtype == F32


def test_batch_normalization_conv(watch):
    model = Sequential([layers.Conv2D(3, (3, 3), input_shape=(12, 12, 1)), layers.BatchNormalization(),
                        layers.Activation("relu"), layers.GlobalAveragePooling2D(),
                        layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    run_everything(model, images(), one_hot(), watch)


def test_layer_normalization(watch):
    model = Sequential([layers.Dense(8, input_shape=(5,)), layers.LayerNormalization(), layers.Dense(2)])
    model.compile(loss="mae", optimizer="adam")
    rng = np.random.default_rng(6)
    run_everything(model, rng.normal(size=(8, 5)), rng.normal(size=(8, 2)), watch)


def test_conv1d(watch):
    model = Sequential([layers.Conv1D(4, 3, activation="relu", input_shape=(10, 2)), layers.MaxPooling1D(2),
                        layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    run_everything(model, np.random.default_rng(7).normal(size=(6, 10, 2)), one_hot(), watch)


def test_regularizers_and_sample_weights(watch):
    rng = np.random.default_rng(8)
    model = Sequential([layers.Dense(6, activation="elu", input_shape=(4,), kernel_regularizer="l2",
                                     activity_regularizer="l1"),
                        layers.Dense(3, activation="softmax", bias_regularizer="l1_l2")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, y = rng.normal(size=(6, 4)), one_hot()
    grads = GradientDtypes()
    model.fit(x, y, sample_weight=rng.random(6), class_weight=None, epochs=1, batch_size=6, verbose=0,
              callbacks=[grads])
    model.fit(x, y, class_weight={0: 1.0, 1: 2.0, 2: 0.5}, epochs=1, batch_size=6, verbose=0, callbacks=[grads])
    model.evaluate(x, y, sample_weight=rng.random(6), verbose=0)
    assert_all_float32(model, watch, grads)


def test_functional_two_outputs_with_loss_weights(watch):
    from shenjing.models import Model

    rng = np.random.default_rng(11)
    inp = layers.Input(shape=(4,))
    h = layers.Dense(6, activation="relu")(inp)
    a = layers.Dense(3, activation="softmax", name="a")(h)
    b = layers.Dense(1, name="b")(layers.Concatenate()([h, inp]))
    model = Model(inp, [a, b])
    model.compile(optimizer="adam", loss=["categorical_crossentropy", "mse"], loss_weights=[0.5, 2.0],
                  metrics=[["accuracy"], ["mae"]])
    x, ya, yb = rng.normal(size=(6, 4)), one_hot(), rng.normal(size=(6, 1))
    grads = GradientDtypes()
    model.fit(x, [ya, yb], batch_size=6, epochs=1, verbose=0, callbacks=[grads])
    assert_all_float32(model, watch, grads)
    model.evaluate(x, [ya, yb], verbose=0)
    assert all(o.dtype == F32 for o in model.predict(x))
    assert_all_float32(model, watch, grads)


# -------------------------------------------------------------------------- the optimizers

OPTIMIZERS = [
    ("sgd", lambda: optimizers.SGD(learning_rate=0.1)),
    ("momentum", lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9)),
    ("nesterov", lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda: optimizers.Adam()),
    ("amsgrad", lambda: optimizers.Adam(amsgrad=True)),
    ("adamw", lambda: optimizers.AdamW()),
    ("rmsprop", lambda: optimizers.RMSprop()),
    ("rmsprop_centered_momentum", lambda: optimizers.RMSprop(momentum=0.5, centered=True)),
    ("adagrad", lambda: optimizers.Adagrad()),
    ("adadelta", lambda: optimizers.Adadelta(learning_rate=1.0)),
    ("adamax", lambda: optimizers.Adamax()),
    ("nadam", lambda: optimizers.Nadam()),
    ("clipping_decay_ema", lambda: optimizers.Adam(clipnorm=1.0, clipvalue=0.5, weight_decay=0.01, use_ema=True,
                                                   ema_overwrite_frequency=2)),
    ("global_clipnorm_schedule", lambda: optimizers.SGD(
        learning_rate=optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5), momentum=0.5,
        global_clipnorm=0.1)),
]
for _name in ("Lion", "Ftrl"):  # those two only if present
    if hasattr(optimizers, _name):
        OPTIMIZERS.append((_name.lower(), getattr(optimizers, _name)))


@pytest.mark.parametrize("name,factory", OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
def test_optimizer_keeps_float32(watch, name, factory):
    rng = np.random.default_rng(9)
    model = Sequential([layers.Dense(5, activation="tanh", input_shape=(3,)),
                        layers.Dense(2, activation="softmax")])
    opt = factory()
    model.compile(loss="categorical_crossentropy", optimizer=opt)
    x, y = rng.normal(size=(200, 3)), one_hot(200, 2)  # float64 data
    grads = GradientDtypes()
    model.fit(x, y, batch_size=50, epochs=2, verbose=0, callbacks=[grads])
    assert opt.iterations == 8
    assert_all_float32(model, watch, grads)
    if opt.use_ema:
        assert all(a.dtype == F32 for a in opt.ema_weights)
        opt.swap_ema_weights()
        assert_all_float32(model, watch)


@pytest.mark.parametrize("name,factory", OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
def test_optimizer_float64_gradients_do_not_upcast(name, factory):
    """Gradients of another dtype (float64 from user code) are cast to the variable's dtype; a large
    variable goes through the blockwise update: both stay float32."""
    from shenjing.autodiff import Variable

    rng = np.random.default_rng(10)
    variables = [Variable(rng.normal(size=shape).astype("float32")) for shape in [(3, 4), (7,), (300, 301), ()]]
    opt = factory()
    for _ in range(3):
        opt.apply_gradients([(rng.normal(size=v.shape), v) for v in variables])  # float64 gradients
    for v in variables:
        assert v.data.dtype == F32
        assert np.all(np.isfinite(v.data))
    for key, value in optimizer_slots(opt).items():
        assert value.dtype == F32, f"{key}: {value.dtype}"
