import numpy as np
import pytest

from shenjing import backend
from shenjing.layers.convolutional import Convolution2D
from shenjing.layers.convolutional import MaxPooling2D as MaxPooling2DFromConvolutional
from shenjing.layers.pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
)
from shenjing.models import Sequential

from .harness import layer_test

FORMATS = ["channels_last", "channels_first"]


def shaped(shape, data_format):
    shape = tuple(shape)
    return shape if data_format == "channels_last" else (shape[0], shape[-1]) + shape[1:-1]


def distinct(shape):
    """Inputs at least 0.04 apart: no ties, so max pooling's gradient is well defined."""
    values = np.random.default_rng(3).permutation(int(np.prod(shape))).reshape(shape) * 0.04
    return values - values.mean()


def run(layer_cls, kwargs, input_shape, expected, data_format):
    shape = shaped(input_shape, data_format)
    return layer_test(layer_cls, dict(kwargs, data_format=data_format), shape, shaped(expected, data_format),
                      expected_weights=0, input_data=distinct(shape))


POOL2D_MODES = [
    ({"pool_size": (2, 2)}, (2, 4, 6, 2), (None, 2, 3, 2)),
    ({"pool_size": 3, "strides": 2}, (2, 7, 6, 2), (None, 3, 2, 2)),  # overlapping windows
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 5, 2), (None, 3, 3, 2)),
    ({"pool_size": (2, 3), "strides": (1, 2), "padding": "same"}, (2, 4, 5, 2), (None, 4, 3, 2)),
    ({"pool_size": 2, "padding": "valid"}, (2, 5, 5, 1), (None, 2, 2, 1)),  # leftover row/col dropped
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("cls", [MaxPooling2D, AveragePooling2D])
@pytest.mark.parametrize("mode", range(len(POOL2D_MODES)))
def test_pooling_2d(mode, cls, data_format):
    kwargs, input_shape, expected = POOL2D_MODES[mode]
    layer = run(cls, kwargs, input_shape, expected, data_format)
    config = layer.get_config()
    assert config["pool_size"] == tuple(np.broadcast_to(kwargs["pool_size"], 2))
    assert config["strides"] == tuple(np.broadcast_to(kwargs.get("strides", kwargs["pool_size"]), 2))


POOL1D_MODES = [
    ({"pool_size": 2}, (2, 6, 3), (None, 3, 3)),
    ({"pool_size": 3, "strides": 2}, (2, 7, 3), (None, 3, 3)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (2, 6, 3), (None, 3, 3)),
]


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("cls", [MaxPooling1D, AveragePooling1D])
@pytest.mark.parametrize("mode", range(len(POOL1D_MODES)))
def test_pooling_1d(mode, cls, data_format):
    kwargs, input_shape, expected = POOL1D_MODES[mode]
    run(cls, kwargs, input_shape, expected, data_format)


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("cls", [GlobalMaxPooling2D, GlobalAveragePooling2D])
def test_global_pooling_2d(cls, data_format):
    run(cls, {}, (2, 3, 4, 5), (None, 5), data_format)
    layer = run(cls, {"keepdims": True}, (2, 3, 4, 5), (None, 1, 1, 5), data_format)
    assert layer.get_config()["keepdims"] is True


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("cls", [GlobalMaxPooling1D, GlobalAveragePooling1D])
def test_global_pooling_1d(cls, data_format):
    run(cls, {}, (2, 6, 3), (None, 3), data_format)
    run(cls, {"keepdims": True}, (2, 6, 3), (None, 1, 3), data_format)


