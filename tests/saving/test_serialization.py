"""Configs and JSON: every layer rebuilds by class name; Sequential, functional and nested models round-trip
to the same architecture; custom classes load through registration or custom_objects; anything that would
import or run code from a file is refused."""

import json

import numpy as np
import pytest

import shenjing.layers as L
from shenjing.layers import Layer
from shenjing.models import Model, Sequential
from shenjing.saving import (
    custom_object_scope,
    deserialize_layer,
    model_from_json,
    model_to_json,
    register_keras_serializable,
    serialize_layer,
)
from shenjing.utils import registry


def summary(model) -> str:
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def assert_same_architecture(a, b):
    assert summary(a) == summary(b)
    assert [tuple(w.shape) for w in a.weights] == [tuple(w.shape) for w in b.weights]
    assert [type(x).__name__ for x in a.layers] == [type(x).__name__ for x in b.layers]


# one instance of every exported layer class, with an input shape that suits it
LAYERS = {
    "Dense": (lambda: L.Dense(3, activation="relu", kernel_regularizer="l2", use_bias=False), (4,)),
    "Activation": (lambda: L.Activation("tanh"), (4,)),
    "Dropout": (lambda: L.Dropout(0.3, seed=1), (4,)),
    "Flatten": (lambda: L.Flatten(), (2, 3)),
    "Reshape": (lambda: L.Reshape((3, 2)), (6,)),
    "Permute": (lambda: L.Permute((2, 1)), (2, 3)),
    "ReLU": (lambda: L.ReLU(max_value=6.0), (4,)),
    "LeakyReLU": (lambda: L.LeakyReLU(0.2), (4,)),
    "PReLU": (lambda: L.PReLU(), (4,)),
    "ELU": (lambda: L.ELU(0.5), (4,)),
    "Softmax": (lambda: L.Softmax(), (4,)),
    "BatchNormalization": (lambda: L.BatchNormalization(momentum=0.9), (4,)),
    "LayerNormalization": (lambda: L.LayerNormalization(), (4,)),
    "GaussianNoise": (lambda: L.GaussianNoise(0.1), (4,)),
    "GaussianDropout": (lambda: L.GaussianDropout(0.1), (4,)),
    "AlphaDropout": (lambda: L.AlphaDropout(0.1), (4,)),
    "SpatialDropout1D": (lambda: L.SpatialDropout1D(0.1), (5, 4)),
    "SpatialDropout2D": (lambda: L.SpatialDropout2D(0.1), (5, 5, 4)),
    "SpatialDropout3D": (lambda: L.SpatialDropout3D(0.1), (3, 3, 3, 2)),
    "ActivityRegularization": (lambda: L.ActivityRegularization(l1=0.1), (4,)),
    "Conv1D": (lambda: L.Conv1D(2, 3, padding="same"), (6, 3)),
    "Conv2D": (lambda: L.Conv2D(2, 3, strides=2, activation="relu"), (7, 7, 3)),
    "Conv2DTranspose": (lambda: L.Conv2DTranspose(2, 3), (5, 5, 3)),
    "Convolution1D": (lambda: L.Convolution1D(2, 3), (6, 3)),
    "Convolution2D": (lambda: L.Convolution2D(2, 3, 3, border_mode="same"), (6, 6, 3)),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3), (6, 6, 3)),
    "SeparableConv2D": (lambda: L.SeparableConv2D(4, 3), (6, 6, 3)),
    "Cropping1D": (lambda: L.Cropping1D(1), (6, 3)),
    "Cropping2D": (lambda: L.Cropping2D(1), (6, 6, 3)),
    "UpSampling1D": (lambda: L.UpSampling1D(2), (6, 3)),
    "UpSampling2D": (lambda: L.UpSampling2D(2), (6, 6, 3)),
    "ZeroPadding1D": (lambda: L.ZeroPadding1D(1), (6, 3)),
    "ZeroPadding2D": (lambda: L.ZeroPadding2D(1), (6, 6, 3)),
    "MaxPooling1D": (lambda: L.MaxPooling1D(2), (6, 3)),
    "MaxPooling2D": (lambda: L.MaxPooling2D(2), (6, 6, 3)),
    "AveragePooling1D": (lambda: L.AveragePooling1D(2), (6, 3)),
    "AveragePooling2D": (lambda: L.AveragePooling2D(2), (6, 6, 3)),
    "GlobalMaxPooling1D": (lambda: L.GlobalMaxPooling1D(), (6, 3)),
    "GlobalMaxPooling2D": (lambda: L.GlobalMaxPooling2D(), (6, 6, 3)),
    "GlobalAveragePooling1D": (lambda: L.GlobalAveragePooling1D(), (6, 3)),
    "GlobalAveragePooling2D": (lambda: L.GlobalAveragePooling2D(), (6, 6, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_round_trips_through_json(name):
    make, shape = LAYERS[name]
    model = Sequential([L.Input(shape), make()])
    text = model_to_json(model)
    rebuilt = model_from_json(text)
    assert type(rebuilt.layers[0]).__name__ == name
    assert_same_architecture(model, rebuilt)
    assert model_to_json(rebuilt) == text  # the config is a fixed point
    rebuilt.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((2,) + shape).astype("float32")
    np.testing.assert_allclose(rebuilt.predict(x), model.predict(x), rtol=1e-6, atol=1e-6)


def test_every_exported_layer_class_is_known_by_name():
    from shenjing.saving.serialization import layer_class_names

    exported = {n for n in L.__all__ if isinstance(getattr(L, n), type) and issubclass(getattr(L, n), Layer)}
    assert exported <= set(layer_class_names())
    layer = deserialize_layer({"class_name": "Dense", "config": {"units": 3, "name": "x"}})
    assert isinstance(layer, L.Dense) and layer.units == 3 and layer.name == "x"
    merged = deserialize_layer(serialize_layer(L.Concatenate(axis=1, name="cat")))
    assert isinstance(merged, L.Concatenate) and merged.name == "cat"


def test_sequential_round_trip_keeps_summary_and_weight_shapes():
    model = Sequential([L.Dense(10, input_dim=2), L.Activation("tanh"), L.Dense(1), L.Activation("sigmoid")])
    config = json.loads(model_to_json(model))
    assert config["class_name"] == "Sequential"
    assert config["config"]["layers"][0]["class_name"] == "InputLayer"
    assert config["config"]["layers"][0]["config"]["batch_shape"] == [None, 2]
    assert_same_architecture(model, model_from_json(model_to_json(model)))


def test_sequential_built_from_data_records_its_input_shape():
    model = Sequential([L.Dense(4), L.Dense(2)])
    model.predict(np.zeros((3, 5), dtype="float32"))
    rebuilt = model_from_json(model_to_json(model))
    assert rebuilt.input_shape == (None, 5)
    assert_same_architecture(model, rebuilt)


def functional_model():
    inputs = L.Input((8,), name="x")
    aux = L.Input((3,), name="aux")
    shared = L.Dense(8, activation="relu", name="shared")
    a = shared(inputs)
    b = shared(a)  # a shared layer: two nodes
    c = L.Add(name="add")([a, b])
    d = L.Concatenate(name="cat")([c, aux])
    out1 = L.Dense(2, activation="softmax", name="probs")(d)
    out2 = L.Dense(1, name="value")(c)
    return Model([inputs, aux], [out1, out2], name="two_heads")


def test_functional_round_trip_with_shared_layers_and_two_inputs_and_outputs():
    model = functional_model()
    config = json.loads(model_to_json(model))["config"]
    assert config["input_layers"] == [["x", 0, 0], ["aux", 0, 0]]
    assert config["output_layers"] == [["probs", 0, 0], ["value", 0, 0]]
    shared = next(entry for entry in config["layers"] if entry["name"] == "shared")
    assert shared["inbound_nodes"] == [[["x", 0, 0, {}]], [["shared", 0, 0, {}]]]
    rebuilt = model_from_json(model_to_json(model))
    assert_same_architecture(model, rebuilt)
    rebuilt.set_weights(model.get_weights())
    rng = np.random.default_rng(1)
    x = [rng.random((4, 8)).astype("float32"), rng.random((4, 3)).astype("float32")]
    for got, want in zip(rebuilt.predict(x), model.predict(x)):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_nested_models_round_trip():
    inner = Sequential([L.Dense(4, activation="relu", input_dim=3), L.Dense(4)], name="inner")
    inputs = L.Input((3,))
    outputs = L.Dense(1)(inner(inputs))
    model = Model(inputs, outputs, name="outer")
    rebuilt = model_from_json(model_to_json(model))
    assert isinstance(rebuilt.get_layer("inner"), Sequential)
    assert_same_architecture(model, rebuilt)


def test_keras3_node_layout_is_read():
    config = {"class_name": "Functional", "config": {
        "name": "k3", "layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "inp"}, "name": "inp",
             "inbound_nodes": []},
            {"class_name": "Dense", "config": {"units": 2, "name": "d"}, "name": "d",
             "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                          "config": {"shape": [None, 4], "keras_history": ["inp", 0, 0]}}],
                                "kwargs": {}}]}],
        "input_layers": ["inp", 0, 0], "output_layers": ["d", 0, 0]}}
    model = deserialize_layer(config)
    assert model.output_shape == (None, 2)


