"""Replayed training steps (``models.step_replay``) give exactly the ordinary steps' results.

Each scenario runs twice from the same seed, once with replay off (the reference) and once on, and the
weights, losses and histories must agree bit for bit; where replay applies, it must have replayed.
"""

import numpy as np
import pytest

from shenjing import activations, losses
from shenjing.layers import Activation, Conv2D, Dense, Dropout, Flatten, Input, Lambda
from shenjing.models import Model, Sequential, step_replay
from shenjing.optimizers import SGD, Adam
from shenjing.regularizers import l2
from shenjing.utils import set_random_seed


@pytest.fixture(autouse=True)
def _replay_on():
    previous = step_replay.ENABLED
    yield
    step_replay.ENABLED = previous


def _xor():
    model = Sequential([Dense(10, input_dim=2), Activation("tanh"), Dense(1), Activation("sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer=SGD(learning_rate=0.1))
    return model


def _mlp():
    model = Sequential([Flatten(input_shape=(4, 3)), Dense(16, activation="relu"), Dropout(0.3),
                        Dense(5, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer=Adam(), metrics=["accuracy"])
    return model


def _sparse():
    model = Sequential([Dense(8, activation="tanh", input_shape=(6,)), Dense(4, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05, momentum=0.9, nesterov=True))
    return model


def _regression():
    model = Sequential([Dense(8, activation="elu", input_shape=(3,)), Dense(2)])
    model.compile(loss="mse", optimizer="rmsprop", metrics=["mae"])
    return model


def _two_outputs():
    inp = Input((5,))
    hidden = Dense(8, activation="relu")(inp)
    a = Dense(3, activation="softmax", name="a")(hidden)
    b = Dense(1, name="b")(Dense(4, activation="sigmoid")(hidden))
    model = Model(inp, [a, b])
    model.compile(loss=["categorical_crossentropy", "mae"], loss_weights=[1.0, 0.5], optimizer=Adam(0.01))
    return model


def _data(kind, n, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "xor":
        return (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32),
                np.array([[0], [1], [1], [0]], np.float32))
    if kind == "mlp":
        return rng.random((n, 4, 3), dtype=np.float32), np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    if kind == "sparse":
        return rng.random((n, 6), dtype=np.float32), rng.integers(0, 4, n)
    if kind == "regression":
        return rng.random((n, 3), dtype=np.float32), rng.random((n, 2), dtype=np.float32)
    x = rng.random((n, 5), dtype=np.float32)
    return x, [np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)], rng.random((n, 1), dtype=np.float32)]


def _batch(y, i, b):
    return [t[i:i + b] for t in y] if isinstance(y, list) else y[i:i + b]


def _run(build, kind, enabled, script=None, n=40, batch=8):
    """Seeded model, 12 ``train_on_batch`` steps (``script(model, step)`` may change things in between),
    then ``fit`` for 3 epochs with a ragged last batch: (weights, losses, history, replays)."""
    step_replay.ENABLED = enabled
    set_random_seed(7)
    model = build()
    x, y = _data(kind, n)
    losses = []
    for step in range(12):
        if script is not None:
            script(model, step)
        i = (step % 3) * batch if kind != "xor" else 0
        losses.append(model.train_on_batch(x[i:i + batch], _batch(y, i, batch)))
    history = model.fit(x, y, batch_size=batch if kind != "xor" else 4, epochs=3, verbose=0, shuffle=True)
    replayer = model.__dict__.get("_step_replay")
    return model.get_weights(), losses, history.history, replayer.replays if replayer else 0


def _assert_same(build, kind, script=None, replays=True):
    w0, l0, h0, r0 = _run(build, kind, False, script)
    w1, l1, h1, r1 = _run(build, kind, True, script)
    assert r0 == 0
    assert (r1 > 0) == replays
    assert l0 == l1
    assert h0 == h1
    assert all(np.array_equal(a, b) for a, b in zip(w0, w1))


@pytest.mark.parametrize("build, kind", [(_xor, "xor"), (_mlp, "mlp"), (_regression, "regression"),
                                         (_two_outputs, "two")])
def test_replayed_steps_equal_ordinary_steps(build, kind):
    _assert_same(build, kind)


def test_sparse_labels_are_checked_every_step():
    _assert_same(_sparse, "sparse", replays=False)  # the loss checks its labels' values: not replayed
    step_replay.ENABLED = True
    model = _sparse()
    x, y = _data("sparse", 8)
    for _ in range(3):
        model.train_on_batch(x, y)
    with pytest.raises(ValueError, match="class label -1"):
        model.train_on_batch(x, np.where(np.arange(8) == 3, -1, y))


def test_xor_fit_one_batch_an_epoch_replays():
    set_random_seed(1)
    model = _xor()
    x, y = _data("xor", 4)
    model.fit(x, y, batch_size=4, epochs=20, verbose=0)
    assert model._step_replay.replays == 18  # the first step runs, the second is recorded


@pytest.mark.parametrize("change", [
    lambda m, s: setattr(m.layers[0], "trainable", s < 6),
    lambda m, s: setattr(m.layers[1], "activation", activations.get("relu" if s % 2 else "tanh")),
    lambda m, s: m.layers[0].kernel.__setattr__("requires_grad", s < 5),
    lambda m, s: m.layers[0].kernel.__setattr__("trainable", s < 7),
    lambda m, s: m.optimizer.__setattr__("learning_rate", 0.1 / (s + 1)),
    lambda m, s: m.set_weights([w * 0.5 for w in m.get_weights()]) if s == 6 else None,
])
def test_changes_between_steps_are_seen(change):
    _assert_same(_xor, "xor", change)


def test_recompiling_is_seen():
    def script(model, step):
        if step == 6:
            model.compile(loss="mse", optimizer=SGD(learning_rate=0.2))
    _assert_same(_xor, "xor", script)


def _pair(build, x_and_ys, script=None):
    """The same seeded model trained on each (x, y) with replay on and off: (weights on, off, replays)."""
    out = []
    for enabled in (True, False):
        step_replay.ENABLED = enabled
        set_random_seed(3)
        model = build()
        for step, (x, y) in enumerate(x_and_ys):
            if script is not None:
                script(model, step)
            model.train_on_batch(x, y)
        out.append(model.get_weights())
        if enabled:
            replayer = model._step_replay
    step_replay.ENABLED = True
    return out[0], out[1], replayer


def _equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_batch_shapes_and_dtypes_have_their_own_records():
    x = np.random.default_rng(0).random((7, 2), dtype=np.float32)
    labels = (x[:, :1] > 0.5).astype(np.int64)
    batches = [(x[:(4, 7)[i % 2]], labels[:(4, 7)[i % 2]].astype((np.int64, np.float32)[i % 3 == 0]))
               for i in range(12)]
    on, off, _ = _pair(_xor, batches)
    assert _equal(on, off)
    step_replay.ENABLED = True
    model = _xor()
    for x_, y_ in batches:
        model.train_on_batch(x_, y_)
    assert model._step_replay.replays > 0


def test_one_array_given_twice_is_not_bound_to_one_input():
    same = _data("regression", 8)[1]
    on, off, _ = _pair(lambda: _mlp_same_shape(), [(same, same)] * 3 + [(same + 1, same)] * 2)
    assert _equal(on, off)


def _mlp_same_shape():
    model = Sequential([Dense(2, input_shape=(2,))])
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_global_and_loss_settings_between_steps_are_seen():
    from shenjing import backend

    x, y = _data("xor", 4)
    previous = backend.epsilon()

    def script(model, step):
        backend.set_epsilon(0.3 if step >= 3 else previous)
        if step == 5:
            model._compiled_losses[0].fn_kwargs["label_smoothing"] = 0.2
        if step == 7:
            model._compiled_losses[0].reduction = "sum"

    def build():
        model = Sequential([Dense(1, activation="hard_sigmoid", input_dim=2)])
        model.compile(loss="binary_crossentropy", optimizer=SGD(learning_rate=0.1))
        return model

    try:
        on, off, replayer = _pair(build, [(x, y)] * 10, script)
    finally:
        backend.set_epsilon(previous)
    assert _equal(on, off)
    assert replayer.replays > 0


def test_a_model_with_records_copies_and_pickles():
    import copy
    import pickle

    step_replay.ENABLED = True
    model = _xor()
    x, y = _data("xor", 4)
    for _ in range(4):
        model.train_on_batch(x, y)
    clones = [copy.deepcopy(model), pickle.loads(pickle.dumps(model))]
    for clone in clones:
        assert clone._step_replay.replays == 0 and not clone._step_replay.plans
    assert clones[0].train_on_batch(x, y) == clones[1].train_on_batch(x, y) == model.train_on_batch(x, y)


def test_a_loss_that_is_not_a_scalar_keeps_its_error():
    step_replay.ENABLED = True
    model = Sequential([Dense(1, input_dim=2)])
    model.compile(loss=losses.MeanSquaredError(reduction="none"), optimizer="sgd")
    x, y = _data("xor", 4)
    for _ in range(4):
        with pytest.raises(RuntimeError, match="scalar"):
            model.train_on_batch(x, y)


def _conv():
    model = Sequential([Conv2D(2, 3, input_shape=(5, 5, 1)), Flatten(), Dense(2, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    return model


def _regularized():
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,), kernel_regularizer=l2(0.01)), Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    return model


def _custom_activation():
    model = Sequential([Dense(4, activation=lambda t: t * 2.0, input_shape=(3,)), Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    return model


def _lambda_layer():
    model = Sequential([Dense(4, input_shape=(3,)), Lambda(lambda t: t * 2.0), Dense(2)])
    model.compile(loss="mse", optimizer="sgd")
    return model


def _hinge():
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(loss="hinge", optimizer="sgd")
    return model


@pytest.mark.parametrize("build, kind, x_shape", [
    (_conv, "conv", (8, 5, 5, 1)), (_regularized, "reg", (8, 3)), (_custom_activation, "act", (8, 3)),
    (_lambda_layer, "lambda", (8, 3)), (_hinge, "hinge", (8, 3))])
def test_steps_outside_the_audited_set_run_the_ordinary_way(build, kind, x_shape):
    step_replay.ENABLED = True
    set_random_seed(0)
    model = build()
    rng = np.random.default_rng(0)
    x = rng.random(x_shape, dtype=np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, x_shape[0])]
    for _ in range(5):
        model.train_on_batch(x, y)
    assert model._step_replay.replays == 0
    assert not model._step_replay.plans


def test_sample_weights_run_the_ordinary_way():
    step_replay.ENABLED = True
    set_random_seed(0)
    model = _regression()
    x, y = _data("regression", 8)
    for _ in range(5):
        model.train_on_batch(x, y, sample_weight=np.linspace(0.5, 1.5, 8))
    assert model._step_replay.replays == 0
