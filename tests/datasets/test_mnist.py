"""shenjing.datasets.mnist / fashion_mnist: local files, .npz, the embedded sample, and the download path end to
end over a localhost HTTP server serving ../shared/datasets/mnist (skipped when that folder is absent)."""

import functools
import gzip
import hashlib
import os
import struct

import numpy as np
import pytest

from shenjing.datasets import fashion_mnist, mnist
from shenjing.datasets._loader import base_url
from shenjing.utils.data_utils import DownloadError

from ._server import FileServer

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NAMES = list(mnist.FILES.values())


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("SHENJING_HOME", str(path))
    monkeypatch.delenv("SHENJING_MNIST_ORIGIN", raising=False)
    monkeypatch.delenv("SHENJING_FASHION_MNIST_ORIGIN", raising=False)
    return path


@pytest.fixture
def mnist_dir(datasets_dir):
    path = os.path.join(datasets_dir, "mnist")
    if not all(os.path.isfile(os.path.join(path, n)) for n in NAMES):
        pytest.skip("../shared/datasets/mnist does not hold the four MNIST files")
    return path


@functools.lru_cache(maxsize=1)
def _real(path):
    return mnist.load_data(path=path)


@functools.lru_cache(maxsize=1)
def _served_bytes(path):
    return {n: open(os.path.join(path, n), "rb").read() for n in NAMES}


def _idx(array, code):
    array = np.asarray(array, dtype=np.uint8)
    return gzip.compress(bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) +
                         array.tobytes()) if code else b""


def _write_small_set(directory, n_train=3, n_test=2, labels=None, image_shape=(28, 28)):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train,) + image_shape),
              "x_test": rng.integers(0, 256, (n_test,) + image_shape),
              "y_train": rng.integers(0, 10, n_train) if labels is None else labels,
              "y_test": rng.integers(0, 10, n_test)}
    for role, fname in mnist.FILES.items():
        with open(os.path.join(directory, fname), "wb") as f:
            f.write(_idx(arrays[role], 1))
    return arrays


def _assert_sets_equal(a, b):
    for (xa, ya), (xb, yb) in zip(a, b):  # np.array_equal: assert_array_equal is slow on 47 MB arrays
        assert xa.dtype == xb.dtype and np.array_equal(xa, xb)
        assert ya.dtype == yb.dtype and np.array_equal(ya, yb)


# ------------------------------------------------------------------------------------------- real data
def test_load_data_from_the_shared_directory(mnist_dir):
    (x_train, y_train), (x_test, y_test) = _real(mnist_dir)
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype("uint8")}
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS
    assert x_train.min() == 0 and x_train.max() == 255
    assert abs(x_train.mean() - 33.318) < 0.01


def test_download_verifies_caches_and_hits_the_cache(mnist_dir, home, monkeypatch):
    with FileServer(_served_bytes(mnist_dir)) as server:
        monkeypatch.setenv("SHENJING_MNIST_ORIGIN", server.url)
        first = mnist.load_data(verbose=0)
        assert sorted(server.requests) == sorted(NAMES)
        cache = home / "datasets" / "mnist"
        assert sorted(os.listdir(cache)) == sorted(NAMES)  # no temporaries left
        for name, digests in mnist.CHECKSUMS.items():
            data = (cache / name).read_bytes()
            assert hashlib.md5(data).hexdigest() == digests["md5"]
            assert hashlib.sha256(data).hexdigest() == digests["sha256"]
        server.requests.clear()
        second = mnist.load_data(verbose=0)
        assert server.requests == []  # served from the cache
    _assert_sets_equal(first, second)
    _assert_sets_equal(first, _real(mnist_dir))


def _cache_listing(home):
    cache = home / "datasets" / "mnist"
    return sorted(os.listdir(cache)) if cache.exists() else []


