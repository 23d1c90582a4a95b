"""Build the embedded MNIST subset ``src/shenjing/data/mnist_sample.npz`` and its ``PROVENANCE.md``.

    python scripts/make_mnist_sample.py [--source ../shared/datasets/mnist] [--seed 20240601]

The four canonical IDX files are checked against their published md5 sums, then 10,000 training and
2,000 test images are drawn without replacement, stratified by class (each class gets its share of the
full split, rounded by the largest-remainder method), with ``numpy.random.default_rng(seed)``. The chosen
images keep their original order. The archive (``np.savez_compressed``) holds ``x_train``, ``y_train``,
``x_test``, ``y_test`` (uint8) and ``train_indices``, ``test_indices`` (the positions in the original
files, so that anyone can check the subset against the source).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from shenjing.datasets import mnist  # noqa: E402

DEFAULT_SOURCE = os.path.join(ROOT, "..", "shared", "datasets", "mnist")
OUT_DIR = os.path.join(ROOT, "src", "shenjing", "data")
SEED = 20240601
N_TRAIN, N_TEST = 10000, 2000


def md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stratified(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices, each class in proportion to its frequency (largest remainder), sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / counts.sum()
    share = np.floor(exact).astype(int)
    order = np.argsort(-(exact - share), kind="stable")
    share[order[: n - share.sum()]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False) for c, k in zip(classes, share)]
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="directory holding the four MNIST IDX .gz files")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", default=OUT_DIR)
    args = parser.parse_args()

    sums = {}
    for fname, digests in mnist.CHECKSUMS.items():
        got = md5(os.path.join(args.source, fname))
        if got != digests["md5"]:
            sys.exit(f"{fname}: md5 {got} does not match the published {digests['md5']}")
        sums[fname] = got
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=args.source)

    rng = np.random.default_rng(args.seed)
    train_idx = stratified(y_train, N_TRAIN, rng)
    test_idx = stratified(y_test, N_TEST, rng)
    os.makedirs(args.out, exist_ok=True)
    npz = os.path.join(args.out, "mnist_sample.npz")
    np.savez_compressed(npz, x_train=x_train[train_idx], y_train=y_train[train_idx], x_test=x_test[test_idx],
                        y_test=y_test[test_idx], train_indices=train_idx.astype(np.int32),
                        test_indices=test_idx.astype(np.int32))
    size = os.path.getsize(npz)
    train_counts = np.bincount(y_train[train_idx], minlength=10)
    test_counts = np.bincount(y_test[test_idx], minlength=10)

    lines = [
        "# Provenance of `mnist_sample.npz`",
        "",
        "A stratified subset of the MNIST database of handwritten digits, embedded so that the examples and",
        "tests run with no network. Loaded by `shenjing.datasets.mnist.load_sample()`.",
        "",
        "## Source",
        "",
        "MNIST, by Yann LeCun, Corinna Cortes and Christopher J. C. Burges",
        "(http://yann.lecun.com/exdb/mnist/), licensed under the Creative Commons Attribution-ShareAlike 3.0",
        "license (CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/). This subset is a derivative",
        "work under the same license.",
        "",
        "Built from the four canonical IDX files, whose md5 sums match the published ones:",
        "",
        "```",
        *[f"{sums[f]}  {f}" for f in mnist.CHECKSUMS],
        "```",
        "",
        "## How the subset was drawn",
        "",
        f"`scripts/make_mnist_sample.py --seed {args.seed}`: {N_TRAIN:,} of the 60,000 training images and "
        f"{N_TEST:,} of the",
        "10,000 test images, drawn without replacement and stratified by class: each digit gets its share of",
        "the full split (largest-remainder rounding), the images of a class are picked with",
        f"`numpy.random.default_rng({args.seed}).choice` (training split first, then test), and the chosen",
        "images keep their original order.",
        "",
        "| digit | " + " | ".join(str(d) for d in range(10)) + " |",
        "|---|" + "---|" * 10,
        "| train | " + " | ".join(str(int(c)) for c in train_counts) + " |",
        "| test | " + " | ".join(str(int(c)) for c in test_counts) + " |",
        "",
        "## Contents",
        "",
        "`np.savez_compressed` archive (read with `allow_pickle=False`), "
        f"{size:,} bytes:",
        "",
        "| array | shape | dtype |",
        "|---|---|---|",
        f"| `x_train` | ({N_TRAIN}, 28, 28) | uint8 |",
        f"| `y_train` | ({N_TRAIN},) | uint8 |",
        f"| `x_test` | ({N_TEST}, 28, 28) | uint8 |",
        f"| `y_test` | ({N_TEST},) | uint8 |",
        f"| `train_indices` | ({N_TRAIN},) | int32: positions in `train-*-idx*-ubyte` |",
        f"| `test_indices` | ({N_TEST},) | int32: positions in `t10k-*-idx*-ubyte` |",
        "",
        f"md5 of `mnist_sample.npz` as built (NumPy {np.__version__}): `{md5(npz)}`. The arrays are a pure function",
        "of the source files and the seed; rebuilding with the same NumPy gave the same bytes.",
        "",
    ]
    with open(os.path.join(args.out, "PROVENANCE.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"wrote {npz} ({size / 1e6:.2f} MB): train {train_counts.tolist()}, test {test_counts.tolist()}")


if __name__ == "__main__":
    main()
