"""TensorBoard event files and GradientMonitor (shenjing.callbacks_extra), and the vanishing-gradients example."""

import glob
import importlib.util
import math
import os
import struct
import warnings

import numpy as np
import pytest

from shenjing import layers
from shenjing.callbacks_extra import GradientMonitor, TensorBoard, crc32c, masked_crc32c
from shenjing.models import Sequential

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def small_model(activation="tanh"):
    model = Sequential([layers.Dense(6, activation=activation, input_shape=(4,), name="hidden"),
                        layers.Dense(3, activation="softmax", name="out")])
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    return model


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, np.eye(3)[rng.integers(0, 3, n)].astype("float32")


# ------------------------------------------------------------------------------------ GradientMonitor
def test_gradient_monitor_records_per_layer_norms(capsys):
    model = small_model()
    monitor = GradientMonitor(verbose=1, log_every=2)
    calls = []
    original = monitor.on_gradients
    monitor.on_gradients = lambda batch, pairs, logs=None: (calls.append(batch), original(batch, pairs, logs))
    x, y = data()
    model.fit(x, y, epochs=3, batch_size=16, callbacks=[monitor], verbose=1)
    assert calls == [0, 1, 2] * 3  # once per step, batch index within the epoch
    assert monitor.epochs == [0, 1, 2] and list(monitor.history) == ["hidden", "out"]
    for name in ("hidden", "out"):
        assert len(monitor.history[name]) == 3
        for grad_norm, weight_norm in monitor.history[name]:
            assert 0 < grad_norm < 10 and 0 < weight_norm < 100
    weights = model.get_layer("out").get_weights()
    assert monitor.history["out"][-1][1] == pytest.approx(math.sqrt(sum((w.astype("float64") ** 2).sum()
                                                                        for w in weights)), rel=1e-6)
    assert "apply_gradients" not in vars(model.optimizer)  # the fallback wrapper is gone after fit
    out = capsys.readouterr().out
    assert out.count("GradientMonitor, epoch") == 1  # log_every=2: epoch 2 only
    # printed after the epoch's progress line, not inside it
    assert out.index("GradientMonitor, epoch 2") > out.index("Epoch 2/3") and \
        out.index("GradientMonitor, epoch 2") < out.index("Epoch 3/3")


def test_gradient_norm_is_the_mean_over_the_epochs_steps():
    model = small_model()
    monitor = GradientMonitor(verbose=0)
    monitor.set_model(model)
    monitor.on_train_begin()
    monitor.on_epoch_begin(0)
    kernel, bias = model.get_layer("hidden").trainable_weights
    monitor.on_gradients(0, [(np.full(kernel.shape, 1.0, "float32"), kernel), (None, bias)])
    monitor.on_gradients(1, [(np.zeros(kernel.shape, "float32"), kernel), (np.full(bias.shape, 2.0), bias)])
    monitor.on_epoch_end(0)
    monitor.on_train_end()
    step_norms = [math.sqrt(kernel.size), math.sqrt(4.0 * bias.size)]
    assert monitor.history["hidden"][0][0] == pytest.approx(sum(step_norms) / 2)
    assert monitor.history["out"] == []  # no gradient seen for that layer


def test_vanishing_and_exploding_gradients_warn_naming_the_layer():
    x, y = data()
    model = small_model()
    with pytest.warns(RuntimeWarning) as record:
        model.fit(x, y, epochs=2, batch_size=16, callbacks=[GradientMonitor(vanish_threshold=10, verbose=0)],
                  verbose=0)
    messages = [str(w.message) for w in record if "GradientMonitor" in str(w.message)]
    assert len(messages) == 2  # once per layer, not once per epoch
    assert any("vanishing gradients in layer 'hidden'" in m for m in messages)
    assert any("vanishing gradients in layer 'out'" in m for m in messages)

    monitor = GradientMonitor(explode_threshold=1e-6, verbose=0)
    with pytest.warns(RuntimeWarning) as record:
        small_model().fit(x, y, epochs=1, batch_size=16, callbacks=[monitor], verbose=0)
    messages = [str(w.message) for w in record]
    assert any("exploding gradients in layer 'hidden'" in m for m in messages)
    assert any("exploding gradients in layer 'out'" in m for m in messages)
    assert {alert[1] for alert in monitor.alerts} == {"hidden", "out"}

    monitor = GradientMonitor(verbose=0)  # a NaN gradient counts as exploding
    model = small_model()
    model.build((None, 4))
    monitor.set_model(model)
    monitor.on_train_begin()
    monitor.on_epoch_begin(0)
    kernel = model.get_layer("out").trainable_weights[0]
    monitor.on_gradients(0, [(np.full(kernel.shape, np.nan, "float32"), kernel)])
    monitor.on_epoch_end(0)
    with pytest.warns(RuntimeWarning, match="exploding gradients in layer 'out'"):
        monitor.on_train_end()


def test_healthy_training_does_not_warn():
    x, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_model().fit(x, y, epochs=2, batch_size=16, callbacks=[GradientMonitor(verbose=0)], verbose=0)