def test_a_corrupted_served_file_is_rejected_and_not_cached(mnist_dir, home):
    files = dict(_served_bytes(mnist_dir))
    good = files["train-labels-idx1-ubyte.gz"]
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    files["train-labels-idx1-ubyte.gz"] = bytes(bad)
    with FileServer(files) as server:
        with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz .*failed its md5 check.*deleted"):
            mnist.load_data(origin=server.url, verbose=0)
        assert _cache_listing(home) == ["train-images-idx3-ubyte.gz"]  # the good file before it stays
        server.files["train-labels-idx1-ubyte.gz"] = good  # the mirror is repaired: only the missing files come
        server.requests.clear()
        (x_train, y_train), _ = mnist.load_data(origin=server.url, verbose=0)
        assert "train-images-idx3-ubyte.gz" not in server.requests
        assert y_train[:3].tolist() == [5, 0, 4]
    assert _cache_listing(home) == sorted(NAMES)


def test_a_truncated_served_file_is_rejected(mnist_dir, home):
    files = dict(_served_bytes(mnist_dir))
    files["train-images-idx3-ubyte.gz"] = files["train-images-idx3-ubyte.gz"][:100000]
    with FileServer(files) as server:
        with pytest.raises(ValueError, match=r"\(100000 bytes\) failed its md5 check"):
            mnist.load_data(origin=server.url, verbose=0)
    assert _cache_listing(home) == []


def test_a_connection_cut_short_is_a_download_error(mnist_dir, home):
    with FileServer(_served_bytes(mnist_dir)) as server:
        server.short.add("train-images-idx3-ubyte.gz")
        with pytest.raises(DownloadError, match="train-images-idx3-ubyte.gz (broke off|is truncated)"):
            mnist.load_data(origin=server.url, verbose=0)
    assert _cache_listing(home) == []


def test_a_missing_file_on_the_mirror_is_a_404(mnist_dir, home):
    files = dict(_served_bytes(mnist_dir))
    del files["t10k-labels-idx1-ubyte.gz"]
    with FileServer(files) as server:
        with pytest.raises(DownloadError, match=r"t10k-labels-idx1-ubyte.gz: HTTP 404"):
            mnist.load_data(origin=server.url.rstrip("/"), verbose=0)
    assert "t10k-labels-idx1-ubyte.gz" not in _cache_listing(home)


def test_origin_precedence(monkeypatch):
    monkeypatch.delenv("SHENJING_MNIST_ORIGIN", raising=False)
    assert base_url(mnist.SPEC) == mnist.ORIGIN
    monkeypatch.setenv("SHENJING_MNIST_ORIGIN", "http://mirror.example/mnist")
    assert base_url(mnist.SPEC) == "http://mirror.example/mnist/"
    assert base_url(mnist.SPEC, "http://arg.example/") == "http://arg.example/"
    assert mnist.ORIGIN.startswith("https://") and fashion_mnist.ORIGIN.startswith("https://")


# ------------------------------------------------------------------------------------- local variants
def test_directory_of_small_files_and_of_uncompressed_files(tmp_path):
    arrays = _write_small_set(tmp_path / "gz")
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=str(tmp_path / "gz"))
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    raw = tmp_path / "raw"
    raw.mkdir()
    for fname in mnist.FILES.values():
        (raw / fname[:-3]).write_bytes(gzip.decompress((tmp_path / "gz" / fname).read_bytes()))
    _assert_sets_equal(mnist.load_data(path=raw), ((x_train, y_train), (x_test, y_test)))


