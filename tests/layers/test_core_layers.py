import numpy as np
import pytest

from shenjing import layers, regularizers
from shenjing.autodiff import Tensor

from .harness import layer_gradient_error, layer_test


def test_dense():
    layer = layer_test(layers.Dense, {"units": 3, "activation": "tanh"}, (4, 5), (None, 3), expected_weights=2)
    assert layer.kernel.shape == (5, 3) and layer.bias.shape == (3,)


def test_dense_stores_large_kernels_column_major():
    from shenjing.layers.core import COLUMN_MAJOR_KERNEL_SIZE

    small, large = layers.Dense(16), layers.Dense(8)
    small.build((None, 64))
    large.build((None, COLUMN_MAJOR_KERNEL_SIZE // 8))
    assert small.kernel.data.flags.c_contiguous
    assert large.kernel.data.flags.f_contiguous and not large.kernel.data.flags.c_contiguous
    x = np.random.default_rng(0).normal(size=(2, COLUMN_MAJOR_KERNEL_SIZE // 8)).astype("float32")
    np.testing.assert_allclose(large(x).numpy(), x @ np.ascontiguousarray(large.kernel.data), rtol=1e-5, atol=1e-5)


def test_input_checks_remember_only_the_last_valid_shape():
    """A layer skips the check of the shape that passed last; any other shape is checked (and a new weight
    forgets the shape)."""
    dense, pool = layers.Dense(3), layers.MaxPooling2D(2)
    for _ in range(2):
        dense(np.ones((4, 5), np.float32))
        pool(np.ones((1, 4, 4, 2), np.float32))
    with pytest.raises(ValueError, match="expected the last axis to have size 5"):
        dense(np.ones((4, 6), np.float32))
    with pytest.raises(ValueError, match="pool"):
        pool(np.ones((1, 1, 4, 2), np.float32))
    dense(np.ones((2, 5), np.float32))
    dense.add_weight("extra", (2,))
    assert dense._valid_input_shape is None
    conv = layers.Conv2D(2, 3)
    conv(np.ones((1, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match="larger than the input"):
        conv(np.ones((1, 2, 5, 1), np.float32))
    norm = layers.LayerNormalization(center=False, scale=False)  # no weights: a rebuild must forget the shape
    norm(np.ones((2, 5), np.float32))
    norm.build((2, 6))
    norm.built = True
    assert norm._valid_input_shape is None


def test_dense_on_3d_input_and_no_bias():
    layer_test(layers.Dense, {"units": 2, "use_bias": False}, (2, 3, 4), (None, 3, 2), expected_weights=1)


def test_dense_keras1_spellings():
    layer = layers.Dense(output_dim=4, init="normal", input_dim=3, W_regularizer=regularizers.l2(0.1))
    layer(np.ones((2, 3)))
    assert layer.units == 4 and layer._batch_input_shape == (None, 3)
    assert abs(float(layer.kernel.data.std()) - 0.05) < 0.05
    assert len(layer.losses) == 1


def test_dense_rejects_bad_units_and_wrong_input():
    with pytest.raises(ValueError, match="units must be a positive integer"):
        layers.Dense(0)
    layer = layers.Dense(2)
    layer(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"dense.*expected the last axis to have size 3.*\(1, 4\)"):
        layer(np.ones((1, 4)))
    with pytest.raises(ValueError, match="rank >= 2"):
        layers.Dense(2)(np.ones(3))
    with pytest.raises(TypeError, match="unexpected keyword"):
        layers.Dense(2, foo=1)


def test_activation_layer_and_unknown_name():
    layer_test(layers.Activation, {"activation": "sigmoid"}, (3, 4), (None, 4), expected_weights=0)
    with pytest.raises(ValueError, match="Unknown activation 'tanhh'"):
        layers.Activation("tanhh")


def test_dropout_training_only_and_scaling():
    layer = layers.Dropout(0.5, seed=3)
    x = np.ones((200, 50), dtype="float32")
    out = layer(x, training=True).numpy()
    assert set(np.unique(out)) <= {0.0, 2.0}
    assert abs((out == 0).mean() - 0.5) < 0.05
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    again = layers.Dropout(0.5, seed=3)(x, training=True).numpy()
    np.testing.assert_array_equal(out, again)
    with pytest.raises(ValueError, match="rate must be in"):
        layers.Dropout(1.5)


def test_dropout_noise_shape_broadcasts():
    out = layers.Dropout(0.5, noise_shape=(None, 1), seed=0)(np.ones((6, 5)), training=True).numpy()
    assert all(len(set(row)) == 1 for row in out)


def test_flatten_reshape_permute():
    layer_test(layers.Flatten, {}, (2, 3, 4), (None, 12), expected_weights=0)
    layer_test(layers.Reshape, {"target_shape": (2, -1)}, (2, 3, 4), (None, 2, 6), expected_weights=0)
    layer_test(layers.Permute, {"dims": (2, 1)}, (2, 3, 4), (None, 4, 3), expected_weights=0)
    with pytest.raises(ValueError, match="cannot become"):
        layers.Reshape((5,))(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="permutation"):
        layers.Permute((1, 3))


def test_flatten_channels_first_moves_channels_last():
    x = np.arange(2 * 3 * 2 * 2, dtype="float64").reshape(2, 3, 2, 2)
    out = layers.Flatten(data_format="channels_first")(x).numpy()
    np.testing.assert_array_equal(out, x.transpose(0, 2, 3, 1).reshape(2, -1))


@pytest.mark.parametrize("cls,kwargs", [
    (layers.ReLU, {}), (layers.ReLU, {"max_value": 0.5, "negative_slope": 0.1, "threshold": -0.2}),
    (layers.LeakyReLU, {}), (layers.LeakyReLU, {"alpha": 0.1}), (layers.ELU, {"alpha": 0.7}),
    (layers.Softmax, {}), (layers.Softmax, {"axis": 1}),
])
def test_activation_layers(cls, kwargs):
    layer_test(cls, kwargs, (3, 4, 5), (None, 4, 5), expected_weights=0)


def test_leaky_relu_default_slope_is_keras():
    out = layers.LeakyReLU()(np.array([[-1.0, 2.0]])).numpy()
    np.testing.assert_allclose(out, [[-0.3, 2.0]])


def test_prelu():
    layer = layer_test(layers.PReLU, {"alpha_initializer": "random_uniform"}, (3, 4, 5), (None, 4, 5),
                       expected_weights=1)
    assert layer.alpha.shape == (4, 5)
    shared = layers.PReLU(shared_axes=[1])
    shared(np.ones((2, 4, 5)))
    assert shared.alpha.shape == (1, 5)


@pytest.mark.parametrize("cls,expected", [
    (layers.Add, lambda a, b: a + b), (layers.Subtract, lambda a, b: a - b), (layers.Multiply, lambda a, b: a * b),
    (layers.Average, lambda a, b: (a + b) / 2), (layers.Maximum, np.maximum), (layers.Minimum, np.minimum),
])
def test_merge_layers(cls, expected, float64):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    layer = cls()
    np.testing.assert_allclose(layer([a, b]).numpy(), expected(a, b))
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    layer([ta, tb]).sum().backward()
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape


def test_concatenate_and_merge_errors():
    a, b = np.ones((2, 3)), np.zeros((2, 5))
    assert layers.Concatenate()([a, b]).shape == (2, 8)
    assert layers.concatenate([a, b]).shape == (2, 8)
    with pytest.raises(ValueError, match="must match except on axis"):
        layers.Concatenate(axis=0).compute_output_shape([(None, 3), (None, 5)])
    with pytest.raises(ValueError, match="at least 2 inputs"):
        layers.Add()([a])
    with pytest.raises(ValueError, match="cannot be merged"):
        layers.Add()([a, b])


def test_activity_regularizer_and_weight_regularizers():
    layer = layers.Dense(2, kernel_regularizer="l2", bias_regularizer=regularizers.l1(0.5),
                         activity_regularizer=regularizers.l2(1.0))
    out = layer(np.ones((4, 3)))
    penalties = layer.losses
    assert len(penalties) == 3
    kernel = layer.kernel.data
    np.testing.assert_allclose(float(penalties[0].data), 0.01 * (kernel ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(float(penalties[2].data), (out.numpy() ** 2).sum() / 4, rtol=1e-5)


def test_set_weights_errors_name_the_layer():
    layer = layers.Dense(2, name="d")
    layer(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"'d'.*expected a list of 2 arrays"):
        layer.set_weights([np.ones((3, 2))])
    with pytest.raises(ValueError, match=r"'d/kernel' has shape \(3, 2\).*\(2, 3\)"):
        layer.set_weights([np.ones((2, 3)), np.ones(2)])


def test_frozen_layer_gets_no_gradient():
    layer = layers.Dense(2)
    layer(np.ones((1, 3)))
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    x = Tensor(np.ones((1, 3), dtype="float32"), requires_grad=True)
    layer(x).sum().backward()
    assert layer.kernel.grad is None and x.grad is not None


def test_dense_gradient_with_activation_in_training_mode(float64):
    layer = layers.Dense(3, activation="softplus")
    layer(np.ones((2, 4)))
    assert layer_gradient_error(layer, np.random.default_rng(0).normal(size=(2, 4)), training=True) < 1e-6
