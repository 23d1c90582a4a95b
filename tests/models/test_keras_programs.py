"""Real Keras programs (Keras 1, 2 and 3 styles), with only their imports changed.

Each test is a small program a Keras user would write, run on a tiny seeded
synthetic data set, and asserts what the program is for: the accuracy or loss
reached, shapes, exact values, the names in the logs, or the error raised
(with what it says). Everything here is CPU-only and fast (the whole file
runs in a few seconds).
"""

import csv
import math
import re
import warnings

import numpy as np
import pytest

from shenjing import callbacks
from shenjing.autodiff import Tensor
from shenjing.layers import Activation, Add, Concatenate, Dense, Dropout, Input
from shenjing.models import Model, Sequential
from shenjing.optimizers import SGD, Adam
from shenjing.optimizers.schedules import ExponentialDecay
from shenjing.utils import set_random_seed, to_categorical

# ----------------------------------------------------------------------------- data


def blobs(n=90, classes=3, seed=0, spread=0.35):
    """Well-separated Gaussian blobs in 2-D: x (n, 2) float32, integer labels (n,)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])[:classes]
    y = np.arange(n) % classes
    x = centres[y] + spread * rng.normal(size=(n, 2))
    return x.astype("float32"), y.astype("int64")


def linear_data(n=64, seed=0):
    """y = 2·x0 − 3·x1 + 0.5·x2 + 1 (no noise): a linear model can fit it exactly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x @ np.array([[2.0], [-3.0], [0.5]]) + 1.0).astype("float32")
    return x, y


