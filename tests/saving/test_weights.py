"""save_weights / load_weights: HDF5 in Keras 2's and Keras 3's layouts, .npz; by_name, skip_mismatch, and
errors that name the layer and both shapes (never a partial load)."""

import importlib.util
import os

import h5py
import numpy as np
import pytest

import shenjing.layers as L
from shenjing.models import Model, Sequential
from shenjing.saving import load_weights, model_from_json, model_to_json, save_weights

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def small_model(units=3, name=None, out=2):
    inputs = L.Input((4,), name="inp")
    x = L.Dense(units, activation="tanh", name="hidden")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    outputs = L.Dense(out, name="out")(x)
    return Model(inputs, outputs, name=name)


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype(w.dtype) + (2.0 if "variance" in w.name else 0.0)
                       for w in model.weights])
    return model


@pytest.mark.parametrize("filename", ["w.h5", "w.weights.h5", "w.npz", "w.hdf5"])
def test_weights_round_trip(tmp_path, filename):
    model = randomize(small_model())
    path = tmp_path / filename
    save_weights(model, path)
    other = small_model()
    load_weights(other, path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]  # no temporary file left behind


def test_keras2_layout_on_disk(tmp_path):
    model = randomize(small_model())
    save_weights(model, tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        assert [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]] == \
            ["inp", "hidden", "bn", "out"]
        assert "backend" in f.attrs and "keras_version" in f.attrs
        names = [n.decode() if isinstance(n, bytes) else n for n in f["bn"].attrs["weight_names"]]
        assert names == ["bn/gamma:0", "bn/beta:0", "bn/moving_mean:0", "bn/moving_variance:0"]
        np.testing.assert_array_equal(f["hidden"]["hidden/kernel:0"][()], model.get_layer("hidden").get_weights()[0])
        assert len(f["inp"].attrs["weight_names"]) == 0