def test_pooling_values():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(MaxPooling2D()(x).numpy()[0, :, :, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(AveragePooling2D()(x).numpy()[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    # 'same' average: 3x3 windows at stride 2 over 4x4, padding (0, 1): the last window sees 2x2 real pixels
    out = AveragePooling2D(3, 2, padding="same")(x).numpy()[0, :, :, 0]
    np.testing.assert_allclose(out, [[5.0, 6.5], [11.0, 12.5]])
    np.testing.assert_array_equal(GlobalMaxPooling2D()(x).numpy(), [[15.0]])
    np.testing.assert_array_equal(GlobalAveragePooling1D()(np.arange(6.0).reshape(1, 3, 2)).numpy(), [[2.0, 3.0]])


def test_aliases_and_keras1_import_location():
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    assert MaxPooling2DFromConvolutional is MaxPooling2D


def test_keras1_pooling_spellings():
    layer = MaxPooling2D(pool_size=(2, 2), border_mode="same")
    assert layer.padding == "same" and layer.data_format == "channels_first"
    assert MaxPooling2D(dim_ordering="tf").data_format == "channels_last"
    assert AveragePooling2D(dim_ordering="th", border_mode="valid").data_format == "channels_first"
    assert MaxPooling2D(border_mode="valid", data_format="channels_last").data_format == "channels_last"
    out = MaxPooling2D((2, 2), border_mode="valid")(np.ones((1, 3, 4, 6)))
    assert out.shape == (1, 3, 2, 3)
    one_d = MaxPooling1D(pool_length=3, stride=1, border_mode="same")
    assert one_d.pool_size == (3,) and one_d.strides == (1,) and one_d.padding == "same"
    assert one_d(np.ones((2, 5, 4))).shape == (2, 5, 4)
    assert GlobalAveragePooling2D(dim_ordering="th")(np.ones((2, 3, 4, 5))).shape == (2, 3)
    with pytest.raises(ValueError, match="dim_ordering must be 'th'"):
        MaxPooling2D(dim_ordering="nchw")


def test_plain_pooling_inherits_the_upstream_format():
    model = Sequential([Convolution2D(4, 3, 3, input_shape=(2, 9, 8)), MaxPooling2D((2, 2)),
                        GlobalAveragePooling2D()])
    assert model.layers[1].output_shape == (None, 4, 3, 3)
    assert model.output_shape == (None, 4)
    assert model.layers[1].data_format == model.layers[2].data_format == "channels_first"
    lone = MaxPooling2D()
    assert lone.data_format is None
    lone(np.ones((1, 4, 4, 3)))
    assert lone.data_format == "channels_last"
    backend.set_image_data_format("channels_first")
    try:
        layer = MaxPooling2D()
        assert layer(np.ones((1, 3, 4, 4))).shape == (1, 3, 2, 2) and layer.data_format == "channels_first"
    finally:
        backend.set_image_data_format("channels_last")


def test_pooling_float32_in_float32_out():
    out = MaxPooling2D()(np.ones((2, 4, 4, 3), dtype="float32"))
    assert out.dtype == np.float32
    assert AveragePooling2D(padding="same")(np.ones((2, 5, 5, 3), dtype="float32")).dtype == np.float32


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"MaxPooling2D 'mp'.*expected an input of rank 4.*got shape \(2, 4, 4\)"):
        MaxPooling2D(name="mp")(np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r"pool size \(3, 3\) is larger than the input's spatial size \(2, 5\)"):
        MaxPooling2D(3)(np.ones((1, 2, 5, 1)))
    assert MaxPooling2D(3, padding="same")(np.ones((1, 2, 5, 1))).shape == (1, 1, 2, 1)
    with pytest.raises(ValueError, match=r"AveragePooling2D.*padding must be one of 'valid', 'same', got 'full'"):
        AveragePooling2D(padding="full")
    with pytest.raises(ValueError, match=r"MaxPooling2D.*data_format must be 'channels_last' or 'channels_first'"):
        MaxPooling2D(data_format="th")
    with pytest.raises(ValueError, match="pool_size must be"):
        MaxPooling2D(pool_size=(2, 2, 2))
    with pytest.raises(ValueError, match=r"GlobalMaxPooling1D.*expected an input of rank 3"):
        GlobalMaxPooling1D()(np.ones((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="larger than the input"):
        Sequential([Convolution2D(2, 3, 3, input_shape=(1, 4, 4)), MaxPooling2D((3, 3))])
