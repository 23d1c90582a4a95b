"""Fashion-MNIST: Zalando's article images (H. Xiao, K. Rasul, R. Vollgraf; MIT license).

The same layout as MNIST: 60,000 training and 10,000 test images, 28x28 grayscale ``uint8``, labels 0-9:
0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.

    from shenjing.datasets import fashion_mnist
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
"""

from __future__ import annotations

from ._loader import IdxDataset, load

__all__ = ["load_data", "ORIGIN", "FILES", "CHECKSUMS", "CLASS_NAMES"]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
"""Default base URL (the mirror Keras downloads Fashion-MNIST from). Overridden by the ``origin=``
argument or the ``SHENJING_FASHION_MNIST_ORIGIN`` environment variable. The project's own copy is at
http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ and in its GitHub repository
(https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/)."""

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

CHECKSUMS = {
    # md5 as published in the "Get the Data" table of https://github.com/zalandoresearch/fashion-mnist
    # (README.md). No sha256 is published by the authors, so only md5 is checked.
    "train-images-idx3-ubyte.gz": {"md5": "8d4fb7e6c68d591d4c3dfef9ec88bf0d"},
    "train-labels-idx1-ubyte.gz": {"md5": "25c81989df183df01b3e8a0aad5dffbe"},
    "t10k-images-idx3-ubyte.gz": {"md5": "bef4ecab320f06d8554ea6380940ec79"},
    "t10k-labels-idx1-ubyte.gz": {"md5": "bb300cfdad3c16e7a12a480ee83cd310"},
}

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")

SPEC = IdxDataset(name="fashion-mnist", files=FILES, hashes=CHECKSUMS, origin=ORIGIN,
                  origin_env="SHENJING_FASHION_MNIST_ORIGIN")


def load_data(path=None, origin: str | None = None, verbose: int = 1):
    """Load Fashion-MNIST: ``((x_train, y_train), (x_test, y_test))``, NumPy ``uint8`` arrays of shapes
    ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)`` (like Keras).

    ``path``: a directory holding the four IDX files, or a Keras-style ``.npz``; ``None``: the cache folder
    ``$SHENJING_HOME/datasets/fashion-mnist``, filled from the mirror on first use (md5 checked, atomic
    writes). ``origin``: another base URL serving the same files. Errors as in :func:`mnist.load_data`.
    """
    return load(SPEC, path, origin, verbose)
