"""ONNX export: the exported graph, run by onnxruntime, predicts what the model predicts (1e-5)."""

import numpy as np
import pytest

import shenjing.layers as L
from shenjing.models import Model, Sequential

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from shenjing.onnx import export  # noqa: E402


def randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.normal(0, 0.5, w.shape) + (1.5 if "variance" in w.name else 0.0)).astype(w.dtype)
                       for w in model.weights])
    return model


def run(path, inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def check(model, tmp_path, *shapes, atol=1e-5):
    randomize(model)
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(3,) + s).astype("float32") for s in shapes]
    path = tmp_path / "model.onnx"
    export(model, path)
    got = run(path, xs)
    want = model.predict(xs if len(xs) > 1 else xs[0])
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("column_major", [False, True])
def test_dense_activations_dropout(tmp_path, column_major, monkeypatch):
    if column_major:  # every Dense kernel stored column-major, as large ones are
        from shenjing.layers import core

        monkeypatch.setattr(core, "COLUMN_MAJOR_KERNEL_SIZE", 0)
    model = Sequential([L.Input((6,)), L.Dense(8, activation="relu"), L.Dropout(0.5), L.Dense(8, activation="tanh"),
                        L.Dense(8, activation="sigmoid"), L.Dense(8, activation="elu"), L.Dense(8, activation="selu"),
                        L.Dense(8, activation="softplus"), L.Dense(8, activation="gelu"),
                        L.Dense(8, activation="swish"),
                        L.Dense(8, activation="hard_sigmoid"), L.LeakyReLU(0.1), L.ReLU(max_value=0.5), L.ELU(0.7),
                        L.PReLU(), L.GaussianNoise(0.3), L.Dense(4), L.Softmax()])
    check(model, tmp_path, (6,))


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_pooling_batchnorm_flatten(tmp_path, padding):
    model = Sequential([L.Input((21, 21, 3)), L.Conv2D(4, 3, strides=2, padding=padding, activation="relu"),
                        L.BatchNormalization(), L.MaxPooling2D(2, padding=padding),
                        L.Conv2D(6, (2, 3), padding=padding, dilation_rate=1),
                        L.AveragePooling2D(2, strides=1, padding=padding), L.Flatten(), L.Dense(3)])
    check(model, tmp_path, (21, 21, 3))


def test_channels_first_keras1_cnn(tmp_path):
    model = Sequential([L.Convolution2D(4, 3, 3, border_mode="valid", input_shape=(1, 8, 8)),
                        L.Activation("relu"), L.MaxPooling2D(pool_size=(2, 2)), L.Flatten(),
                        L.Dense(5, activation="softmax")])
    check(model, tmp_path, (1, 8, 8))


def test_conv1d_and_1d_layers(tmp_path):
    model = Sequential([L.Input((12, 3)), L.Conv1D(4, 3, padding="causal", dilation_rate=2),
                        L.Conv1D(4, 3, padding="same", strides=2, activation="relu"), L.ZeroPadding1D(1),
                        L.MaxPooling1D(2), L.UpSampling1D(2), L.Cropping1D((1, 0)), L.AveragePooling1D(2),
                        L.GlobalAveragePooling1D()])
    check(model, tmp_path, (12, 3))


def test_depthwise_separable_padding_cropping_upsampling_global(tmp_path):
    model = Sequential([L.Input((8, 8, 3)), L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                        L.SeparableConv2D(4, 3), L.ZeroPadding2D(((1, 0), (0, 2))), L.Cropping2D(((0, 1), (1, 1))),
                        L.UpSampling2D(2), L.GlobalMaxPooling2D()])
    check(model, tmp_path, (8, 8, 3))


def test_functional_merges_reshape_permute_layer_norm_nested(tmp_path):
    inner = Sequential([L.Dense(6, activation="relu", input_dim=6), L.LayerNormalization()], name="inner")
    a = L.Input((6,))
    b = L.Input((6,))
    x = inner(a)
    y = L.Dense(6)(b)
    merged = [L.Add()([x, y]), L.Subtract()([x, y]), L.Multiply()([x, y]), L.Average()([x, y]),
              L.Maximum()([x, y]), L.Minimum()([x, y])]
    cat = L.Concatenate()(merged)
    r = L.Permute((2, 1))(L.Reshape((6, 6))(cat))
    out1 = L.Dense(2)(L.Flatten()(r))
    out2 = L.GlobalAveragePooling1D()(r)
    check(Model([a, b], [out1, out2]), tmp_path, (6,), (6,))


def test_unsupported_layer_gives_a_clear_error(tmp_path):
    model = Sequential([L.Input((3,)), L.Lambda(lambda t: t * 2)])
    with pytest.raises(NotImplementedError, match="Lambda.*not supported"):
        export(model, tmp_path / "m.onnx")


@pytest.mark.parametrize("cls,kwargs", [
    (L.LSTM, {}), (L.LSTM, {"return_sequences": True, "go_backwards": True}),
    (L.GRU, {}), (L.GRU, {"reset_after": False, "return_sequences": True}), (L.GRU, {"go_backwards": True}),
    (L.SimpleRNN, {"return_sequences": True}), (L.LSTM, {"recurrent_activation": "hard_sigmoid"}),
], ids=["lstm", "lstm-seq-backwards", "gru", "gru-v1-seq", "gru-backwards", "simple-rnn", "lstm-hard-sigmoid"])
def test_recurrent_layers(tmp_path, cls, kwargs):
    model = Sequential([L.Input((7, 5)), cls(6, **kwargs), L.Dense(3)])
    check(model, tmp_path, (7, 5))
