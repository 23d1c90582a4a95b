"""Weights written by real Keras 3 (scripts/make_keras_fixtures.py, torch backend) load into the same shenjing
models, in the three layouts Keras writes (Keras 3 ``.weights.h5``, the legacy full-model ``.h5``, and Keras 2's
weights-only layer-group ``.h5``), and the predictions match Keras's to 1e-5.

Weight order (the same in Keras and shenjing, so the arrays are copied as they are):
Dense kernel (in, units), bias; Conv2D kernel (kh, kw, in, filters), bias; BatchNormalization gamma, beta,
moving_mean, moving_variance; Embedding embeddings (input_dim, output_dim); LSTM kernel (in, 4u),
recurrent_kernel (u, 4u), bias (4u,), gates i, f, c, o; GRU kernel (in, 3u), recurrent_kernel (u, 3u), gates
z, r, h, and with reset_after=True (Keras 3's default) bias (2, 3u): row 0 the input bias, row 1 the
recurrent bias.
"""

import os

import numpy as np
import pytest

import shenjing.layers as L
from shenjing.models import Model, Sequential
from shenjing.saving import load_weights

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras")
LAYOUTS = ["weights.h5", "h5", "keras2.h5"]


def layer_class(name):
    cls = getattr(L, name, None)
    if cls is None:
        try:
            from shenjing.layers import embedding, recurrent  # noqa: F401  (written in parallel)
        except ImportError:
            pytest.skip(f"shenjing.layers.{name} is not available yet")
        cls = getattr(recurrent, name, None) or getattr(embedding, name, None)
    if cls is None:
        pytest.skip(f"shenjing.layers.{name} is not available yet")
    return cls


def dense():
    return Sequential([L.Input((8,)), L.Dense(16, activation="relu", name="d1"),
                       L.Dense(4, activation="softmax", name="d2")])


def conv():
    return Sequential([L.Input((10, 10, 3)), L.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
                       L.MaxPooling2D(2, name="p1"), L.Conv2D(6, 3, padding="valid", name="c2"),
                       L.Flatten(name="f"), L.Dense(3, name="d")])


def batchnorm():
    return Sequential([L.Input((6,)), L.Dense(8, name="d1"), L.BatchNormalization(name="bn", epsilon=1e-3),
                       L.Dense(2, name="d2")])


def recurrent(name):
    def build():
        cls = layer_class(name)
        inputs = L.Input((5, 3))
        x = cls(4, name=name.lower())(inputs)
        return Model(inputs, L.Dense(2, name="d")(x))
    return build


def embedding():
    cls = layer_class("Embedding")
    return Sequential([L.Input((6,), dtype="int32"), cls(20, 5, name="emb"), L.GlobalAveragePooling1D(name="gap"),
                       L.Dense(2, name="d")])


MODELS = {"dense": dense, "conv": conv, "batchnorm": batchnorm, "lstm": recurrent("LSTM"), "gru": recurrent("GRU"),
          "embedding": embedding}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_weights_give_keras_predictions(name, layout):
    path = os.path.join(FIXTURES, f"{name}.{layout}")
    model = MODELS[name]()
    load_weights(model, path)
    expected = np.load(os.path.join(FIXTURES, f"{name}.npz"), allow_pickle=False)
    np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["dense", "batchnorm"])
def test_keras_weights_by_name(name):
    model = MODELS[name]()
    for layout in LAYOUTS:
        load_weights(model, os.path.join(FIXTURES, f"{name}.{layout}"), by_name=True)
        expected = np.load(os.path.join(FIXTURES, f"{name}.npz"), allow_pickle=False)
        np.testing.assert_allclose(model.predict(expected["x"]), expected["y"], rtol=1e-5, atol=1e-5)


def test_fixtures_are_small():
    total = sum(os.path.getsize(os.path.join(FIXTURES, f)) for f in os.listdir(FIXTURES))
    assert total < 1_000_000
