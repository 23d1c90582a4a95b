import numpy as np
import pytest

from shenjing import backend, constraints, regularizers
from shenjing.autodiff import Tensor
from shenjing.layers.convolutional import (
    Conv1D,
    Conv2D,
    Conv2DTranspose,
    Convolution1D,
    Convolution2D,
    Cropping1D,
    Cropping2D,
    DepthwiseConv2D,
    MaxPooling2D,
    SeparableConv2D,
    UpSampling1D,
    UpSampling2D,
    ZeroPadding1D,
    ZeroPadding2D,
)
from shenjing.layers.core import Activation, Dense, Flatten, Input, Reshape
from shenjing.models import Model, Sequential

from .harness import layer_test

FORMATS = ["channels_last", "channels_first"]


def shaped(shape, data_format):
    """A channels-last shape (batch, *spatial, channels) in ``data_format``."""
    shape = tuple(shape)
    if data_format == "channels_last":
        return shape
    return (shape[0], shape[-1]) + shape[1:-1]


def run(layer_cls, kwargs, input_shape, expected, weights, data_format):
    return layer_test(layer_cls, dict(kwargs, data_format=data_format), shaped(input_shape, data_format),
                      shaped(expected, data_format), expected_weights=weights)


# ------------------------------------------------------------------------------- Conv2D

CONV2D_MODES = [
    ({"filters": 3, "kernel_size": 3}, (2, 5, 6, 2), (None, 3, 4, 3), 2),
    ({"filters": 2, "kernel_size": (3, 2), "strides": 2, "padding": "same", "activation": "tanh"},
     (2, 5, 6, 2), (None, 3, 3, 2), 2),
    ({"filters": 2, "kernel_size": 2, "strides": (2, 1), "use_bias": False}, (2, 5, 6, 2), (None, 2, 5, 2), 1),
    ({"filters": 2, "kernel_size": 2, "dilation_rate": 2}, (2, 5, 6, 2), (None, 3, 4, 2), 2),
    ({"filters": 4, "kernel_size": 3, "groups": 2, "padding": "same"}, (2, 4, 5, 4), (None, 4, 5, 4), 2),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("mode", range(len(CONV2D_MODES)))
def test_conv2d_modes(mode, data_format):
    kwargs, input_shape, expected, weights = CONV2D_MODES[mode]
    layer = run(Conv2D, kwargs, input_shape, expected, weights, data_format)
    channels = input_shape[-1] // kwargs.get("groups", 1)
    assert layer.kernel.shape == tuple(np.broadcast_to(kwargs["kernel_size"], 2)) + (channels, kwargs["filters"])


def test_conv2d_config_has_the_keras_keys():
    config = Conv2D(8, 3, kernel_regularizer="l2", data_format="channels_last").get_config()
    for key in ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "groups",
                "activation", "use_bias", "kernel_initializer", "bias_initializer", "kernel_regularizer",
                "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"):
        assert key in config
    assert config["kernel_size"] == (3, 3) and config["strides"] == (1, 1)


def test_conv2d_regularizers_constraints_and_activity_loss():
    layer = Conv2D(2, 3, kernel_regularizer=regularizers.l2(0.1), bias_regularizer="l1",
                   activity_regularizer=regularizers.l1(0.01), kernel_constraint="non_neg",
                   bias_constraint=constraints.max_norm(2.0))
    layer(np.ones((2, 5, 5, 1), dtype="float32"))
    assert len(layer.losses) == 3
    assert layer.kernel.constraint is not None and layer.bias.constraint is not None
    assert layer.kernel.dtype == np.float32


def test_conv2d_works_in_a_functional_model_and_keeps_float32():
    inputs = Input((8, 8, 3))
    x = Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = MaxPooling2D()(x)
    x = Conv2D(2, 3)(x)
    model = Model(inputs, x)
    assert x.shape == (None, 2, 2, 2)
    out = model.predict(np.ones((3, 8, 8, 3), dtype="float32"), verbose=0)
    assert out.shape == (3, 2, 2, 2) and out.dtype == np.float32