def test_directory_problems_are_named(tmp_path):
    _write_small_set(tmp_path / "d")
    os.remove(tmp_path / "d" / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="lacks t10k-images-idx3-ubyte.gz"):
        mnist.load_data(path=tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        mnist.load_data(path=tmp_path / "nowhere")
    _write_small_set(tmp_path / "labels", labels=np.array([1, 10, 2]))
    with pytest.raises(ValueError, match=r"y_train holds labels from 1 to 10, expected 0..9"):
        mnist.load_data(path=tmp_path / "labels")
    _write_small_set(tmp_path / "count", labels=np.array([1, 2]))
    with pytest.raises(ValueError, match="x_train holds 3 images but y_train holds 2 labels"):
        mnist.load_data(path=tmp_path / "count")
    _write_small_set(tmp_path / "dims", image_shape=(28, 29))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: wrong dimension header"):
        mnist.load_data(path=tmp_path / "dims")


def test_corrupt_real_file_in_a_directory(mnist_dir, tmp_path):
    directory = tmp_path / "m"
    directory.mkdir()
    for name, data in _served_bytes(mnist_dir).items():
        (directory / name).write_bytes(data[: len(data) // 3] if name.startswith("t10k-images") else data)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: the gzip stream is truncated"):
        mnist.load_data(path=directory)


def test_keras_npz(tmp_path, home):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), "y_train": np.array([0, 1, 2, 3], np.uint8),
              "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), "y_test": np.array([9, 8], np.uint8)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=tmp_path / "mnist.npz")
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    (home / "datasets").mkdir(parents=True)
    os.replace(tmp_path / "mnist.npz", home / "datasets" / "mnist.npz")  # Keras: a name relative to the cache
    assert mnist.load_data(path="mnist.npz")[1][1].tolist() == [9, 8]
    np.savez(tmp_path / "bad.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(ValueError, match=r"lacks the array\(s\) \['x_test', 'y_test'\]"):
        mnist.load_data(path=tmp_path / "bad.npz")


# ----------------------------------------------------------------------------------- embedded sample
def test_embedded_sample():
    assert os.path.getsize(mnist.SAMPLE_PATH) < 5 * 2**20
    (x_train, y_train), (x_test, y_test) = mnist.load_sample()
    assert x_train.shape == (10000, 28, 28) and y_train.shape == (10000,)
    assert x_test.shape == (2000, 28, 28) and y_test.shape == (2000,)
    assert x_train.dtype == np.uint8 and y_test.dtype == np.uint8
    # stratified: each class gets its share of the full split, to within rounding
    for counts, full, n in ((np.bincount(y_train), TRAIN_COUNTS, 10000), (np.bincount(y_test), TEST_COUNTS, 2000)):
        expected = np.array(full) * n / sum(full)
        assert np.all(np.abs(counts - expected) < 1) and counts.sum() == n
    provenance = open(os.path.join(os.path.dirname(mnist.SAMPLE_PATH), "PROVENANCE.md"), encoding="utf-8").read()
    assert "CC BY-SA 3.0" in provenance and "LeCun" in provenance and "Cortes" in provenance and "Burges" in provenance
    for digests in mnist.CHECKSUMS.values():
        assert digests["md5"] in provenance


def test_embedded_sample_is_a_subset_of_the_real_files(mnist_dir):
    (x_train, y_train), (x_test, y_test) = _real(mnist_dir)
    archive = np.load(mnist.SAMPLE_PATH, allow_pickle=False)
    (sx, sy), (tx, ty) = mnist.load_sample()
    _assert_sets_equal(((sx, sy), (tx, ty)), ((x_train[archive["train_indices"]], y_train[archive["train_indices"]]),
                                              (x_test[archive["test_indices"]], y_test[archive["test_indices"]])))


def test_load_sample_checks_its_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_mnist_sample.py"):
        mnist.load_sample(tmp_path / "missing.npz")
    np.savez(tmp_path / "s.npz", x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"expected \(10000, 28, 28\)"):
        mnist.load_sample(tmp_path / "s.npz")


# ------------------------------------------------------------------------------------------ Fashion-MNIST
def test_fashion_mnist_tables():
    assert set(fashion_mnist.CHECKSUMS) == set(fashion_mnist.FILES.values())
    for digests in fashion_mnist.CHECKSUMS.values():
        assert len(digests["md5"]) == 32 and int(digests["md5"], 16) >= 0
    assert len(fashion_mnist.CLASS_NAMES) == 10


def test_fashion_mnist_from_a_directory(tmp_path):
    arrays = _write_small_set(tmp_path / "f")
    (x_train, y_train), _ = fashion_mnist.load_data(path=tmp_path / "f")
    np.testing.assert_array_equal(x_train, arrays["x_train"])


def test_fashion_mnist_download_checks_its_own_checksums(mnist_dir, home, monkeypatch):
    with FileServer(_served_bytes(mnist_dir)) as server:  # MNIST's files are not Fashion-MNIST's
        monkeypatch.setenv("SHENJING_FASHION_MNIST_ORIGIN", server.url)
        with pytest.raises(ValueError, match="failed its md5 check.*expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"):
            fashion_mnist.load_data(verbose=0)
        assert server.requests == ["train-images-idx3-ubyte.gz"]
    cache = home / "datasets" / "fashion-mnist"
    assert os.listdir(cache) == []