def xor_like(n=64, seed=0):
    """Label 1 where the two coordinates have the same sign (the XOR of their signs), floats (n, 1)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2)).astype("float32")
    y = (x[:, :1] * x[:, 1:] > 0).astype("float32")
    return x, y


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def mlp(seed=1, hidden=8, inputs=2, outputs=1, out_activation="sigmoid"):
    set_random_seed(seed)
    return Sequential([Dense(hidden, input_dim=inputs, activation="tanh"),
                       Dense(outputs, activation=out_activation)])


# ============================================================= Keras 1: the XOR program


def test_keras1_xor_program_runs_unchanged():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([[0], [1], [1], [0]])
    set_random_seed(3)
    model = Sequential()
    model.add(Dense(10, input_dim=2))
    model.add(Activation("tanh"))
    model.add(Dense(1))
    model.add(Activation("sigmoid"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.compile(loss="binary_crossentropy", optimizer=SGD(lr=0.1))
        model.fit(X, y, batch_size=1, nb_epoch=600, verbose=0, show_accuracy=True)
    assert any("show_accuracy" in str(w.message) for w in caught)
    assert model.optimizer.learning_rate == pytest.approx(0.1)
    assert model.optimizer.iterations == 4 * 600  # nb_epoch is epochs
    assert model.count_params() == 41
    np.testing.assert_array_equal(model.predict_classes(X), [[0], [1], [1], [0]])
    proba = model.predict_proba(X)
    assert proba.shape == (4, 1) and proba[0, 0] < 0.3 and proba[1, 0] > 0.7
    np.testing.assert_array_equal(proba, model.predict(X))
    with pytest.warns(UserWarning, match="show_accuracy"):
        score = model.evaluate(X, y, show_accuracy=True, verbose=0)
    assert isinstance(score, float) and score < 0.3


def test_keras1_layer_spellings_and_predict_classes_for_softmax():
    x, labels = blobs()
    set_random_seed(0)
    model = Sequential()
    model.add(Dense(output_dim=16, input_dim=2, init="uniform"))  # Keras 1: U(-0.05, 0.05)
    model.add(Activation("relu"))
    model.add(Dense(output_dim=3, init="uniform"))
    model.add(Activation("softmax"))
    kernel = model.layers[0].kernel.data
    assert kernel.shape == (2, 16) and model.layers[2].units == 3
    assert kernel.min() >= -0.05 and kernel.max() <= 0.05 and kernel.std() > 0.01
    model.compile(loss="categorical_crossentropy", optimizer=SGD(lr=0.5, momentum=0.9), metrics=["accuracy"])
    model.fit(x, to_categorical(labels, 3), nb_epoch=40, batch_size=16, verbose=0)
    classes = model.predict_classes(x)
    assert classes.shape == (90,)
    assert (classes == labels).mean() >= 0.95
    np.testing.assert_array_equal(classes, model.predict(x).argmax(-1))


def test_keras1_functional_model_input_output_keywords():
    a = Input(shape=(2,))
    out = Dense(1)(a)
    model = Model(input=a, output=out)
    assert model.predict(np.zeros((3, 2))).shape == (3, 1)


# ============================================================= Sequential construction


def test_sequential_list_add_input_shape_input_dim_and_Input_build_the_same_model():
    x, y = xor_like()

    def build(style):
        set_random_seed(7)
        if style == "list":
            return Sequential([Dense(6, activation="tanh", input_shape=(2,)), Dense(1, activation="sigmoid")])
        model = Sequential()
        if style == "Input":
            model.add(Input(shape=(2,)))
            model.add(Dense(6, activation="tanh"))
        else:
            model.add(Dense(6, activation="tanh", input_dim=2))
        model.add(Dense(1, activation="sigmoid"))
        return model

    models = {style: build(style) for style in ("list", "add", "Input")}
    predictions = {}
    for style, model in models.items():
        assert model.built
        assert model.input_shape == (None, 2) and model.output_shape == (None, 1)
        assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]
        assert model.count_params() == 2 * 6 + 6 + 6 + 1
        predictions[style] = model.predict(x)
    # the same seed gives the same weights whichever way the model was written
    np.testing.assert_array_equal(predictions["list"], predictions["add"])
    np.testing.assert_array_equal(predictions["list"], predictions["Input"])


def test_sequential_without_input_shape_is_built_on_first_data_then_summary_works():
    x, labels = blobs()
    set_random_seed(0)
    model = Sequential([Dense(16, activation="relu"), Dense(3, activation="softmax")])
    assert not model.built
    with pytest.raises(AttributeError):
        model.input_shape  # noqa: B018
    model.compile(optimizer=Adam(learning_rate=0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, labels, epochs=15, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] >= 0.95
    assert model.built and len(model.weights) == 4
    assert model.layers[0].kernel.shape == (2, 16)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert re.search(r"dense\w* \(Dense\)\s+\(None, 16\)\s+48", text), text
    assert re.search(r"dense\w* \(Dense\)\s+\(None, 3\)\s+51", text), text
    assert "Total params: 99" in text and "Trainable params: 99" in text and "Non-trainable params: 0" in text


def test_sequential_pop_then_add_replaces_the_head():
    set_random_seed(0)
    model = Sequential([Dense(4, input_dim=3), Dense(5, activation="relu"), Dense(2)])
    model.pop()
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense"]
    assert model.output_shape == (None, 5)
    model.add(Dense(7, activation="softmax"))
    assert model.layers[-1].kernel.shape == (5, 7)
    assert model.predict(np.ones((2, 3))).shape == (2, 7)


# ===================================================================== functional API


def _two_in_two_out(seed=0):
    set_random_seed(seed)
    a = Input(shape=(3,), name="a")
    b = Input(shape=(2,), name="b")
    merged = Concatenate(name="merged")([a, b])
    hidden = Dense(16, activation="tanh", name="hidden")(merged)
    flag = Dense(1, activation="sigmoid", name="flag")(hidden)
    kind = Dense(3, activation="softmax", name="kind")(hidden)
    return Model(inputs=[a, b], outputs=[flag, kind], name="two_by_two")


def _two_in_two_out_data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    xa = rng.normal(size=(n, 3)).astype("float32")
    xb = rng.normal(size=(n, 2)).astype("float32")
    flag = (xa[:, 0] + xb[:, 0] > 0).astype("float32")
    kind = np.digitize(xa[:, 1] - xb[:, 1], [-0.7, 0.7])
    return xa, xb, flag, kind


def test_functional_two_inputs_two_outputs_loss_dict_loss_weights_and_per_output_metrics():
    xa, xb, flag, kind = _two_in_two_out_data()
    model = _two_in_two_out()
    assert model.input_names == ["a", "b"] and model.output_names == ["flag", "kind"]
    assert isinstance(model.get_layer("merged"), Concatenate)
    assert model.get_layer("merged").output_shape == (None, 5)
    assert {layer.name for layer in model.layers} == {"a", "b", "merged", "hidden", "flag", "kind"}
    assert model.get_layer("hidden") is model.layers[[layer.name for layer in model.layers].index("hidden")]
    model.compile(optimizer=Adam(learning_rate=0.03),
                  loss={"flag": "binary_crossentropy", "kind": "sparse_categorical_crossentropy"},
                  loss_weights={"flag": 1.0, "kind": 0.5},
                  metrics={"flag": ["accuracy"], "kind": ["accuracy"]})
    history = model.fit([xa, xb], {"flag": flag, "kind": kind}, epochs=30, batch_size=32, verbose=0,
                        validation_split=0.25)
    # Keras 2 log names: <output layer name>_loss, <output layer name>_<metric>
    assert set(history.history) == {"loss", "flag_loss", "kind_loss", "flag_accuracy", "kind_accuracy",
                                    "val_loss", "val_flag_loss", "val_kind_loss", "val_flag_accuracy",
                                    "val_kind_accuracy"}
    assert history.history["flag_accuracy"][-1] >= 0.9
    assert history.history["kind_accuracy"][-1] >= 0.8
    assert model.metrics_names == ["loss", "flag_loss", "kind_loss", "flag_accuracy", "kind_accuracy"]
    # validation_split took the last quarter of every input and output
    val = model.evaluate([xa[72:], xb[72:]], [flag[72:], kind[72:]], verbose=0, return_dict=True)
    for name, value in val.items():
        assert history.history["val_" + name][-1] == pytest.approx(value, rel=1e-6)

    logs = model.evaluate({"a": xa, "b": xb}, [flag, kind], batch_size=1000, verbose=0, return_dict=True)
    # the total loss is the weighted sum of the per-output losses
    assert logs["loss"] == pytest.approx(logs["flag_loss"] + 0.5 * logs["kind_loss"], rel=1e-5)
    # each accuracy is the right one for its output: binary for the sigmoid, sparse categorical for softmax
    p_flag, p_kind = model.predict([xa, xb])
    assert p_flag.shape == (96, 1) and p_kind.shape == (96, 3)
    assert logs["flag_accuracy"] == pytest.approx(np.mean((p_flag[:, 0] > 0.5) == flag))
    assert logs["kind_accuracy"] == pytest.approx(np.mean(p_kind.argmax(-1) == kind))
    eps = 1e-7
    p = p_flag[:, 0]
    bce = -np.mean(flag * np.log(np.clip(p, eps, 1)) + (1 - flag) * np.log(np.clip(1 - p, eps, 1)))
    assert logs["flag_loss"] == pytest.approx(bce, rel=1e-4)


def test_shared_layer_counts_its_weights_once_and_sums_both_branches_gradients():
    set_random_seed(0)
    left = Input(shape=(4,), name="left")
    right = Input(shape=(4,), name="right")
    shared = Dense(3, name="shared")
    distance = Add(name="sum")([shared(left), shared(right)])
    model = Model([left, right], distance)
    assert model.count_params() == 4 * 3 + 3
    assert len(model.trainable_weights) == 2
    assert [layer.name for layer in model.layers].count("shared") == 1

    rng = np.random.default_rng(1)
    xl = rng.normal(size=(5, 4)).astype("float32")
    xr = rng.normal(size=(5, 4)).astype("float32")
    out = model([Tensor(xl), Tensor(xr)])
    out.sum().backward()
    # d/dW sum(xl W + b + xr W + b) = (xl + xr)^T 1 per column, d/db = 2 * batch
    expected_kernel = np.repeat((xl + xr).sum(axis=0)[:, None], 3, axis=1)
    np.testing.assert_allclose(shared.kernel.grad, expected_kernel, rtol=1e-5)
    np.testing.assert_allclose(shared.bias.grad, np.full(3, 10.0), rtol=1e-6)

    # and it trains: the siamese sum fits a target that is linear in (xl + xr)
    xl = rng.normal(size=(64, 4)).astype("float32")
    xr = rng.normal(size=(64, 4)).astype("float32")
    target = (xl + xr) @ rng.normal(size=(4, 3)).astype("float32")
    model.compile(optimizer=SGD(learning_rate=0.1), loss="mse")
    history = model.fit([xl, xr], target, epochs=40, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 1e-3 * history.history["loss"][0]


def test_residual_add_and_nested_model_used_as_a_layer():
    x, y = linear_data(n=96)
    set_random_seed(2)
    block_in = Input(shape=(8,), name="block_in")
    block_out = Dense(8, activation="tanh", name="block_dense")(block_in)
    block = Model(block_in, Add(name="residual")([block_in, block_out]), name="res_block")
    assert block.count_params() == 8 * 8 + 8

    inputs = Input(shape=(3,), name="features")
    h = Dense(8, name="embed")(inputs)
    h = block(h)  # the nested model is a layer of the outer one
    h = block(h)  # and may be applied twice (shared weights)
    outputs = Dense(1, name="head")(h)
    model = Model(inputs, outputs)
    assert model.get_layer("res_block") is block
    assert isinstance(model.get_layer(index=-1), Dense) and model.get_layer(index=-1).name == "head"
    assert [layer.name for layer in model.layers] == ["features", "embed", "res_block", "head"]
    assert model.count_params() == (3 * 8 + 8) + (8 * 8 + 8) + (8 + 1)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")

    model.compile(optimizer=Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=80, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.05 * history.history["loss"][0]
    # the residual is really there: with the block's Dense zeroed, the block is the identity
    block.get_layer("block_dense").set_weights([np.zeros((8, 8), "float32"), np.zeros(8, "float32")])
    embed, head = model.get_layer("embed").get_weights(), model.get_layer("head").get_weights()
    expected = (x @ embed[0] + embed[1]) @ head[0] + head[1]
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-5)


def test_feature_extractor_from_inputs_and_an_intermediate_layer_output():
    x, labels = blobs()
    set_random_seed(0)
    inputs = Input(shape=(2,))
    hidden = Dense(6, activation="relu", name="hidden")(inputs)
    model = Model(inputs, Dense(3, activation="softmax")(hidden))
    model.compile(optimizer=Adam(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, labels, epochs=2, verbose=0)
    extractor = Model(inputs=model.inputs, outputs=model.get_layer("hidden").output)
    assert extractor.count_params() == 2 * 6 + 6
    kernel, bias = model.get_layer("hidden").get_weights()
    np.testing.assert_allclose(extractor.predict(x), np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6)


def test_model_input_and_output_properties():
    inputs = Input(shape=(2,))
    hidden = Dense(6, activation="relu", name="hidden")(inputs)
    model = Model(inputs, Dense(3)(hidden))
    assert model.input is inputs and model.output is model.outputs[0]
    extractor = Model(inputs=model.input, outputs=model.get_layer("hidden").output)
    assert extractor.predict(np.zeros((4, 2))).shape == (4, 6)
    sequential = Sequential([Dense(4, input_dim=3, name="first"), Dense(1)])
    assert sequential.input.shape == (None, 3) and sequential.output.shape == (None, 1)


def _flag_and_value_model():
    set_random_seed(0)
    a = Input(shape=(2,))
    flag = Dense(1, activation="sigmoid", name="flag")(a)
    value = Dense(1, name="value")(a)
    model = Model(a, [flag, value])
    model.compile(optimizer=SGD(learning_rate=0.1), loss=["binary_crossentropy", "mse"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 2)).astype("float32")
    return model, x, [(x[:, 0] > 0).astype("float32"), x[:, 1:]]


def test_class_weight_on_a_multi_output_model_is_refused():
    model, x, ys = _flag_and_value_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(x, ys, class_weight={0: 1.0, 1: 5.0}, epochs=1, verbose=0)
    assert same_weights(model.get_weights(), before)


def test_sample_weight_per_output_dict():
    model, x, ys = _flag_and_value_model()
    ones = np.ones(16, "float32")
    weighted = model.evaluate(x, ys, sample_weight={"flag": ones, "value": ones}, verbose=0)
    assert weighted == pytest.approx(model.evaluate(x, ys, verbose=0))


def test_graph_disconnected_error_names_the_missing_input():
    a = Input(shape=(2,), name="used")
    b = Input(shape=(2,), name="forgotten")
    out = Add()([Dense(2)(a), Dense(2)(b)])
    with pytest.raises(ValueError, match="Graph disconnected") as info:
        Model(inputs=a, outputs=out)
    assert "'forgotten'" in str(info.value) and "used" in str(info.value)


def test_functional_layers_are_ordered_by_depth_like_keras():
    a = Input(shape=(4,), name="first")
    b = Input(shape=(4,), name="second")
    shared = Dense(3, name="shared")
    model = Model([a, b], Add(name="sum")([shared(a), shared(b)]))
    assert [layer.name for layer in model.layers] == ["first", "second", "shared", "sum"]


# ================================================================== subclassed models


class TwoLayerNet(Model):
    def __init__(self, hidden=16, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Dense(hidden, activation="relu")
        self.dropout = Dropout(0.1)
        self.classifier = Dense(classes, activation="softmax")

    def call(self, inputs, training=None):
        return self.classifier(self.dropout(self.hidden(inputs), training=training))


def test_subclassed_model_trains_predicts_and_tracks_its_weights():
    x, labels = blobs()
    set_random_seed(0)
    model = TwoLayerNet()
    assert model.trainable_weights == []  # not built before it sees data
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.optimizer.learning_rate = 0.05
    history = model.fit(x, labels, epochs=20, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9
    assert len(model.trainable_weights) == 4
    assert [w.shape for w in model.trainable_weights] == [(2, 16), (16,), (16, 3), (3,)]
    assert model.count_params() == 2 * 16 + 16 + 16 * 3 + 3
    proba = model.predict(x, batch_size=7)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(-1) == labels).mean() >= 0.95
    np.testing.assert_array_equal(proba, model.predict(x))  # dropout is off in inference


# ====================================================== regression and classification


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_linear_regression_with_mse_or_mae_and_mae_metric(loss):
    x, y = linear_data()
    set_random_seed(0)
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile(optimizer=SGD(learning_rate=0.1 if loss == "mse" else 0.05), loss=loss, metrics=["mae"])
    history = model.fit(x, y, epochs=60 if loss == "mse" else 150, batch_size=16, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], [2.0, -3.0, 0.5], atol=0.05)
    np.testing.assert_allclose(bias, [1.0], atol=0.05)
    loss_value, mae = model.evaluate(x, y, verbose=0)
    prediction = model.predict(x)
    assert mae == pytest.approx(np.mean(np.abs(prediction - y)), rel=1e-4)
    expected_loss = np.mean((prediction - y) ** 2) if loss == "mse" else mae
    assert loss_value == pytest.approx(expected_loss, rel=1e-3)


def test_multiclass_sparse_labels_and_one_hot_labels_train_the_same_way():
    x, labels = blobs()
    one_hot = to_categorical(labels, 3)
    assert one_hot.shape == (90, 3) and one_hot.sum() == 90

    def run(loss, targets):
        set_random_seed(4)
        model = Sequential([Dense(8, input_shape=(2,), activation="relu"), Dense(3, activation="softmax")])
        model.compile(optimizer=Adam(learning_rate=0.05), loss=loss, metrics=["accuracy"])
        history = model.fit(x, targets, epochs=15, batch_size=16, verbose=0)
        return model, history.history

    sparse_model, sparse = run("sparse_categorical_crossentropy", labels)
    dense_model, dense = run("categorical_crossentropy", one_hot)
    assert sparse["accuracy"][-1] >= 0.95 and dense["accuracy"][-1] >= 0.95
    # the two losses are the same function of the same data: the same run, up to rounding
    np.testing.assert_allclose(sparse["loss"], dense["loss"], rtol=1e-4)
    np.testing.assert_allclose(sparse_model.predict(x), dense_model.predict(x), rtol=1e-3, atol=1e-5)


def test_binary_classification_with_sigmoid():
    x, y = xor_like(n=128)
    set_random_seed(0)
    model = Sequential([Dense(16, input_dim=2, activation="tanh"), Dense(1, activation="sigmoid")])
    model.compile(optimizer=Adam(learning_rate=0.03), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy == pytest.approx(np.mean((model.predict(x) > 0.5) == y))
    assert loss < history.history["loss"][0]


# ================================================================== fit's arguments


def test_validation_split_takes_the_last_fraction_before_shuffling():
    # the last quarter has the opposite rule from the rest: if any of it leaked into training,
    # or the split were taken after shuffling, the runs below would differ
    x, y = xor_like(n=80)
    y[60:] = 1 - y[60:]

    def model():
        m = mlp(seed=5)
        m.compile(optimizer=SGD(learning_rate=0.3), loss="binary_crossentropy", metrics=["accuracy"])
        return m

    split = model()
    set_random_seed(11)  # the same shuffling for both runs
    history = split.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, shuffle=True, verbose=0)
    first = model()
    set_random_seed(11)
    first.fit(x[:60], y[:60], epochs=3, batch_size=16, shuffle=True, verbose=0)
    assert same_weights(split.get_weights(), first.get_weights())
    val_loss, val_accuracy = split.evaluate(x[60:], y[60:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_accuracy)


def test_validation_data_and_history_keys():
    x, y = xor_like(n=64)
    xv, yv = xor_like(n=32, seed=1)
    model = mlp()
    model.compile(optimizer=Adam(learning_rate=0.02), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=16, validation_data=(xv, yv), verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2]
    assert model.history is history
    loss, accuracy = model.evaluate(xv, yv, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(accuracy)


def test_shuffle_false_is_deterministic_and_shuffle_true_depends_on_the_seed():
    x, y = xor_like(n=64)

    def run(shuffle, seed):
        model = mlp(seed=1)
        model.compile(optimizer=SGD(learning_rate=0.2), loss="binary_crossentropy")
        set_random_seed(seed)
        history = model.fit(x, y, epochs=3, batch_size=8, shuffle=shuffle, verbose=0)
        return model.get_weights(), history.history["loss"]

    unshuffled_a, unshuffled_b = run(False, 100), run(False, 200)
    assert same_weights(unshuffled_a[0], unshuffled_b[0]) and unshuffled_a[1] == unshuffled_b[1]
    # shuffle=False is plain in-order mini-batch training
    model = mlp(seed=1)
    model.compile(optimizer=SGD(learning_rate=0.2), loss="binary_crossentropy")
    for _ in range(3):
        for start in range(0, 64, 8):
            model.train_on_batch(x[start:start + 8], y[start:start + 8])
    assert same_weights(model.get_weights(), unshuffled_a[0])
    shuffled_a, shuffled_b = run(True, 100), run(True, 200)
    assert not same_weights(shuffled_a[0], unshuffled_a[0])
    assert not same_weights(shuffled_a[0], shuffled_b[0])
    assert same_weights(shuffled_a[0], run(True, 100)[0])


def test_class_weight_is_a_per_class_sample_weight():
    x, labels = blobs(n=60)

    def run(**kwargs):
        set_random_seed(2)
        model = Sequential([Dense(3, input_dim=2, activation="softmax")])
        model.compile(optimizer=SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
        model.fit(x, labels, epochs=2, batch_size=20, shuffle=False, verbose=0, **kwargs)
        return model.get_weights()

    weights = {0: 1.0, 1: 3.0, 2: 0.0}
    by_class = run(class_weight=weights)
    by_sample = run(sample_weight=np.array([weights[c] for c in labels], "float32"))
    for a, b in zip(by_class, by_sample):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(by_class[0], run()[0])


def test_sample_weight_doubled_on_half_the_data_equals_training_on_that_half():
    # Keras's loss is sum(w * l) / batch: weights 2 on half a batch of 2n equal weights 1 on a batch of n
    x, y = linear_data(n=64)
    keep = np.arange(64) % 2 == 0

    def model():
        set_random_seed(9)
        m = Sequential([Dense(1, input_dim=3)])
        m.compile(optimizer=SGD(learning_rate=0.05), loss="mse")
        return m

    weighted = model()
    weighted.fit(x, y, sample_weight=2.0 * keep, epochs=3, batch_size=16, shuffle=False, verbose=0)
    half = model()
    half.fit(x[keep], y[keep], epochs=3, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(weighted.get_weights(), half.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # evaluate with sample_weight: the weighted mean over the batch
    error = (weighted.predict(x) - y)[:, 0] ** 2
    value = weighted.evaluate(x, y, sample_weight=2.0 * keep, batch_size=64, verbose=0)
    assert value == pytest.approx(np.sum(2.0 * keep * error) / 64, rel=1e-5)


def test_initial_epoch_steps_per_epoch_and_batch_larger_than_the_data():
    x, y = xor_like(n=40)
    model = mlp()
    model.compile(optimizer=SGD(learning_rate=0.1), loss="binary_crossentropy")
    seen = []
    log = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(("epoch", epoch)),
                                   on_batch_end=lambda batch, logs: seen.append(("batch", batch)))
    history = model.fit(x, y, batch_size=1000, epochs=5, initial_epoch=3, verbose=0, callbacks=[log])
    # epochs is the index of the last epoch + 1, not a count: two epochs, numbered 3 and 4
    assert seen == [("epoch", 3), ("batch", 0), ("epoch", 4), ("batch", 0)]
    assert history.epoch == [3, 4] and len(history.history["loss"]) == 2
    assert model.optimizer.iterations == 2  # one batch of all 40 samples per epoch

    seen.clear()
    model.fit(x, y, batch_size=8, epochs=2, steps_per_epoch=3, verbose=0, callbacks=[log])
    assert seen == [("epoch", 0), ("batch", 0), ("batch", 1), ("batch", 2),
                    ("epoch", 1), ("batch", 0), ("batch", 1), ("batch", 2)]
    assert model.optimizer.iterations == 2 + 6


def test_steps_per_epoch_continues_through_the_data_across_epochs():
    x, y = linear_data(n=32)

    def model():
        set_random_seed(3)
        m = Sequential([Dense(1, input_dim=3)])
        m.compile(optimizer=SGD(learning_rate=0.05), loss="mse")
        return m

    by_fit = model()
    by_fit.fit(x, y, batch_size=8, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0)
    by_hand = model()
    for start in (0, 8, 16, 24):  # Keras: epoch 1 sees batches 0, 1; epoch 2 batches 2, 3
        by_hand.train_on_batch(x[start:start + 8], y[start:start + 8])
    assert same_weights(by_fit.get_weights(), by_hand.get_weights())


# ========================================================================= callbacks


def test_early_stopping_restores_the_best_epochs_weights():
    x, y = xor_like(n=64)
    xv, yv = xor_like(n=32, seed=1)
    yv = 1 - yv  # validation labels flipped: val_loss rises as training improves
    model = mlp(seed=2)
    model.compile(optimizer=SGD(learning_rate=1.0), loss="binary_crossentropy", metrics=["accuracy"])
    snapshots = []
    record = callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append((logs["val_loss"], model.get_weights())))
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=50, batch_size=16, validation_data=(xv, yv), callbacks=[record, stopper],
                        verbose=0)
    epochs_run = len(history.history["loss"])
    assert epochs_run < 50 and stopper.stopped_epoch == epochs_run - 1
    best = int(np.argmin(history.history["val_loss"]))
    assert stopper.best_epoch == best and epochs_run == best + 3  # patience 2
    assert same_weights(model.get_weights(), snapshots[best][1])
    assert not same_weights(model.get_weights(), snapshots[-1][1])
    assert model.evaluate(xv, yv, verbose=0)[0] == pytest.approx(min(history.history["val_loss"]), rel=1e-6)


def test_reduce_lr_on_plateau_lowers_the_optimizers_learning_rate():
    x, y = xor_like(n=32)
    model = mlp()
    model.compile(optimizer=SGD(learning_rate=0.2), loss="binary_crossentropy")
    # min_delta larger than any possible change: every epoch after the first is a plateau
    reduce = callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0, min_lr=0.03)
    history = model.fit(x, y, epochs=5, batch_size=8, callbacks=[reduce], verbose=0)
    assert model.optimizer.learning_rate == pytest.approx(0.03)
    assert history.history["learning_rate"] == pytest.approx([0.2, 0.2, 0.1, 0.05, 0.03])


def test_reduce_lr_on_plateau_with_a_schedule_raises_a_clear_error():
    x, y = xor_like(n=32)
    model = mlp()
    schedule = ExponentialDecay(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=SGD(learning_rate=schedule), loss="binary_crossentropy")
    before = model.get_weights()
    with pytest.raises(TypeError) as info:
        model.fit(x, y, epochs=2, callbacks=[callbacks.ReduceLROnPlateau(monitor="loss")], verbose=0)
    message = str(info.value)
    assert "ReduceLROnPlateau" in message and "schedule" in message and "SGD" in message
    assert same_weights(model.get_weights(), before) and model.optimizer.iterations == 0


def test_learning_rate_scheduler_sets_the_rate_each_epoch():
    x, y = xor_like(n=32)
    model = mlp()
    model.compile(optimizer=SGD(learning_rate=0.5), loss="binary_crossentropy")
    used = []

    def schedule(epoch, lr):
        return lr if epoch < 2 else lr * 0.1

    probe = callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: used.append(model.optimizer.learning_rate))
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0,
                        callbacks=[callbacks.LearningRateScheduler(schedule), probe])
    assert used == pytest.approx([0.5, 0.5, 0.05, 0.005])
    assert history.history["learning_rate"] == pytest.approx([0.5, 0.5, 0.05, 0.005])
    # the Keras 1 form schedule(epoch)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))])
    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_terminate_on_nan_stops_a_diverging_model(capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype("float32")
    y = (100 * rng.normal(size=(64, 1))).astype("float32")
    set_random_seed(0)
    model = Sequential([Dense(16, input_dim=2, activation="relu"), Dense(1)])
    model.compile(optimizer=SGD(learning_rate=1e6), loss="mse")
    with np.errstate(all="ignore"):
        history = model.fit(x, y, epochs=20, batch_size=4, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1
    assert not math.isfinite(history.history["loss"][0])
    assert model.optimizer.iterations < 16  # stopped inside the first epoch
    assert "Invalid loss" in capsys.readouterr().out


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = xor_like(n=40)
    path = tmp_path / "training.csv"
    model = mlp()
    model.compile(optimizer=Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=10, validation_split=0.25, verbose=0,
                        callbacks=[callbacks.CSVLogger(str(path))])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [float(r[name]) for r in rows] == pytest.approx(history.history[name], rel=1e-6)


# ================================================== evaluate / predict / *_on_batch / weights


def test_evaluate_return_forms_predict_batch_size_and_on_batch_methods():
    x, y = xor_like(n=50)
    plain = mlp()
    plain.compile(optimizer="sgd", loss="binary_crossentropy")
    value = plain.evaluate(x, y, verbose=0)
    assert isinstance(value, float)
    assert plain.evaluate(x, y, verbose=0, return_dict=True) == {"loss": value}

    model = mlp()
    model.compile(optimizer=SGD(learning_rate=0.1), loss="binary_crossentropy", metrics=["accuracy", "mse"])
    values = model.evaluate(x, y, batch_size=7, verbose=0)
    assert isinstance(values, list) and len(values) == 3
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "mse"] == model.metrics_names
    assert values == pytest.approx([logs["loss"], logs["accuracy"], logs["mse"]], rel=1e-6)
    p = model.predict(x)
    assert logs["mse"] == pytest.approx(np.mean((p - y) ** 2), rel=1e-5)

    # predict: batch_size does not change the result; one array of (n, units)
    for batch_size in (1, 7, 50, 500):
        np.testing.assert_allclose(model.predict(x, batch_size=batch_size), p, rtol=1e-6)
    np.testing.assert_array_equal(model.predict_on_batch(x[:5]), p[:5])

    # test_on_batch: loss and metrics of that batch, no update; train_on_batch: the loss before the update
    before = model.get_weights()
    tested = model.test_on_batch(x[:10], y[:10])
    assert same_weights(model.get_weights(), before)
    assert tested == pytest.approx(model.evaluate(x[:10], y[:10], verbose=0), rel=1e-6)
    trained = model.train_on_batch(x[:10], y[:10])
    assert trained == pytest.approx(tested, rel=1e-6)
    assert not same_weights(model.get_weights(), before) and model.optimizer.iterations == 1
    as_dict = model.train_on_batch(x[:10], y[:10], return_dict=True)
    assert list(as_dict) == ["loss", "accuracy", "mse"] and as_dict["loss"] < trained[0]


def test_get_weights_set_weights_round_trip_gives_identical_predictions():
    x, labels = blobs()

    def build(seed):
        set_random_seed(seed)
        return Sequential([Dense(8, input_dim=2, activation="relu"), Dense(3, activation="softmax")])

    trained = build(1)
    trained.compile(optimizer=Adam(learning_rate=0.05), loss="sparse_categorical_crossentropy")
    trained.fit(x, labels, epochs=3, verbose=0)
    copy = build(2)
    assert not np.array_equal(copy.predict(x), trained.predict(x))
    weights = trained.get_weights()
    assert [w.shape for w in weights] == [(2, 8), (8,), (8, 3), (3,)]
    copy.set_weights(weights)
    np.testing.assert_array_equal(copy.predict(x), trained.predict(x))
    weights[0][...] = 0  # get_weights returns copies
    assert not np.all(trained.get_weights()[0] == 0)
    with pytest.raises(ValueError, match="expected a list of 4 arrays"):
        copy.set_weights(weights[:2])
    with pytest.raises(ValueError, match=r"shape \(2, 8\)"):
        copy.set_weights([np.zeros((3, 8))] + weights[1:])


def test_frozen_layer_keeps_its_weights_and_summary_counts_it_non_trainable():
    x, y = xor_like(n=64)
    set_random_seed(0)
    model = Sequential([Dense(8, input_dim=2, activation="tanh", name="features"),
                        Dense(1, activation="sigmoid", name="classifier")])
    model.get_layer("features").trainable = False
    model.compile(optimizer=Adam(learning_rate=0.05), loss="binary_crossentropy")
    frozen_before = model.get_layer("features").get_weights()
    head_before = model.get_layer("classifier").get_weights()
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert same_weights(model.get_layer("features").get_weights(), frozen_before)
    assert not np.array_equal(model.get_layer("classifier").get_weights()[0], head_before[0])
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 33" in text and "Trainable params: 9" in text and "Non-trainable params: 24" in text


# =================================================================== reproducibility


def test_set_random_seed_makes_runs_identical_bit_for_bit():
    x, y = xor_like(n=64)

    def run(seed):
        set_random_seed(seed)
        model = Sequential([Dense(8, input_dim=2, activation="relu"), Dropout(0.3), Dense(1, activation="sigmoid")])
        model.compile(optimizer=Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
        initial = model.get_weights()
        history = model.fit(x, y, epochs=4, batch_size=16, shuffle=True, verbose=0)
        return initial, history.history, model.get_weights()

    first, second, other = run(42), run(42), run(43)
    assert same_weights(first[0], second[0])
    assert first[1] == second[1]  # floats compared exactly
    assert same_weights(first[2], second[2])
    assert not same_weights(first[0], other[0])
    assert first[1]["loss"] != other[1]["loss"]


# ==================================================== errors before any training step


def _classifier():
    set_random_seed(0)
    model = Sequential([Dense(4, input_shape=(3,), activation="relu"), Dense(3, activation="softmax")])
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(20, 3)).astype("float32"), np.arange(20) % 3


def _nan_x():
    x, y = _data()
    x[19, 1] = np.nan  # in the last batch: found before the first step all the same
    return x, y


def _inf_y():
    x, y = _data()
    y = to_categorical(y, 3)
    y[19, 2] = np.inf
    return x, y


ERRORS = {
    # name: (loss, x/y maker, fit kwargs, fragments the message must contain)
    "wrong input shape": ("sparse_categorical_crossentropy",
                          lambda: (np.zeros((20, 5), "float32"), np.arange(20) % 3), {},
                          ["x", "(20, 5)", "(None, 3)"]),
    "integer labels with categorical_crossentropy": ("categorical_crossentropy", _data, {},
                                                     ["categorical_crossentropy", "y", "(20,)", "(20, 3)",
                                                      "sparse_categorical_crossentropy"]),
    "label outside the classes": ("sparse_categorical_crossentropy",
                                  lambda: (_data()[0], np.r_[np.arange(19) % 3, 3]), {},
                                  ["y", "label 3", "[0, 3)"]),
    "NaN in x": ("sparse_categorical_crossentropy", _nan_x, {}, ["x", "NaN", "(19, 1)", "finite"]),
    "inf in y": ("categorical_crossentropy", _inf_y, {}, ["y", "inf", "(19, 2)", "finite"]),
    "empty x": ("sparse_categorical_crossentropy",
                lambda: (np.zeros((0, 3), "float32"), np.zeros((0,), "int64")), {}, ["empty", "0 samples"]),
    "batch_size=0": ("sparse_categorical_crossentropy", _data, {"batch_size": 0}, ["batch_size", "positive", "0"]),
    "negative batch_size": ("sparse_categorical_crossentropy", _data, {"batch_size": -4},
                            ["batch_size", "positive", "-4"]),
    "x and y of different lengths": ("sparse_categorical_crossentropy", lambda: (_data()[0], _data()[1][:15]), {},
                                     ["x has 20", "y has 15"]),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_data_is_rejected_before_any_training_step(case):
    loss, make, kwargs, fragments = ERRORS[case]
    x, y = make()
    model = _classifier()
    model.compile(optimizer=SGD(learning_rate=0.1), loss=loss)
    before = model.get_weights()
    with pytest.raises(ValueError) as info:
        model.fit(x, y, epochs=1, verbose=0, **{"batch_size": 4, **kwargs})
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert model.optimizer.iterations == 0
    assert same_weights(model.get_weights(), before)


@pytest.mark.parametrize("kind", ["activation", "loss", "optimizer", "initializer", "metric"])
def test_unknown_names_are_reported_with_the_closest_known_one(kind):
    x, y = _data()
    model = _classifier()
    with pytest.raises(ValueError) as info:
        if kind == "activation":
            Dense(3, activation="relux")
        elif kind == "initializer":
            Dense(3, kernel_initializer="glorot_unifrom")
        else:
            compile_args = {"optimizer": "sgd", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
            compile_args.update({"loss": {"loss": "sparse_categorical_crossentropyy"},
                                 "optimizer": {"optimizer": "adamm"},
                                 "metric": {"metrics": ["acuracy"]}}[kind])
            model.compile(**compile_args)
            model.fit(x, y, verbose=0)
    message = str(info.value).lower()
    bad, good = {"activation": ("relux", "relu"), "loss": ("sparse_categorical_crossentropyy",
                                                           "sparse_categorical_crossentropy"),
                 "optimizer": ("adamm", "adam"), "initializer": ("glorot_unifrom", "glorot_uniform"),
                 "metric": ("acuracy", "accuracy")}[kind]
    assert kind in message and repr(bad) in message and repr(good) in message
    if kind in ("loss", "optimizer", "metric"):
        assert {"loss": "'loss'", "optimizer": "'optimizer'", "metric": "'metrics'"}[kind] in message
        assert model.optimizer is None or model.optimizer.iterations == 0


def test_unknown_initializer_error_names_the_argument():
    with pytest.raises(ValueError, match="bias_initializer"):
        Dense(3, bias_initializer="zeroes")


def test_integer_x_runs_a_float32_model_in_float32():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    model = Sequential([Dense(3, input_dim=2, activation="tanh"), Dense(1, activation="sigmoid")])
    assert model.predict(x).dtype == np.float32
    assert model.predict(x.astype("float64")).dtype == np.float32


def test_non_numeric_x_is_rejected_with_an_error_naming_x():
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises((ValueError, TypeError), match=r"fit: x"):
        model.fit(np.array([["a", "b", "c"]] * 20), np.arange(20) % 3, verbose=0)


def test_fit_and_evaluate_before_compile_raise_but_predict_works():
    x, y = _data()
    model = _classifier()
    with pytest.raises(RuntimeError) as info:
        model.fit(x, y, verbose=0)
    assert "compile" in str(info.value) and "fit" in str(info.value) and model.name in str(info.value)
    with pytest.raises(RuntimeError, match="compile"):
        model.evaluate(x, y, verbose=0)
    with pytest.raises(RuntimeError, match="compile"):
        model.train_on_batch(x, y)
    assert model.predict(x).shape == (20, 3)  # as in Keras, inference needs no compile


# =================================================================== progress output


EPOCH_LINE = re.compile(r"^(\d+)/\1 \[={30}\] - \d+s \d+(?:us|ms|s)/step - loss: \d+\.\d{4} - accuracy: \d\.\d{4}"
                        r" - val_loss: \d+\.\d{4} - val_accuracy: \d\.\d{4}$")
VERBOSE2_LINE = re.compile(r"^(\d+)/\1 - \d+s - loss: \d+\.\d{4} - accuracy: \d\.\d{4}"
                           r" - val_loss: \d+\.\d{4} - val_accuracy: \d\.\d{4}$")


@pytest.mark.parametrize("verbose", [1, 2, 0])
def test_fit_progress_output_is_one_clean_line_per_epoch(verbose, capsys):
    x, y = xor_like(n=40)
    model = mlp()
    model.compile(optimizer=Adam(learning_rate=0.01), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, verbose=verbose)
    out = capsys.readouterr().out
    assert "\r" not in out
    if verbose == 0:
        assert out == ""
        return
    lines = out.splitlines()
    assert lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    pattern = EPOCH_LINE if verbose == 1 else VERBOSE2_LINE
    progress = lines[1::2]
    assert len(progress) == 3
    for epoch, line in enumerate(progress):
        match = pattern.match(line)
        assert match, line
        assert match.group(1) == "4"  # 32 training samples, batches of 8
        shown = float(re.search(r" loss: (\d+\.\d+)", line).group(1))
        assert shown == pytest.approx(history.history["loss"][epoch], abs=5e-5)


def test_evaluate_and_predict_progress_lines(capsys):
    x, y = xor_like(n=40)
    model = mlp()
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    model.evaluate(x, y, batch_size=10, verbose=1)
    model.predict(x, batch_size=8, verbose=1)
    model.predict(x)  # predict is silent by default
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 2
    assert re.match(r"^4/4 \[={30}\] - \d+s \d+(us|ms|s)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}$", lines[0])
    assert re.match(r"^5/5 \[={30}\] - \d+s \d+(us|ms|s)/step$", lines[1])
