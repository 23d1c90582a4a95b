"""The mask mechanism: a layer that creates a mask, layers that pass it on, and a loss that ignores masked steps."""

import numpy as np

from shenjing import layers
from shenjing.autodiff import ops
from shenjing.models import Sequential


class ZeroMask(layers.Layer):
    """Marks time steps whose features are all zero as padding (a minimal Masking)."""

    def call(self, inputs):
        return inputs

    def compute_mask(self, inputs, mask=None):
        return (inputs.data != 0).any(axis=-1)


class SeesMask(layers.Layer):
    supports_masking = True

    def call(self, inputs, mask=None):
        self.seen = mask
        return ops.mul(inputs, 1.0)


def test_mask_flows_through_layers_that_support_it():
    x = np.array([[[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]], dtype="float32")
    out = SeesMask()(ZeroMask()(x))
    np.testing.assert_array_equal(out._keras_mask, [[True, False, True]])
    dense = layers.Dense(2)(ZeroMask()(x))
    np.testing.assert_array_equal(dense._keras_mask, [[True, False, True]])
    assert layers.Flatten()(ZeroMask()(x))._keras_mask is None


def test_masked_steps_contribute_nothing_to_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    x[:, 3:] = 0  # the last two steps are padding
    y = rng.normal(size=(4, 5, 2)).astype("float32")
    model = Sequential([ZeroMask(input_shape=(5, 3)), layers.Dense(2)])
    model.compile("sgd", "mse")
    masked_loss = model.evaluate(x, y, verbose=0)
    y_changed = y.copy()
    y_changed[:, 3:] = 100.0  # targets on padded steps must not matter
    assert abs(model.evaluate(x, y_changed, verbose=0) - masked_loss) < 1e-6
    prediction = model.predict(x)[:, :3]
    expected = ((prediction - y[:, :3]) ** 2).mean()  # mean over the real steps only
    assert abs(masked_loss - expected) < 1e-5
