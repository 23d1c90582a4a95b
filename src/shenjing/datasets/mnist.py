"""MNIST handwritten digits (Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0).

60,000 training and 10,000 test images, 28x28 grayscale ``uint8``, labels 0-9.

    from shenjing.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    (x_train, y_train), (x_test, y_test) = mnist.load_sample()   # embedded 10,000 + 2,000 subset, no network
"""

from __future__ import annotations

import os

from ._idx import load_npz
from ._loader import IdxDataset, load

__all__ = ["load_data", "load_sample", "ORIGIN", "FILES", "CHECKSUMS", "SAMPLE_PATH"]

ORIGIN = "https://storage.googleapis.com/cvdf-datasets/mnist/"
"""Default base URL (the mirror TensorFlow uses; yann.lecun.com no longer serves the files reliably).
Overridden by the ``origin=`` argument or the ``SHENJING_MNIST_ORIGIN`` environment variable."""

FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

CHECKSUMS = {
    # md5: as published with the data set. sha256: computed from copies whose md5 match the published ones.
    "train-images-idx3-ubyte.gz": {"md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                   "sha256": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"},
    "train-labels-idx1-ubyte.gz": {"md5": "d53e105ee54ea40749a09fcbcd1e9432",
                                   "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"},
    "t10k-images-idx3-ubyte.gz": {"md5": "9fb629c4189551a2d022fa330f9573f3",
                                  "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"},
    "t10k-labels-idx1-ubyte.gz": {"md5": "ec29112dd5afa0611ce80d1b7f02629c",
                                  "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"},
}

SPEC = IdxDataset(name="mnist", files=FILES, hashes=CHECKSUMS, origin=ORIGIN, origin_env="SHENJING_MNIST_ORIGIN")

SAMPLE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist_sample.npz")
"""The embedded subset (built by ``scripts/make_mnist_sample.py``; see ``data/PROVENANCE.md``)."""

SAMPLE_SIZES = {"train": 10000, "test": 2000}


def load_data(path=None, origin: str | None = None, verbose: int = 1):
    """Load MNIST: ``((x_train, y_train), (x_test, y_test))``, NumPy ``uint8`` arrays of shapes
    ``(60000, 28, 28)``, ``(60000,)``, ``(10000, 28, 28)``, ``(10000,)`` (like Keras).

    Args:
        path: a directory holding the four IDX files (``train-images-idx3-ubyte.gz`` …, gzip or not), or
            the path of a Keras ``mnist.npz``. ``None``: the cache folder ``$SHENJING_HOME/datasets/mnist``,
            filled from the mirror on first use (md5 and sha256 checked, atomic writes).
        origin: base URL to download from instead of :data:`ORIGIN` / ``$SHENJING_MNIST_ORIGIN``; the files
            must be the canonical ones (they are checked against :data:`CHECKSUMS`).
        verbose: 0 to download silently.

    Raises:
        ValueError: a file is corrupt or truncated (named in the message), or a download fails its checksum.
        FileNotFoundError: ``path`` lacks one of the files.
        shenjing.utils.data_utils.DownloadError: the mirror cannot be reached.
    """
    return load(SPEC, path, origin, verbose)


def load_sample(path: str | None = None):
    """The embedded MNIST subset, no network needed: ``((x_train, y_train), (x_test, y_test))`` with
    10,000 training and 2,000 test images (``uint8``), drawn per class in proportion to the full set with a
    fixed seed (see ``shenjing/data/PROVENANCE.md``)."""
    path = SAMPLE_PATH if path is None else os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mnist.load_sample: the embedded sample {path} is missing; rebuild it with "
                                f"scripts/make_mnist_sample.py (or reinstall shenjing)")
    arrays = load_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    for split, n in SAMPLE_SIZES.items():
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.shape != (n, 28, 28) or y.shape != (n,) or x.dtype != "uint8" or y.dtype != "uint8":
            raise ValueError(f"mnist.load_sample: {path} holds x_{split} {x.shape} {x.dtype} and y_{split} "
                             f"{y.shape} {y.dtype}; expected ({n}, 28, 28) and ({n},) uint8")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