def test_keras3_layout_on_disk(tmp_path):
    model = randomize(small_model())
    save_weights(model, tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as f:
        assert sorted(f["layers"]) == ["batch_normalization", "dense", "dense_1", "input_layer"]
        assert f["layers/dense/vars"].attrs["name"] == "hidden"
        np.testing.assert_array_equal(f["layers/dense_1/vars/0"][()], model.get_layer("out").get_weights()[0])
        assert [f[f"layers/batch_normalization/vars/{i}"].shape for i in range(4)] == [(3,)] * 4


def test_shape_mismatch_names_the_layer_and_both_shapes_and_loads_nothing(tmp_path):
    save_weights(randomize(small_model(units=3)), tmp_path / "w.h5")
    other = small_model(units=5)
    before = other.get_weights()
    with pytest.raises(ValueError, match=r"layer 'hidden' \(Dense\), weight 'hidden/kernel': shape \(4, 5\) in the "
                                         r"model, but \(4, 3\) in the file"):
        load_weights(other, tmp_path / "w.h5")
    for a, b in zip(before, other.get_weights()):  # not even the layers before the mismatch changed
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("filename", ["w.h5", "w.weights.h5", "w.npz"])
def test_skip_mismatch_warns_and_skips(tmp_path, filename):
    source = randomize(small_model(out=2))
    save_weights(source, tmp_path / filename)
    other = small_model(out=5)
    out_before = other.get_layer("out").get_weights()
    with pytest.warns(UserWarning, match="layer 'out'.*skipping this layer"):
        load_weights(other, tmp_path / filename, skip_mismatch=True)
    for a, b in zip(out_before, other.get_layer("out").get_weights()):
        np.testing.assert_array_equal(a, b)
    for name in ("hidden", "bn"):
        for a, b in zip(source.get_layer(name).get_weights(), other.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_by_name_matches_layer_names(tmp_path):
    source = randomize(small_model())
    save_weights(source, tmp_path / "w.h5")
    inputs = L.Input((4,))
    x = L.Dense(3, name="hidden")(inputs)
    x = L.Dense(7, name="new_head")(x)  # not in the file: left as it was
    target = Model(inputs, x)
    head = target.get_layer("new_head").get_weights()
    load_weights(target, tmp_path / "w.h5", by_name=True)
    np.testing.assert_array_equal(target.get_layer("hidden").get_weights()[0],
                                  source.get_layer("hidden").get_weights()[0])
    np.testing.assert_array_equal(target.get_layer("new_head").get_weights()[0], head[0])
    with pytest.raises(ValueError, match="the file holds weights for 3 layer"):
        load_weights(target, tmp_path / "w.h5")


def test_by_name_in_keras3_and_npz_layouts(tmp_path):
    source = randomize(small_model())
    for filename in ("w.weights.h5", "w.npz"):
        save_weights(source, tmp_path / filename)
        inputs = L.Input((4,))
        target = Model(inputs, L.Dense(3, name="hidden")(inputs))
        load_weights(target, tmp_path / filename, by_name=True)
        np.testing.assert_array_equal(target.get_weights()[0], source.get_layer("hidden").get_weights()[0])


@pytest.mark.parametrize("filename", ["w.h5", "w.weights.h5", "w.npz"])
def test_nested_model_weights_round_trip(tmp_path, filename):
    def build():
        inner = Sequential([L.Dense(4, activation="relu", input_dim=3, name="i1"), L.BatchNormalization(name="ibn")],
                           name="inner")
        inputs = L.Input((3,))
        return Model(inputs, L.Dense(2, name="head")(inner(inputs)))

    source = randomize(build())
    save_weights(source, tmp_path / filename)
    target = build()
    load_weights(target, tmp_path / filename)
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    if filename == "w.weights.h5":
        with h5py.File(tmp_path / filename) as f:
            assert "layers/sequential/layers/dense/vars/0" in f
            assert "layers/sequential/layers/batch_normalization/vars/3" in f


def test_plain_npz_of_get_weights_loads_in_order(tmp_path):
    source = randomize(small_model())
    np.savez(tmp_path / "plain.npz", *source.get_weights())
    target = small_model()
    load_weights(target, tmp_path / "plain.npz")
    for a, b in zip(source.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unbuilt_model_and_unknown_extension_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="not built yet"):
        save_weights(Sequential([L.Dense(2)]), tmp_path / "w.h5")
    with pytest.raises(ValueError, match="cannot tell the format"):
        save_weights(small_model(), tmp_path / "w.bin")
    with pytest.raises(FileNotFoundError):
        load_weights(small_model(), tmp_path / "missing.h5")
    save_weights(small_model(), tmp_path / "w.h5")
    with pytest.raises(FileExistsError):
        save_weights(small_model(), tmp_path / "w.h5", overwrite=False)


def test_float32_file_into_float64_model(tmp_path, float64):
    from shenjing import backend

    backend.set_floatx("float32")
    source = randomize(small_model())
    save_weights(source, tmp_path / "w.h5")
    backend.set_floatx("float64")
    target = small_model()
    load_weights(target, tmp_path / "w.h5")
    assert target.weights[0].dtype == np.float64
    np.testing.assert_array_equal(target.get_weights()[0], source.get_weights()[0].astype("float64"))


def test_xor_program_json_and_weights_round_trip(tmp_path):
    spec = importlib.util.spec_from_file_location("xor", os.path.join(EXAMPLES, "xor.py"))
    xor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(xor)
    model, _, X, _ = xor.build_and_train(epochs=50)
    json_string = model_to_json(model)
    path = tmp_path / "basic_weights.h5"
    save_weights(model, path)
    rebuilt = model_from_json(json_string)
    load_weights(rebuilt, path)
    np.testing.assert_array_equal(rebuilt.predict(X), model.predict(X))
    rebuilt.compile(loss="binary_crossentropy", optimizer="sgd")
    np.testing.assert_array_equal(rebuilt.predict_classes(X), model.predict_classes(X))