# ------------------------------------------------------------------------------- Conv1D

CONV1D_MODES = [
    ({"filters": 3, "kernel_size": 3}, (2, 7, 2), (None, 5, 3), 2),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 7, 2), (None, 4, 2), 2),
    ({"filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 7, 2), (None, 7, 2), 2),
    ({"filters": 4, "kernel_size": 2, "groups": 2, "activation": "tanh"}, (2, 6, 4), (None, 5, 4), 2),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("mode", range(len(CONV1D_MODES)))
def test_conv1d_modes(mode, data_format):
    kwargs, input_shape, expected, weights = CONV1D_MODES[mode]
    layer = run(Conv1D, kwargs, input_shape, expected, weights, data_format)
    assert layer.kernel.shape == (kwargs["kernel_size"], input_shape[-1] // kwargs.get("groups", 1),
                                  kwargs["filters"])


def test_conv1d_defaults_to_the_global_format_not_the_upstream_one():
    model = Sequential([Convolution2D(2, 3, 3, input_shape=(1, 6, 6)), Flatten(), Dense(12), Reshape((4, 3)),
                        Conv1D(5, 2)])
    assert model.output_shape == (None, 3, 5)
    assert model.layers[-1].data_format == "channels_last"


# ---------------------------------------------------------------------- Conv2DTranspose

TRANSPOSE_MODES = [
    ({"filters": 2, "kernel_size": 3}, (2, 3, 4, 2), (None, 5, 6, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 2), (None, 6, 8, 2)),
    ({"filters": 3, "kernel_size": (3, 2), "strides": 2}, (2, 3, 3, 2), (None, 7, 6, 3)),
    ({"filters": 2, "kernel_size": 3, "strides": (2, 3), "output_padding": (1, 2)}, (2, 3, 3, 2), (None, 8, 11, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1}, (2, 3, 3, 2),
     (None, 6, 6, 2)),
    ({"filters": 2, "kernel_size": 2, "dilation_rate": 2, "activation": "tanh"}, (2, 3, 3, 2), (None, 5, 5, 2)),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("mode", range(len(TRANSPOSE_MODES)))
def test_conv2d_transpose_modes(mode, data_format):
    kwargs, input_shape, expected = TRANSPOSE_MODES[mode]
    layer = run(Conv2DTranspose, kwargs, input_shape, expected, 2, data_format)
    assert layer.kernel.shape[2:] == (kwargs["filters"], input_shape[-1])
    assert layer.get_config()["output_padding"] == (None if "output_padding" not in kwargs
                                                    else tuple(np.broadcast_to(kwargs["output_padding"], 2)))


# --------------------------------------------------------------- depthwise and separable


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("kwargs,expected", [
    ({"kernel_size": 3, "depth_multiplier": 2}, (None, 3, 4, 6)),
    ({"kernel_size": 3, "strides": 2, "padding": "same", "use_bias": False}, (None, 3, 3, 3)),
    ({"kernel_size": 2, "dilation_rate": 2, "depth_multiplier": 2, "activation": "tanh"}, (None, 3, 4, 6)),
])
def test_depthwise_conv2d(kwargs, expected, data_format):
    layer = run(DepthwiseConv2D, kwargs, (2, 5, 6, 3), expected, 1 + kwargs.get("use_bias", True), data_format)
    assert layer.depthwise_kernel.shape == (kwargs["kernel_size"],) * 2 + (3, kwargs.get("depth_multiplier", 1))


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("kwargs,expected", [
    ({"filters": 4, "kernel_size": 3, "depth_multiplier": 2}, (None, 3, 4, 4)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "tanh"}, (None, 3, 3, 2)),
])
def test_separable_conv2d(kwargs, expected, data_format):
    layer = run(SeparableConv2D, kwargs, (2, 5, 6, 3), expected, 3, data_format)
    mult = kwargs.get("depth_multiplier", 1)
    assert layer.depthwise_kernel.shape == (3, 3, 3, mult)
    assert layer.pointwise_kernel.shape == (1, 1, 3 * mult, kwargs["filters"])


# -------------------------------------------------------- padding, cropping, upsampling


@pytest.mark.parametrize("data_format", FORMATS)
def test_zero_padding_cropping_upsampling_2d(data_format):
    x = (2, 4, 5, 2)
    run(ZeroPadding2D, {"padding": 1}, x, (None, 6, 7, 2), 0, data_format)
    run(ZeroPadding2D, {"padding": (1, 2)}, x, (None, 6, 9, 2), 0, data_format)
    run(ZeroPadding2D, {"padding": ((1, 0), (2, 3))}, x, (None, 5, 10, 2), 0, data_format)
    run(Cropping2D, {"cropping": ((1, 0), (2, 1))}, x, (None, 3, 2, 2), 0, data_format)
    run(Cropping2D, {"cropping": 1}, x, (None, 2, 3, 2), 0, data_format)
    run(UpSampling2D, {"size": (2, 3)}, x, (None, 8, 15, 2), 0, data_format)


@pytest.mark.parametrize("data_format", FORMATS)
def test_zero_padding_cropping_upsampling_1d(data_format):
    x = (2, 5, 3)
    run(ZeroPadding1D, {"padding": (1, 2)}, x, (None, 8, 3), 0, data_format)
    run(Cropping1D, {"cropping": (2, 1)}, x, (None, 2, 3), 0, data_format)
    run(UpSampling1D, {"size": 3}, x, (None, 15, 3), 0, data_format)


def test_padding_and_upsampling_values():
    x = np.arange(4.0).reshape(1, 2, 2, 1)
    padded = ZeroPadding2D(((1, 0), (0, 1)))(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(padded, [[0, 0, 0], [0, 1, 0], [2, 3, 0]])
    up = UpSampling2D((1, 2))(x).numpy()[0, :, :, 0]
    np.testing.assert_array_equal(up, [[0, 0, 1, 1], [2, 2, 3, 3]])
    np.testing.assert_array_equal(Cropping2D(((1, 0), (1, 0)))(x).numpy()[0, :, :, 0], [[3]])


# ----------------------------------------------------------------------------- Keras 1


def test_keras1_convolution2d_spellings():
    layer = layer_test(Convolution2D, {"nb_filter": 3, "nb_row": 3, "nb_col": 2, "border_mode": "same",
                                       "subsample": (2, 1), "init": "he_normal", "activation": "tanh",
                                       "W_regularizer": "l2", "b_regularizer": "l1", "W_constraint": "max_norm",
                                       "b_constraint": "non_neg"},
                       (2, 2, 5, 4), (None, 3, 3, 4), expected_weights=2)
    assert layer.data_format == "channels_first" and layer.kernel.shape == (3, 2, 2, 3)
    assert layer.padding == "same" and layer.strides == (2, 1) and len(layer.losses) == 2
    assert layer.kernel.constraint is not None and layer.bias.constraint is not None
    no_bias = Convolution2D(2, 3, 3, bias=False, dim_ordering="tf")
    no_bias(np.ones((1, 4, 4, 1)))
    assert no_bias.data_format == "channels_last" and no_bias.bias is None
    assert Convolution2D(2, 3, 3, dim_ordering="th").data_format == "channels_first"
    assert Convolution2D(2, (3, 3), data_format="channels_last").data_format == "channels_last"
    assert Convolution2D(filters=2, kernel_size=3).kernel_size == (3, 3)


def test_keras1_convolution1d_spellings():
    layer = layer_test(Convolution1D, {"nb_filter": 3, "filter_length": 2, "border_mode": "valid",
                                       "subsample_length": 2, "init": "uniform", "input_dim": 2,
                                       "input_length": 7},
                       (2, 7, 2), (None, 3, 3), expected_weights=2)
    assert layer.data_format == "channels_last" and layer._batch_input_shape == (None, 7, 2)
    assert Convolution1D(2, 3, border_mode="causal").padding == "causal"


def test_keras1_seed_program_shapes_and_fit():
    model = Sequential()
    model.add(Convolution2D(4, 5, 5, border_mode='valid', input_shape=(1, 28, 28)))
    model.add(Activation('tanh'))
    model.add(Convolution2D(8, 3, 3))
    model.add(Activation('tanh'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Convolution2D(16, 3, 3, border_mode='valid'))
    model.add(Activation('relu'))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(128, init='normal'))
    model.add(Activation('tanh'))
    model.add(Dense(10, init='normal'))
    model.add(Activation('softmax'))
    shapes = [layer.output_shape for layer in model.layers]
    assert shapes[0] == (None, 4, 24, 24)
    assert shapes[2] == (None, 8, 22, 22)
    assert shapes[4] == (None, 8, 11, 11)
    assert shapes[5] == (None, 16, 9, 9)
    assert shapes[7] == (None, 16, 4, 4)
    assert shapes[8] == (None, 256)
    assert model.layers[4].data_format == "channels_first"
    assert model.count_params() == 104 + 296 + 1168 + 32896 + 1290

    from shenjing.optimizers import SGD
    model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.05, momentum=0.9, nesterov=True),
                  metrics=['accuracy'])
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 28, 28)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 40)]
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=10, nb_epoch=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.predict(x[:3], verbose=0).shape == (3, 10)


