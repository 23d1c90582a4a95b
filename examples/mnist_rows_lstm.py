"""Sequence classification: each MNIST image read as a sequence of 28 rows of 28 pixels, by an LSTM.

    python examples/mnist_rows_lstm.py [--epochs 8]

LSTM(128) over the 28 rows -> Dense(10, softmax); Adam, batch 128.
"""

import argparse
import time

from _mnist_path import MNIST_DIR

from shenjing import layers
from shenjing.datasets import mnist
from shenjing.models import Sequential
from shenjing.optimizers import Adam
from shenjing.utils import set_random_seed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=MNIST_DIR)
    x_train = x_train.astype("float32") / 255  # (60000, 28 steps, 28 features)
    x_test = x_test.astype("float32") / 255

    set_random_seed(3)
    model = Sequential([layers.LSTM(128, input_shape=(28, 28)), layers.Dense(10, activation="softmax")])
    model.compile(optimizer=Adam(1e-3, clipnorm=1.0), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=2, validation_data=(x_test, y_test))
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f}); {elapsed / args.epochs:.1f} s per epoch, "
          f"{len(x_train) * args.epochs / elapsed:.0f} samples/s")


if __name__ == "__main__":
    main()
