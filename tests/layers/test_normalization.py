"""BatchNormalization and LayerNormalization: the generic layer test, moving statistics against a
hand computation, inference with the moving statistics, frozen layers, training inside models,
summary counts, Keras 1 spellings and error messages."""

import numpy as np
import pytest

from shenjing import backend, layers, optimizers
from shenjing.autodiff import Tensor
from shenjing.layers.normalization import BatchNormalization, LayerNormalization
from shenjing.models import Model, Sequential

from .harness import layer_gradient_error, layer_test


def data(*shape, seed=0, loc=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(loc, scale, shape)


# ------------------------------------------------------------------ BatchNormalization


def test_batch_norm_layer_test_dense_input():
    layer = layer_test(BatchNormalization, {}, (6, 3), (None, 3), expected_weights=4, training_only=True)
    assert [w.name.split("/")[-1] for w in layer.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name.split("/")[-1] for w in layer.trainable_weights] == ["gamma", "beta"]
    assert [w.name.split("/")[-1] for w in layer.non_trainable_weights] == ["moving_mean", "moving_variance"]


@pytest.mark.parametrize("kwargs,shape", [({"axis": 1}, (3, 2, 3, 3)), ({"axis": -1}, (2, 3, 3, 2)),
                                          ({"axis": 1}, (4, 3, 2))])
def test_batch_norm_layer_test_images(kwargs, shape):
    layer_test(BatchNormalization, kwargs, shape, (None,) + shape[1:], expected_weights=4, training_only=True)


@pytest.mark.parametrize("center,scale,count", [(False, True, 3), (True, False, 3), (False, False, 2)])
def test_batch_norm_without_center_or_scale(center, scale, count):
    layer = layer_test(BatchNormalization, {"center": center, "scale": scale}, (5, 2), expected_weights=count,
                       training_only=True)
    assert (layer.gamma is not None) == scale and (layer.beta is not None) == center


@pytest.mark.parametrize("axis,shape", [(-1, (6, 3)), (1, (2, 3, 2, 2))])
def test_batch_norm_gradients_in_training_mode(float64, axis, shape):
    layer = BatchNormalization(axis=axis, gamma_initializer="random_normal", beta_initializer="random_normal")
    x = data(*shape, loc=1.0, scale=2.0)
    layer(x)
    assert layer_gradient_error(layer, x, training=True) < 1e-6


def test_training_normalizes_with_batch_statistics_channels_first(float64):
    x = data(4, 3, 5, 5, loc=3.0, scale=2.0)
    out = BatchNormalization(axis=1, epsilon=1e-8)(x, training=True).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1, atol=1e-6)


def test_moving_statistics_follow_the_keras_update(float64):
    momentum, eps = 0.8, 1e-3
    layer = BatchNormalization(momentum=momentum, epsilon=eps)
    mean, var = np.zeros(4), np.ones(4)
    for step in range(5):
        x = data(7, 2, 4, seed=step, loc=step, scale=1 + step)
        layer(x, training=True)
        batch_mean = x.mean(axis=(0, 1))
        batch_var = x.var(axis=(0, 1))  # biased, as Keras 3
        mean = momentum * mean + (1 - momentum) * batch_mean
        var = momentum * var + (1 - momentum) * batch_var
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=1e-12)
    # the update is in place: the variables keep their arrays
    ident = id(layer.moving_mean.data)
    layer(data(7, 2, 4), training=True)
    assert id(layer.moving_mean.data) == ident


def test_inference_uses_moving_statistics_and_does_not_update(float64):
    layer = BatchNormalization(epsilon=1e-3)
    x = data(5, 3, loc=2.0)
    layer(x)
    gamma, beta = np.array([1.0, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    moving_mean, moving_var = np.array([0.5, -0.5, 1.0]), np.array([2.0, 0.5, 1.5])
    layer.set_weights([gamma, beta, moving_mean, moving_var])
    for training in (False, None):
        out = layer(x, training=training).numpy()
        np.testing.assert_allclose(out, gamma * (x - moving_mean) / np.sqrt(moving_var + 1e-3) + beta, rtol=1e-12)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moving_mean)
    trained = layer(x, training=True).numpy()
    assert not np.allclose(trained, out)
    assert not np.allclose(layer.moving_mean.numpy(), moving_mean)


def test_frozen_batch_norm_runs_in_inference_mode(float64):
    layer = BatchNormalization()
    x = data(6, 2, loc=5.0)
    layer(x)
    layer.trainable = False
    before = layer.get_weights()
    out = layer(x, training=True).numpy()
    np.testing.assert_allclose(out, layer(x, training=False).numpy())
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    xt = Tensor(x, requires_grad=True)
    layer(xt, training=True).sum().backward()
    assert layer.gamma.grad is None and xt.grad is not None


def test_get_and_set_weights_round_trip():
    layer = BatchNormalization()
    layer(np.ones((2, 3), dtype="float32"))
    values = [np.arange(3, dtype="float32") + i for i in range(4)]
    layer.set_weights(values)
    for a, b in zip(layer.get_weights(), values):
        np.testing.assert_array_equal(a, b)
    assert all(w.dtype == np.float32 for w in layer.get_weights())


def test_float16_input_is_normalized_in_float32_and_keeps_its_dtype():
    layer = BatchNormalization()
    x = (data(8, 3, loc=300.0, scale=50.0)).astype("float16")
    out = layer(Tensor(x), training=True)
    assert out.dtype == np.float16 and np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy().astype("float64").mean(axis=0), 0, atol=1e-2)