def test_keras2_layers_inherit_the_upstream_format():
    model = Sequential([Convolution2D(2, 3, 3, input_shape=(1, 8, 8)), Conv2D(3, 3), MaxPooling2D(),
                        UpSampling2D(), ZeroPadding2D(1)])
    assert model.output_shape == (None, 3, 6, 6)
    assert all(layer.data_format == "channels_first" for layer in model.layers)
    model = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), MaxPooling2D()])
    assert model.output_shape == (None, 3, 3, 2)
    assert model.layers[1].data_format == "channels_last"


def test_global_image_data_format_is_the_default():
    backend.set_image_data_format("channels_first")
    try:
        layer = Conv2D(4, 3)
        out = layer(np.ones((2, 3, 6, 6), dtype="float32"))
        assert layer.data_format == "channels_first" and out.shape == (2, 4, 4, 4)
        assert Conv1D(2, 2)(np.ones((1, 3, 5), dtype="float32")).shape == (1, 2, 4)
    finally:
        backend.set_image_data_format("channels_last")


# ----------------------------------------------------------------------------- errors


def test_conv2d_rejects_a_3d_input():
    with pytest.raises(ValueError, match=r"Conv2D 'conv2d'.*expected an input of rank 4.*got shape \(2, 5, 5\)"):
        Conv2D(2, 3)(np.ones((2, 5, 5)))
    with pytest.raises(ValueError, match=r"Conv1D .*expected an input of rank 3.*\(2, 5, 5, 1\)"):
        Conv1D(2, 3)(np.ones((2, 5, 5, 1)))


