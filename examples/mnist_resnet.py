"""A small residual network with BatchNormalization (functional API) against a plain CNN of the same depth,
trained on the same budget — the residual one should win.

    python examples/mnist_resnet.py [--epochs 2]

Both networks: a stem convolution, four 3x3 convolution pairs (two at 14x14x16, two at 7x7x32), global average
pooling and a softmax layer: 10 weight layers. The residual network adds BatchNormalization after every
convolution and an identity (or 1x1 projection) shortcut around each pair; the plain network is the same
stack of convolutions with neither.
"""

import argparse
import time

from _mnist_path import MNIST_DIR

from shenjing import layers
from shenjing.datasets import mnist
from shenjing.models import Model
from shenjing.optimizers import Adam
from shenjing.utils import set_random_seed, to_categorical


def batch_norm(x):
    # momentum 0.9 (PyTorch's 0.1): with Keras's 0.99 the moving variance, which starts at 1, needs about a
    # thousand steps to forget that start on channels whose variance is ~0.01, longer than this budget
    return layers.BatchNormalization(momentum=0.9)(x)


def conv(x, filters, strides=1, residual=True):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=not residual)(x)
    return batch_norm(x) if residual else x


def block(x, filters, strides=1, residual=True):
    y = layers.Activation("relu")(conv(x, filters, strides, residual))
    y = conv(y, filters, 1, residual)
    if residual:
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = batch_norm(layers.Conv2D(filters, 1, strides=strides, use_bias=False)(x))
        y = layers.Add()([y, shortcut])
    return layers.Activation("relu")(y)


def build(residual: bool) -> Model:
    inputs = layers.Input(shape=(28, 28, 1))
    x = layers.Activation("relu")(conv(inputs, 16, 1, residual))
    x = layers.MaxPooling2D(2)(x)
    x = block(x, 16, 1, residual)
    x = block(x, 16, 1, residual)
    x = block(x, 32, 2, residual)
    x = block(x, 32, 1, residual)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return Model(inputs, outputs, name="resnet" if residual else "plain_cnn")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=MNIST_DIR)
    x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)

    results = {}
    for residual in (True, False):
        set_random_seed(7)
        model = build(residual)
        model.compile(optimizer=Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
        if residual:
            model.summary()
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=2)
        elapsed = time.perf_counter() - start
        loss, accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
        results[model.name] = accuracy
        print(f"{model.name}: test accuracy {accuracy:.4f}, loss {loss:.4f}; {elapsed / args.epochs:.1f} s per "
              f"epoch, {len(x_train) * args.epochs / elapsed:.0f} samples/s")
    print(f"residual + BN {results['resnet']:.4f} vs plain {results['plain_cnn']:.4f} after {args.epochs} epoch(s)")


if __name__ == "__main__":
    main()