def test_batch_norm_in_sequential_fit_and_summary(capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 4.0, (128, 5)).astype("float32")
    y = (x @ rng.normal(size=(5, 1)) / 4.0).astype("float32")
    model = Sequential([layers.Dense(8, input_shape=(5,)), BatchNormalization(momentum=0.9),
                        layers.Activation("relu"), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="mse")
    bn = model.layers[1]
    history = model.fit(x, y, batch_size=32, epochs=12, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert not np.allclose(bn.moving_mean.numpy(), 0) and not np.allclose(bn.moving_variance.numpy(), 1)
    assert len(model.trainable_weights) == 6 and len(model.non_trainable_weights) == 2
    # after training, inference with the moving statistics predicts close to training-mode outputs
    pred = model.predict(x, verbose=0)
    assert np.mean((pred - y) ** 2) < 2 * losses[-1] + 0.1
    model.summary()
    text = capsys.readouterr().out
    assert "(BatchNormalization)" in text or "(Batc" in text
    assert "Non-trainable params: 16" in text  # 2·C, C = 8
    assert f"Total params: {6 * 8 + 4 * 8 + 9:,}" in text


def test_batch_norm_in_functional_model_channels_first_and_frozen_model(capsys):
    backend.set_image_data_format("channels_first")
    inp = layers.Input(shape=(3, 4, 4))
    h = BatchNormalization(axis=1)(inp)
    out = layers.Dense(1)(layers.Flatten()(h))
    model = Model(inp, out)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, (16, 3, 4, 4)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    bn = model.layers[1]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert bn.moving_mean.shape == (3,) and not np.allclose(bn.moving_mean.numpy(), 0)
    model.summary()
    assert "Non-trainable params: 6" in capsys.readouterr().out
    # a frozen BN layer keeps its statistics during fit
    bn.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    before = bn.moving_mean.numpy().copy()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)


def test_config_round_trip_keeps_every_argument():
    layer = BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False, gamma_initializer="random_normal",
                               gamma_regularizer="l2", moving_variance_initializer="zeros", synchronized=True)
    config = layer.get_config()
    assert config["axis"] == 1 and config["momentum"] == 0.9 and config["epsilon"] == 1e-5
    assert config["center"] is False and config["synchronized"] is True
    clone = BatchNormalization.from_config(config)
    assert clone.get_config() == config
    clone(np.ones((2, 3, 2), dtype="float32"))
    assert len(clone.weights) == 3 and len(clone.losses) == 1
    np.testing.assert_array_equal(clone.moving_variance.numpy(), 0)


def test_keras1_spellings():
    layer = BatchNormalization(mode=0, axis=1, gamma_init="zero", beta_init="one", input_shape=(3, 2, 2))
    layer(np.ones((1, 3, 2, 2), dtype="float32"))
    np.testing.assert_array_equal(layer.gamma.numpy(), 0)
    np.testing.assert_array_equal(layer.beta.numpy(), 1)
    assert layer._batch_input_shape == (None, 3, 2, 2)
    with pytest.raises(ValueError, match="mode=2 is not supported.*LayerNormalization"):
        BatchNormalization(mode=2)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"axis 3 is out of range for an input of rank 2 \(shape \(2, 4\)\)"):
        BatchNormalization(axis=3)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="batch axis"):
        BatchNormalization(axis=0)(np.ones((2, 4)))
    with pytest.raises(ValueError, match="axis must be an integer"):
        BatchNormalization(axis="channels")
    with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\]"):
        BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon must be a positive number"):
        BatchNormalization(epsilon=0)
    layer = BatchNormalization()
    layer(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"batch_normalization.*incompatible.*\(None, 4\).*\(2, 5\)"):
        layer(np.ones((2, 5)))
    with pytest.raises(ValueError, match="expected an input of rank 2"):
        layer(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="must be known"):
        Sequential([layers.Input(batch_shape=(None, None)), BatchNormalization()])


# ------------------------------------------------------------------ LayerNormalization


def test_layer_norm_layer_test():
    layer = layer_test(LayerNormalization, {"gamma_initializer": "random_normal",
                                            "beta_initializer": "random_normal"}, (4, 5), (None, 5),
                       expected_weights=2)
    assert layer.gamma.shape == (5,)


def test_layer_norm_several_axes_and_values(float64):
    layer = layer_test(LayerNormalization, {"axis": [1, 2], "epsilon": 1e-6}, (2, 3, 4), expected_weights=2)
    assert layer.gamma.shape == (3, 4)
    x = Tensor(data(2, 3, 4, loc=2.0, scale=3.0))
    out = layer(x).numpy()
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=(1, 2)), 1, atol=1e-6)


def test_layer_norm_rms_scaling(float64):
    layer = layer_test(LayerNormalization, {"rms_scaling": True, "gamma_initializer": "random_normal"}, (3, 4),
                       expected_weights=1)
    x = data(3, 4)
    expected = x / np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + 1e-3) * layer.gamma.numpy()
    np.testing.assert_allclose(layer(Tensor(x)).numpy(), expected, rtol=1e-12)


def test_layer_norm_in_model_trains_and_errors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1, keepdims=True) > 0).astype("float32")
    model = Sequential([layers.Dense(8, input_shape=(4,)), LayerNormalization(), layers.Activation("tanh"),
                        layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    losses = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert len(model.non_trainable_weights) == 0
    with pytest.raises(ValueError, match="axis 2 is out of range for an input of rank 2"):
        LayerNormalization(axis=2)(np.ones((2, 3)))
    with pytest.raises(ValueError, match="names an axis twice"):
        LayerNormalization(axis=[1, -1])(np.ones((2, 3)))
    with pytest.raises(ValueError, match="epsilon"):
        LayerNormalization(epsilon=-1)