# ----------------------------------------------------------------------------- custom classes
class Scale(Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return dict(super().get_config(), factor=self.factor)


def test_custom_layer_through_custom_objects():
    model = Sequential([L.Input((3,)), Scale(3.0, name="scale")])
    text = model_to_json(model)
    with pytest.raises(ValueError, match="unknown layer class 'Scale'.*register_keras_serializable"):
        model_from_json(text)
    rebuilt = model_from_json(text, custom_objects={"Scale": Scale})
    assert isinstance(rebuilt.layers[0], Scale) and rebuilt.layers[0].factor == 3.0
    with custom_object_scope({"Scale": Scale}):
        assert isinstance(model_from_json(text).layers[0], Scale)
    assert "Scale" not in registry._custom_objects  # the scope is undone


def test_register_keras_serializable_registers_globally():
    @register_keras_serializable(package="Tests", name="Doubler")
    class Doubler(Layer):
        def call(self, inputs):
            return inputs * 2.0

        def get_config(self):
            return super().get_config()

    try:
        entry = serialize_layer(Doubler(name="dbl"))
        assert entry["registered_name"] == "Tests>Doubler"
        assert registry._custom_objects["Tests>Doubler"] is Doubler
        assert isinstance(deserialize_layer(entry), Doubler)
        # a custom activation registered the same way resolves where activations are looked up
        @register_keras_serializable(package="Tests")
        def twice(x):
            return x * 2.0

        model = Sequential([L.Input((2,)), L.Dense(2, activation="twice")])
        assert model_from_json(model_to_json(model)).layers[0].activation is twice
    finally:
        for key in ("Tests>Doubler", "Doubler", "Tests>twice", "twice"):
            registry._custom_objects.pop(key, None)


# --------------------------------------------------------------------------- safety
@pytest.mark.parametrize("class_name", ["os.system", "keras.layers.Dense", "__import__('os')", "Dense;rm"])
def test_module_paths_and_code_are_refused(class_name):
    with pytest.raises(ValueError, match="never imports"):
        deserialize_layer({"class_name": class_name, "config": {}})


def test_unknown_class_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="unknown layer class 'Dense2'.*Did you mean 'Dense'"):
        deserialize_layer({"class_name": "Dense2", "config": {"units": 2}})
    with pytest.raises(ValueError, match="not a Layer class"):
        deserialize_layer({"class_name": "evil", "config": {}}, custom_objects={"evil": print})


