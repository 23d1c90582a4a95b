"""save_model / load_model: one file with config, weights, compile arguments and optimizer state; fit goes on
exactly where it stopped."""

import json
import zipfile

import h5py
import numpy as np
import pytest

import shenjing.layers as L
from shenjing import backend, losses, metrics
from shenjing.models import Model, Sequential
from shenjing.optimizers import SGD, Adam
from shenjing.saving import load_model, register_keras_serializable, save_model
from shenjing.utils import registry


def data(n=32, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(dtype)
    y = (x[:, :2].sum(axis=1, keepdims=True) > 0).astype(dtype)
    return x, y


def build(optimizer=None):
    model = Sequential([L.Dense(8, activation="relu", input_dim=5), L.BatchNormalization(),
                        L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizer or Adam(learning_rate=0.01), loss="binary_crossentropy",
                  metrics=["accuracy", "mae"])
    return model


@pytest.mark.parametrize("filename", ["model.keras", "model.h5"])
def test_column_major_kernels_save_load_and_train_on(tmp_path, float64, filename, monkeypatch):
    """Dense kernels stored column-major (every one here: the size threshold set to 0) and their
    optimizer slots: saved, loaded (into that layout again), trained on exactly as without the pause;
    the weight files are those of row-major kernels."""
    from shenjing.layers import core

    x, y = data()
    backend.set_random_seed(3)
    row_major = build()
    initial = row_major.get_weights()
    expected = row_major.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0).history
    monkeypatch.setattr(core, "COLUMN_MAJOR_KERNEL_SIZE", 0)
    runs = []
    for pause in (False, True):
        backend.set_random_seed(3)
        model = build()
        model.set_weights(initial)
        kernel = model.layers[0].kernel.data
        assert kernel.flags.f_contiguous and not kernel.flags.c_contiguous
        history = model.fit(x, y, batch_size=8, epochs=3 if pause else 5, shuffle=False, verbose=0).history
        assert model.layers[0].kernel.data is kernel
        assert all(slot.flags.f_contiguous for slot in (model.optimizer._slot("m", 0), model.optimizer._slot("v", 0)))
        if pause:
            save_model(model, tmp_path / filename)
            model.save_weights(tmp_path / "w.weights.h5")
            at_pause = model.get_weights()
            assert all(a.flags.c_contiguous for a in at_pause)  # get_weights gives row-major copies
            model = load_model(tmp_path / filename)
            assert model.layers[0].kernel.data.flags.f_contiguous
            more = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
            # the loaded state adopted in the kernel's layout (row-major slots made every step 30-90x slower)
            slots = model.optimizer._slot("m", 0), model.optimizer._slot("v", 0)
            assert all(slot.flags.f_contiguous for slot in slots)
            history = {key: history[key] + more[key] for key in history}
            again = build()
            again.load_weights(tmp_path / "w.weights.h5")
            assert again.layers[0].kernel.data.flags.f_contiguous
            for a, b in zip(again.get_weights(), at_pause):
                np.testing.assert_array_equal(a, b)
        runs.append((history, model.get_weights()))
    (full, weights), (paused, restored) = runs
    assert paused == full  # exactly, in float64
    for a, b in zip(restored, weights):
        np.testing.assert_array_equal(a, b)
    for key in ("loss", "accuracy"):  # the layout changes the summation order of the products only
        np.testing.assert_allclose(full[key], expected[key], rtol=1e-9)


@pytest.mark.parametrize("filename", ["model.keras", "model.h5"])
@pytest.mark.parametrize("make_optimizer", [lambda: Adam(learning_rate=0.01),
                                            lambda: SGD(learning_rate=0.05, momentum=0.9, nesterov=True, decay=1e-3)],
                         ids=["adam", "sgd-momentum-decay"])
def test_train_save_load_train_equals_uninterrupted_training(tmp_path, float64, filename, make_optimizer):
    x, y = data()
    backend.set_random_seed(3)
    reference = build(make_optimizer())
    initial = reference.get_weights()
    full = reference.fit(x, y, batch_size=8, epochs=5, shuffle=False, verbose=0).history

    backend.set_random_seed(3)
    model = build(make_optimizer())
    model.set_weights(initial)
    first = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    save_model(model, tmp_path / filename)
    del model
    restored = load_model(tmp_path / filename)
    assert restored.optimizer.iterations == 12
    second = restored.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history

    for key in ("loss", "accuracy", "mae"):
        assert first[key] + second[key] == full[key], key  # exactly, in float64
    for a, b in zip(restored.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_archive_layout(tmp_path):
    x, y = data(dtype="float32")
    model = build()
    model.fit(x, y, epochs=1, verbose=0)
    save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(z.read("config.json"))
        metadata = json.loads(z.read("metadata.json"))
        assert config["class_name"] == "Sequential"
        assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
        assert config["compile_config"]["loss"] == "binary_crossentropy"
        assert config["compile_config"]["metrics"] == ["accuracy", "mae"]
        assert {"shenjing_version", "date_saved"} <= set(metadata)
        with open(tmp_path / "w.h5", "wb") as f:
            f.write(z.read("model.weights.h5"))
    with h5py.File(tmp_path / "w.h5") as f:
        assert "layers" in f and "optimizer_state" in f
        assert "iterations" in [n.decode() if isinstance(n, bytes) else n
                                for n in f["optimizer_state"].attrs["weight_names"]]


def test_keras2_h5_full_model_layout(tmp_path):
    x, y = data(dtype="float32")
    model = build()
    model.fit(x, y, epochs=1, verbose=0)
    save_model(model, tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5") as f:
        assert json.loads(f.attrs["model_config"])["class_name"] == "Sequential"
        assert json.loads(f.attrs["training_config"])["optimizer_config"]["class_name"] == "Adam"
        assert "layer_names" in f["model_weights"].attrs
        assert "optimizer_weights" in f
    restored = load_model(tmp_path / "m.h5")
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_load_without_compile_and_uncompiled_models(tmp_path):
    x, _ = data(dtype="float32")
    model = build()
    save_model(model, tmp_path / "m.keras")
    restored = load_model(tmp_path / "m.keras", compile=False)
    assert not restored.compiled
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    plain = Sequential([L.Dense(2, input_dim=5)])
    save_model(plain, tmp_path / "plain.keras")
    assert not load_model(tmp_path / "plain.keras").compiled


def test_functional_model_with_custom_loss_metric_and_layer(tmp_path):
    @register_keras_serializable(package="T")
    class Shift(L.Layer):
        def __init__(self, offset=1.0, **kwargs):
            super().__init__(**kwargs)
            self.offset = offset

        def call(self, inputs):
            return inputs + self.offset

        def get_config(self):
            return dict(super().get_config(), offset=self.offset)

    def my_loss(y_true, y_pred):
        return losses.mean_squared_error(y_true, y_pred)

    try:
        inputs = L.Input((5,))
        outputs = L.Dense(1)(Shift(0.5)(inputs))
        model = Model(inputs, outputs)
        model.compile(optimizer="rmsprop", loss=my_loss, metrics=[metrics.MeanAbsoluteError()])
        x, y = data(dtype="float32")
        model.fit(x, y, epochs=1, verbose=0)
        save_model(model, tmp_path / "m.keras")
        with pytest.raises(ValueError, match="my_loss"):
            load_model(tmp_path / "m.keras")
        restored = load_model(tmp_path / "m.keras", custom_objects={"my_loss": my_loss})
        np.testing.assert_array_equal(restored.predict(x), model.predict(x))
        assert restored.optimizer.iterations == model.optimizer.iterations
        restored.fit(x, y, epochs=1, verbose=0)
    finally:
        for key in ("T>Shift", "Shift"):
            registry._custom_objects.pop(key, None)