def test_conv2d_rejects_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match=r"Conv2D 'big'.*kernel \(5, 5\) is larger than the input's spatial size "
                                         r"\(3, 4\).*'valid'"):
        Conv2D(2, 5, name="big")(np.ones((1, 3, 4, 1)))
    with pytest.raises(ValueError, match=r"dilated to \(5, 5\)"):
        Conv2D(2, 3, dilation_rate=2)(np.ones((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="larger than the input"):
        Sequential([Convolution2D(2, 5, 5, input_shape=(1, 4, 4))])
    assert Conv2D(2, 5, padding="same")(np.ones((1, 3, 4, 1))).shape == (1, 3, 4, 2)


def test_conv2d_rejects_a_channel_count_that_does_not_match_its_weights():
    layer = Conv2D(2, 3, name="c")
    layer(np.ones((1, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"Conv2D 'c': expected 3 input channels \(batch, rows, cols, 3\), but got "
                                         r"an input of shape \(1, 5, 5, 4\) with 4 channels"):
        layer(np.ones((1, 5, 5, 4)))
    first = Conv2D(2, 3, data_format="channels_first", name="d")
    first(np.ones((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"expected 3 input channels \(batch, 3, rows, cols\)"):
        first(np.ones((1, 5, 5, 3)))


def test_conv_rejects_unknown_padding_and_data_format():
    with pytest.raises(ValueError, match=r"Conv2D.*padding must be one of 'valid', 'same', got 'full'"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"padding must be one of 'valid', 'same', got 'causal'"):
        Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match=r"Conv2D.*data_format must be 'channels_last' or 'channels_first'.*'NHWC'"):
        Conv2D(2, 3, data_format="NHWC")
    with pytest.raises(ValueError, match=r"Convolution2D: dim_ordering must be 'th'.*got 'xy'"):
        Convolution2D(2, 3, 3, dim_ordering="xy")
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2 ints"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="filters must be a positive integer"):
        Conv2D(0, 3)


def test_conv_rejects_groups_that_do_not_divide_the_channels():
    with pytest.raises(ValueError, match=r"groups=3 must divide filters=4"):
        Conv2D(4, 3, groups=3)
    with pytest.raises(ValueError, match=r"Conv2D 'g'.*groups=2 must divide the number of input channels, got 3"):
        Conv2D(4, 3, groups=2, name="g")(np.ones((1, 5, 5, 3)))


def test_conv2d_transpose_rejects_bad_output_padding():
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than the strides \(2, 2\)"):
        Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="even"):
        Conv2DTranspose(2, 4, strides=2, padding="same", output_padding=0)


def test_other_layer_errors():
    with pytest.raises(ValueError, match="interpolation must be 'nearest'"):
        UpSampling2D(interpolation="bilinear")
    with pytest.raises(ValueError, match="cropping .* removes everything"):
        Cropping2D(2)(np.ones((1, 4, 4, 1)))
    with pytest.raises(ValueError, match="padding must be"):
        ZeroPadding2D((1, 2, 3))
    with pytest.raises(TypeError, match="unexpected keyword"):
        Conv2D(2, 3, border_mode="same")
    with pytest.raises(ValueError, match="DepthwiseConv2D.*depth_multiplier"):
        DepthwiseConv2D(3, depth_multiplier=0)


def test_layers_accept_tensors_and_backpropagate_to_weights():
    layer = Conv2D(2, 3, padding="same")
    x = Tensor(np.random.default_rng(0).random((2, 4, 4, 1)).astype("float32"), requires_grad=True)
    layer(x).sum().backward()
    assert x.grad.shape == x.shape and layer.kernel.grad.shape == (3, 3, 1, 2) and layer.bias.grad.shape == (2,)
    np.testing.assert_allclose(layer.bias.grad, [32.0, 32.0])


def test_bad_identifiers_name_the_layer_and_argument():
    with pytest.raises(ValueError, match=r"Conv2D 'c2'.*'activation'.*relux"):
        Conv2D(2, 3, activation="relux", name="c2")
    with pytest.raises(ValueError, match=r"DepthwiseConv2D 'dw'.*'depthwise_initializer'"):
        DepthwiseConv2D(3, depthwise_initializer="nope", name="dw")
    with pytest.raises(ValueError, match=r"SeparableConv2D 'sep'.*'pointwise_regularizer'"):
        SeparableConv2D(2, 3, pointwise_regularizer="nope", name="sep")


def _conv_pool_model(conv_kwargs=None, pool_kwargs=None, input_shape=(12, 12, 9)):
    from shenjing.layers import MaxPooling2D

    conv_kwargs = dict({"activation": "relu"}, **(conv_kwargs or {}))
    return Sequential([Conv2D(10, 3, input_shape=input_shape, **conv_kwargs),
                       MaxPooling2D(**(pool_kwargs or {})), Flatten(), Dense(3, activation="softmax")])


def test_sequential_inference_pools_a_convolution_block_by_block_with_the_same_numbers(monkeypatch):
    from shenjing.autodiff import conv as C
    from shenjing.autodiff import no_grad

    x = np.random.default_rng(0).standard_normal((40, 12, 12, 9)).astype(np.float32)
    model = _conv_pool_model()
    layer_by_layer = Tensor(x)
    for layer in model.layers:  # (with a gradient recorded: the two ops)
        layer_by_layer = layer(layer_by_layer)
    fused = []
    op = C.conv2d_max_pool2d
    monkeypatch.setattr(C, "conv2d_max_pool2d", lambda *a, **k: fused.append(1) or op(*a, **k))
    np.testing.assert_array_equal(model.predict(x, batch_size=40), layer_by_layer.data)
    with no_grad():
        np.testing.assert_array_equal(model(x).data, layer_by_layer.data)
    assert len(fused) == 2
    model.compile("sgd", "categorical_crossentropy")
    model.fit(x, np.eye(3, dtype=np.float32)[np.arange(40) % 3], epochs=1, batch_size=20, verbose=0)
    assert len(fused) == 2  # training: the layers one by one


@pytest.mark.parametrize("conv_kwargs, pool_kwargs", [
    ({"activity_regularizer": "l2"}, {}),  # the convolution's output is seen by its penalty
    ({"data_format": "channels_first"}, {"data_format": "channels_first"}),
    ({}, {"padding": "same"}),
    ({"activation": "sigmoid"}, {}),  # not fused into the convolution
], ids=["activity-regularizer", "channels-first", "same-pooling", "sigmoid"])
def test_a_convolution_and_pooling_the_fused_op_does_not_cover_run_one_by_one(conv_kwargs, pool_kwargs):
    from shenjing.autodiff import no_grad

    shape = (9, 12, 12) if conv_kwargs.get("data_format") == "channels_first" else (12, 12, 9)
    model = _conv_pool_model(conv_kwargs, pool_kwargs, shape)
    x = Tensor(np.random.default_rng(1).standard_normal((2,) + shape).astype(np.float32))
    conv, pool = model.layers[0], model.layers[1]
    with no_grad():
        assert conv._call_with_next(x, pool) is None
        np.testing.assert_allclose(model(x).data, model.layers[3](model.layers[2](pool(conv(x)))).data, rtol=1e-6)
    plain = _conv_pool_model()
    assert plain.layers[0]._call_with_next(x if shape == (12, 12, 9) else Tensor(x.data.transpose(0, 2, 3, 1)),
                                           plain.layers[1]) is None  # a gradient is recorded: no fusion


def test_conv_pool_fusion_keeps_the_pooling_layers_checks_and_hooks():
    from shenjing.layers import GlobalAveragePooling2D
    from shenjing.layers import MaxPooling2D as Pool

    model = Sequential([Conv2D(16, 3, input_shape=(None, None, 8)), Pool(2), GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match="pool size"):  # the convolution's 1x1 output is smaller than the pool
        model.predict(np.ones((3, 3, 3, 8), np.float32))
    seen = []

    class LoggedPool(Pool):
        def __call__(self, x, *args, **kwargs):
            seen.append(1)
            return super().__call__(x, *args, **kwargs)

    logged = Sequential([Conv2D(16, 3, input_shape=(8, 8, 8)), LoggedPool(2)])
    logged.predict(np.ones((2, 8, 8, 8), np.float32))
    assert seen  # a layer that changes how it is called is called