def test_module_key_of_keras3_configs_is_ignored_not_imported():
    layer = deserialize_layer({"module": "os", "class_name": "Dense", "config": {"units": 2, "name": "d"},
                               "registered_name": None})
    assert isinstance(layer, L.Dense)


def square(x):
    return x * x


def test_lambda_is_saved_by_function_name_and_needs_custom_objects():
    model = Sequential([L.Input((3,)), L.Lambda(square, name="sq")])
    text = model_to_json(model)
    assert json.loads(text)["config"]["layers"][1]["config"]["function"] == "square"
    with pytest.raises(ValueError, match="function 'square' is unknown.*custom_objects"):
        model_from_json(text)
    rebuilt = model_from_json(text, custom_objects={"square": square})
    np.testing.assert_allclose(rebuilt.predict(np.full((1, 3), 3.0, dtype="float32")), 9.0)


def power(x, exponent=1):
    return x ** exponent


def test_lambda_arguments_and_output_shape_are_kept():
    model = Sequential([L.Input((3,)), L.Lambda(power, output_shape=(3,), arguments={"exponent": 3})])
    rebuilt = model_from_json(model_to_json(model), custom_objects={"power": power})
    np.testing.assert_allclose(rebuilt.predict(np.full((1, 3), 2.0, dtype="float32")), 8.0)


def test_lambda_code_in_a_config_is_refused():
    config = {"class_name": "Lambda", "config": {"name": "l", "function": {"class_name": "__lambda__",
                                                                         "config": {"code": "YmFk"}}}}
    with pytest.raises(ValueError, match="never runs code"):
        deserialize_layer(config)


def test_malformed_json_and_configs_give_clear_errors():
    with pytest.raises(ValueError, match="not valid JSON"):
        model_from_json("{not json")
    with pytest.raises(ValueError, match="nested too deeply"):
        model_from_json("[" * 100000 + "]" * 100000)
    with pytest.raises(ValueError, match="class_name"):
        model_from_json('{"config": {}}')
    with pytest.raises(ValueError, match="not a model"):
        model_from_json('{"class_name": "Dense", "config": {"units": 2}}')
    bad_graph = {"class_name": "Functional", "config": {
        "name": "m", "layers": [{"class_name": "Dense", "config": {"units": 2, "name": "d"}, "name": "d",
                                 "inbound_nodes": [[["ghost", 0, 0, {}]]]}],
        "input_layers": [["ghost", 0, 0]], "output_layers": [["d", 0, 0]]}}
    with pytest.raises(ValueError, match="'ghost', which is not a layer"):
        model_from_json(json.dumps(bad_graph))
