"""Write the Keras interop fixtures under tests/fixtures/keras/ (small, committed files).

Run with real Keras 3 (torch backend), installed outside the project — it is never a dependency:

    pip install --target /tmp/kerasenv --no-deps keras absl-py rich namex optree ml-dtypes markdown-it-py mdurl pygments
    PYTHONPATH=/tmp/kerasenv KERAS_BACKEND=torch python3 scripts/make_keras_fixtures.py

For each small model (dense, conv, batchnorm, lstm, gru, embedding), with fixed seeds and weights drawn
from a seeded generator (so that every weight, BatchNormalization's moving statistics included, is
non-trivial), it writes:

- ``<name>.weights.h5``  Keras 3's ``model.save_weights`` (layout ``layers/<key>/vars/<i>``);
- ``<name>.h5``          Keras 3's legacy full-model ``model.save('x.h5')``: the Keras 2 layout (root attributes
                         ``model_config``, group ``model_weights`` with ``layer_names`` / ``weight_names``);
- ``<name>.keras2.h5``   a weights-only file in Keras 2's layout. Keras 3's ``save_weights`` only writes
                         ``.weights.h5``, so this one is written by Keras 3's own legacy writer
                         (``keras.src.legacy.saving.legacy_h5_format.save_weights_to_hdf5_group``, the code
                         behind Keras 2's ``save_weights('x.h5')``), not by hand;
- ``<name>.npz``         ``x``: a fixed input, ``y``: Keras's prediction for it.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from keras.src.legacy.saving import legacy_h5_format  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "keras")


def dense():
    return keras.Sequential([keras.Input((8,)), layers.Dense(16, activation="relu", name="d1"),
                             layers.Dense(4, activation="softmax", name="d2")], name="dense_model"), (5, 8)


def conv():
    return keras.Sequential([keras.Input((10, 10, 3)),
                             layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
                             layers.MaxPooling2D(2, name="p1"),
                             layers.Conv2D(6, 3, strides=1, padding="valid", name="c2"),
                             layers.Flatten(name="f"), layers.Dense(3, name="d")], name="conv_model"), (2, 10, 10, 3)


def batchnorm():
    return keras.Sequential([keras.Input((6,)), layers.Dense(8, name="d1"),
                             layers.BatchNormalization(name="bn", epsilon=1e-3),
                             layers.Dense(2, name="d2")], name="bn_model"), (4, 6)


def lstm():
    inputs = keras.Input((5, 3))
    x = layers.LSTM(4, name="lstm")(inputs)
    outputs = layers.Dense(2, name="d")(x)
    return keras.Model(inputs, outputs, name="lstm_model"), (3, 5, 3)


def gru():
    inputs = keras.Input((5, 3))
    x = layers.GRU(4, name="gru")(inputs)  # reset_after=True (Keras 3's default): bias (2, 3 * units)
    outputs = layers.Dense(2, name="d")(x)
    return keras.Model(inputs, outputs, name="gru_model"), (3, 5, 3)


def embedding():
    return keras.Sequential([keras.Input((6,), dtype="int32"), layers.Embedding(20, 5, name="emb"),
                             layers.GlobalAveragePooling1D(name="gap"), layers.Dense(2, name="d")],
                            name="embedding_model"), (4, 6)


MODELS = {"dense": dense, "conv": conv, "batchnorm": batchnorm, "lstm": lstm, "gru": gru, "embedding": embedding}


def main(names):
    os.makedirs(OUT, exist_ok=True)
    for name in names:
        keras.utils.set_random_seed(1234)
        model, input_shape = MODELS[name]()
        rng = np.random.default_rng(42)
        for layer in model.layers:
            values = []
            for w in layer.weights:
                shape = tuple(w.shape)
                if "moving_variance" in w.path:
                    values.append(rng.uniform(0.5, 2.0, shape).astype("float32"))
                else:
                    values.append(rng.normal(0.0, 0.5, shape).astype("float32"))
            if values:
                layer.set_weights(values)
        if name == "embedding":
            x = rng.integers(0, 20, input_shape).astype("int32")
        else:
            x = rng.normal(0.0, 1.0, input_shape).astype("float32")
        y = keras.ops.convert_to_numpy(model(x, training=False))
        base = os.path.join(OUT, name)
        model.save_weights(base + ".weights.h5")
        model.save(base + ".h5")
        with h5py.File(base + ".keras2.h5", "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, model)
        np.savez(base + ".npz", x=x, y=y)
        print(f"{name}: {[w.path for w in model.weights]} -> y{y.shape}")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(os.listdir(OUT))} files, {total} bytes in {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
