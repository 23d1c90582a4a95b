"""Noise layers (GaussianNoise, GaussianDropout, AlphaDropout, SpatialDropout1D/2D/3D) and
ActivityRegularization: training-only behaviour, statistics, whole-channel masks in both data
formats, seeds, gradients, config round trips and error messages."""

import numpy as np
import pytest

from shenjing import backend, layers
from shenjing.autodiff import Tensor
from shenjing.layers.noise import (
    ActivityRegularization,
    AlphaDropout,
    GaussianDropout,
    GaussianNoise,
    SpatialDropout1D,
    SpatialDropout2D,
    SpatialDropout3D,
)
from shenjing.models import Sequential

from .harness import layer_test

# ----------------------------------------------------------------------- layer_test


@pytest.mark.parametrize("cls,kwargs,shape", [
    (GaussianNoise, {"stddev": 0.5, "seed": 1}, (3, 4)),
    (GaussianDropout, {"rate": 0.3, "seed": 1}, (3, 4)),
    (AlphaDropout, {"rate": 0.3, "seed": 1}, (6, 4)),
    (SpatialDropout1D, {"rate": 0.5, "seed": 2}, (4, 3, 5)),
    (SpatialDropout2D, {"rate": 0.5, "seed": 2}, (4, 2, 2, 5)),
    (SpatialDropout3D, {"rate": 0.5, "seed": 2}, (4, 2, 2, 2, 5)),
])
def test_noise_layers_generic(cls, kwargs, shape):
    layer_test(cls, kwargs, shape, (None,) + shape[1:], expected_weights=0, training_only=True)


def test_activity_regularization_generic_and_loss(float64):
    layer_test(ActivityRegularization, {"l1": 0.1, "l2": 0.2}, (3, 4), (None, 4), expected_weights=0)
    backend.set_floatx("float64")
    x = np.random.default_rng(0).normal(size=(5, 4))
    layer = ActivityRegularization(l1=0.1, l2=0.2)
    out = layer(Tensor(x))
    np.testing.assert_array_equal(out.numpy(), x)
    (loss,) = layer.losses
    np.testing.assert_allclose(loss.item(), (0.1 * np.abs(x).sum() + 0.2 * (x ** 2).sum()) / 5, rtol=1e-12)
    assert layer.get_config()["l1"] == 0.1 and layer.get_config()["l2"] == 0.2
    with pytest.raises(ValueError, match="ActivityRegularization.*l1 must be a finite non-negative"):
        ActivityRegularization(l1=-1)


def test_activity_regularization_loss_gradient_reaches_the_weights():
    model = Sequential([layers.Dense(3, input_shape=(2,)), ActivityRegularization(l2=1.0), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 2), dtype="float32")
    y = np.zeros((4, 1), dtype="float32")
    model.fit(x, y, epochs=1, verbose=0)
    assert len(model.losses) == 1 and model.losses[0].item() >= 0


# -------------------------------------------------------------------- Gaussian noise


def test_gaussian_noise_statistics_and_inference_identity():
    x = np.full((400, 250), 2.0, dtype="float32")
    layer = GaussianNoise(0.3)
    out = layer(x, training=True).numpy()
    assert out.dtype == np.float32
    noise = out - x
    assert abs(noise.mean()) < 0.005 and abs(noise.std() - 0.3) < 0.005
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    np.testing.assert_array_equal(layer(x).numpy(), x)


def test_gaussian_noise_gradient_in_training_is_identity(float64):
    x = Tensor(np.random.default_rng(0).normal(size=(3, 4)), requires_grad=True)
    out = GaussianNoise(1.0, seed=0)(x, training=True)
    weights = np.random.default_rng(1).normal(size=(3, 4))
    (out * weights).sum().backward()
    np.testing.assert_allclose(x.grad, weights)


def test_gaussian_dropout_statistics_and_gradient(float64):
    rate = 0.2
    x = Tensor(np.ones((300, 300)), requires_grad=True)
    out = GaussianDropout(rate, seed=4)(x, training=True)
    values = out.numpy()
    assert abs(values.mean() - 1) < 0.005
    assert abs(values.std() - np.sqrt(rate / (1 - rate))) < 0.005
    out.sum().backward()
    np.testing.assert_allclose(x.grad, values)  # d(x·noise)/dx = noise, and x = 1


def test_alpha_dropout_keeps_zero_mean_unit_variance_and_saturates_dropped_units():
    rate = 0.2
    x = np.random.default_rng(0).normal(size=(500, 400)).astype("float32")
    out = AlphaDropout(rate, seed=3)(x, training=True).numpy()
    assert abs(out.mean()) < 0.01 and abs(out.var() - 1) < 0.02
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    b = -a * alpha_p * rate
    dropped = np.isclose(out, a * alpha_p + b, atol=1e-6)
    assert abs(dropped.mean() - rate) < 0.01
    np.testing.assert_allclose(out[~dropped], a * x[~dropped] + b, rtol=1e-5, atol=1e-6)


def test_alpha_dropout_noise_shape():
    out = AlphaDropout(0.5, noise_shape=(None, 1), seed=0)(np.ones((6, 5), dtype="float32"), training=True).numpy()
    assert all(len(set(row)) == 1 for row in out)
    with pytest.raises(ValueError, match="noise_shape"):
        AlphaDropout(0.5, noise_shape=(1,))(np.ones((2, 3)), training=True)


# ------------------------------------------------------------------- spatial dropout


def _channel_is_uniform(out, channel_axis):
    """Each (sample, channel) slice is either all zero or all the scaled value."""
    moved = np.moveaxis(out, channel_axis, 1).reshape(out.shape[0], out.shape[channel_axis], -1)
    return np.all((moved == moved[..., :1]).all(axis=-1))