def test_gradient_monitor_arguments():
    with pytest.raises(ValueError, match="log_every"):
        GradientMonitor(log_every=0)
    with pytest.raises(ValueError, match="thresholds"):
        GradientMonitor(explode_threshold=0)


def test_vanishing_gradients_example():
    spec = importlib.util.spec_from_file_location("vanishing_gradients", os.path.join(EXAMPLES,
                                                                                      "vanishing_gradients.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.run(samples=500, epochs=1)
    assert set(results) == {"sigmoid", "relu", "sigmoid+bn"}
    assert results["sigmoid"]["ratio"] < 1e-3  # ten sigmoids: the first layer's gradient all but vanishes
    assert results["relu"]["ratio"] > 1e-2 and results["sigmoid+bn"]["ratio"] > 1e-2
    norms = list(results["sigmoid"]["norms"].values())
    assert all(a < b for a, b in zip(norms, norms[1:]))  # growing from the input to the output


# ------------------------------------------------------------------------------------ event files
def test_crc32c():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value
    assert crc32c(b"") == 0
    assert masked_crc32c(b"") == 0xA282EAD8


def read_records(path):
    """The TFRecord payloads of an event file, every length and data checksum verified."""
    records = []
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset < len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[offset + 8:offset + 12])[0] == masked_crc32c(header)
        payload = data[offset + 12:offset + 12 + length]
        assert struct.unpack("<I", data[offset + 12 + length:offset + 16 + length])[0] == masked_crc32c(payload)
        records.append(payload)
        offset += 16 + length
    return records


def run_tensorboard(tmp_path, **kwargs):
    x, y = data(64)
    model = small_model()
    callback = TensorBoard(str(tmp_path / "logs"), **kwargs)
    history = model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, callbacks=[callback], verbose=0)
    return model, history


def test_event_files_are_valid_tfrecords(tmp_path):
    run_tensorboard(tmp_path)
    files = glob.glob(str(tmp_path / "logs" / "train" / "events.out.tfevents.*"))
    assert len(files) == 1
    records = read_records(files[0])
    assert b"brain.Event:2" in records[0]
    assert sum(b"epoch_loss" in r for r in records) == 2
    assert len(glob.glob(str(tmp_path / "logs" / "validation" / "events.out.tfevents.*"))) == 1


def test_tensorboard_reads_back_scalars_histograms_and_graph(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    model, history = run_tensorboard(tmp_path, update_freq=2, histogram_freq=1, write_graph=True)

    def load(run):
        accumulator = event_accumulator.EventAccumulator(
            str(tmp_path / "logs" / run), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
        accumulator.Reload()
        return accumulator

    train, validation = load("train"), load("validation")
    assert {"epoch_loss", "epoch_accuracy", "batch_loss", "batch_accuracy"} <= set(train.Tags()["scalars"])
    loss = train.Scalars("epoch_loss")
    assert [e.step for e in loss] == [0, 1]
    np.testing.assert_allclose([e.value for e in loss], history.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([e.value for e in validation.Scalars("epoch_loss")], history.history["val_loss"],
                               rtol=1e-6)
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6]  # 3 steps per epoch, every 2nd written

    histograms = set(train.Tags()["histograms"])
    assert {"hidden/kernel/histogram", "hidden/kernel/gradient", "out/bias/histogram", "out/bias/gradient"} <= \
        histograms
    kernel = train.Histograms("hidden/kernel/histogram")
    assert [e.step for e in kernel] == [0, 1]
    values = model.get_layer("hidden").get_weights()[0]
    last = kernel[-1].histogram_value
    assert last.num == values.size and last.min == pytest.approx(values.min()) and sum(last.bucket) == values.size
    assert last.sum == pytest.approx(values.sum(), rel=1e-5, abs=1e-5)

    graph = train.Tensors("keras")[0].tensor_proto.string_val[0].decode()
    assert '"class_name": "Sequential"' in graph and '"hidden"' in graph


def test_the_graph_is_drawn_with_its_edges_by_tensorboard():
    keras_util = pytest.importorskip("tensorboard.plugins.graph.keras_util")
    import json

    from shenjing.callbacks_extra import graph_json
    from shenjing.models import Model

    inputs = layers.Input(shape=(8,))
    left, right = layers.Dense(4, name="left")(inputs), layers.Dense(4, name="right")(inputs)
    model = Model(inputs, layers.Add(name="add")([left, right]))
    graph = keras_util.keras_model_to_graph_def(json.loads(graph_json(model)))
    edges = {node.name.split("/")[-1]: [name.split("/")[-1] for name in node.input] for node in graph.node}
    assert edges["add"] == ["left", "right"] and edges["left"] == edges["right"] == [model.layers[0].name]


def test_tensorboard_arguments(tmp_path):
    with pytest.raises(ValueError, match="update_freq"):
        TensorBoard(str(tmp_path), update_freq="sometimes")
    with pytest.raises(ValueError, match="histogram_freq"):
        TensorBoard(str(tmp_path), histogram_freq=-1)
    with pytest.warns(UserWarning, match="not supported"):
        TensorBoard(str(tmp_path), write_images=True)
    assert TensorBoard(str(tmp_path), update_freq="batch").update_freq == 1