@pytest.mark.parametrize("data_format,channel_axis", [("channels_last", -1), ("channels_first", 1)])
def test_spatial_dropout2d_zeros_whole_channels(data_format, channel_axis):
    shape = (20, 6, 3, 3) if data_format == "channels_first" else (20, 3, 3, 6)
    x = np.ones(shape, dtype="float32")
    out = SpatialDropout2D(0.5, data_format=data_format, seed=7)(x, training=True).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}
    assert _channel_is_uniform(out, channel_axis)
    assert abs((out == 0).mean() - 0.5) < 0.15
    np.testing.assert_array_equal(SpatialDropout2D(0.5, data_format=data_format)(x, training=False).numpy(), x)


@pytest.mark.parametrize("data_format,channel_axis", [("channels_last", -1), ("channels_first", 1)])
def test_spatial_dropout1d_and_3d_zero_whole_channels(data_format, channel_axis):
    x1 = np.ones((30, 4, 5) if data_format == "channels_last" else (30, 5, 4), dtype="float32")
    out1 = SpatialDropout1D(0.25, data_format=data_format, seed=0)(x1, training=True).numpy()
    assert _channel_is_uniform(out1, channel_axis) and set(np.unique(out1)) == {0.0, np.float32(1 / 0.75)}
    x3 = np.ones((10, 2, 2, 2, 4) if data_format == "channels_last" else (10, 4, 2, 2, 2), dtype="float32")
    out3 = SpatialDropout3D(0.5, data_format=data_format, seed=0)(x3, training=True).numpy()
    assert _channel_is_uniform(out3, channel_axis)


def test_spatial_dropout_data_format_defaults():
    assert SpatialDropout1D(0.5).data_format == "channels_last"  # as Keras: always channels last unless told
    backend.set_image_data_format("channels_first")
    layer = SpatialDropout2D(0.5, seed=1)
    out = layer(np.ones((8, 4, 3, 3), dtype="float32"), training=True).numpy()
    assert layer.data_format == "channels_first" and _channel_is_uniform(out, 1)
    assert layer.get_config()["data_format"] == "channels_first"
    # in a model, an unset data_format follows the layer that feeds it
    backend.set_image_data_format("channels_last")
    inp = layers.Input(shape=(4, 3, 3))
    inp.data_format = "channels_first"
    follower = SpatialDropout2D(0.5)
    follower(inp)
    assert follower.data_format == "channels_first"


def test_spatial_dropout_keras1_spellings():
    layer = SpatialDropout2D(p=0.3, dim_ordering="th")
    assert layer.rate == 0.3 and layer.data_format == "channels_first"
    assert GaussianNoise(sigma=0.2).stddev == 0.2 and GaussianDropout(p=0.4).rate == 0.4


def test_spatial_dropout_gradient_is_the_mask(float64):
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3, 3, 5)), requires_grad=True)
    out = SpatialDropout2D(0.5, seed=5)(x, training=True)
    out.sum().backward()
    mask = np.where(out.numpy() == 0, 0.0, 2.0)
    np.testing.assert_allclose(x.grad, mask)


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("cls,kwargs,shape", [
    (GaussianNoise, {"stddev": 1.0}, (5, 6)), (GaussianDropout, {"rate": 0.5}, (5, 6)),
    (AlphaDropout, {"rate": 0.5}, (5, 6)), (SpatialDropout2D, {"rate": 0.5}, (5, 2, 2, 6)),
])
def test_seeds_are_reproducible(cls, kwargs, shape):
    x = np.ones(shape, dtype="float32")
    first = cls(seed=11, **kwargs)
    a1, a2 = first(x, training=True).numpy(), first(x, training=True).numpy()
    second = cls(seed=11, **kwargs)
    np.testing.assert_array_equal(second(x, training=True).numpy(), a1)
    np.testing.assert_array_equal(second(x, training=True).numpy(), a2)
    assert not np.array_equal(a1, a2)  # the generator advances between calls
    # unseeded layers draw from the global generator: set_random_seed reproduces them
    backend.set_random_seed(3)
    b1 = cls(**kwargs)(x, training=True).numpy()
    backend.set_random_seed(3)
    np.testing.assert_array_equal(cls(**kwargs)(x, training=True).numpy(), b1)


# --------------------------------------------------------------------------- errors


def test_noise_layer_errors():
    with pytest.raises(ValueError, match="stddev must be a finite non-negative number"):
        GaussianNoise(-0.1)
    with pytest.raises(ValueError, match=r"GaussianDropout.*rate must be a number in \[0, 1\)"):
        GaussianDropout(1.0)
    with pytest.raises(ValueError, match=r"SpatialDropout2D.*rate must be"):
        SpatialDropout2D(-0.5)
    with pytest.raises(ValueError, match="data_format must be 'channels_last' or 'channels_first'.*'nhwc'"):
        SpatialDropout2D(0.5, data_format="nhwc")
    with pytest.raises(ValueError, match="dim_ordering"):
        SpatialDropout2D(0.5, dim_ordering="xy")
    with pytest.raises(ValueError, match=r"SpatialDropout2D.*expected an input of rank 4.*\(2, 3\)"):
        SpatialDropout2D(0.5)(np.ones((2, 3)), training=True)
    with pytest.raises(ValueError, match=r"SpatialDropout1D.*rank 3"):
        Sequential([layers.Input(shape=(4,)), SpatialDropout1D(0.5)])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        GaussianNoise(0.1, seed=-1)
