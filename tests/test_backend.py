import json

import numpy as np
import pytest

from shenjing import backend, layers
from shenjing.models import Sequential


def test_defaults():
    assert backend.floatx() == "float32" and backend.epsilon() == 1e-7
    assert backend.image_data_format() == "channels_last" and backend.backend() == "numpy"


def test_config_file_in_shenjing_home(tmp_path, monkeypatch):
    (tmp_path / "shenjing.json").write_text(json.dumps({"image_data_format": "channels_first", "epsilon": 1e-6}))
    monkeypatch.setenv("SHENJING_HOME", str(tmp_path))
    try:
        backend._read_config()
        assert backend.image_data_format() == "channels_first" and backend.epsilon() == 1e-6
    finally:
        backend.set_image_data_format("channels_last")
        backend.set_epsilon(1e-7)


def test_corrupt_config_file_is_named(tmp_path, monkeypatch):
    (tmp_path / "shenjing.json").write_text("{not json")
    monkeypatch.setenv("SHENJING_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="shenjing.json"):
        backend._read_config()


def test_global_data_format_reaches_layers():
    backend.set_image_data_format("channels_first")
    try:
        model = Sequential([layers.Conv2D(3, 3, input_shape=(1, 8, 8)), layers.MaxPooling2D(2)])
        assert model.output_shape == (None, 3, 3, 3)
    finally:
        backend.set_image_data_format("channels_last")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="float32"):
        backend.set_floatx("float8")
    with pytest.raises(ValueError, match="channels_last"):
        backend.set_image_data_format("NHWC")
    with pytest.raises(ValueError, match="unknown backend"):
        backend.set_backend("jax")


def test_seeded_generators():
    a = backend.generator(5).random(3)
    assert np.array_equal(a, backend.generator(5).random(3))
    backend.set_random_seed(9)
    first = backend.generator().random(2)
    backend.set_random_seed(9)
    assert np.array_equal(first, backend.generator().random(2))


@pytest.mark.parametrize("shape", [(), (1,), (5,), (3, 7), (2, 3, 4)])
def test_random_bits_shape_and_reproducibility(shape):
    bits = backend.random_bits(np.random.default_rng(1), shape)
    assert bits.shape == shape and bits.dtype == np.uint16
    np.testing.assert_array_equal(bits, backend.random_bits(np.random.default_rng(1), shape))


def test_keep_mask_keeps_one_minus_rate():
    assert backend.keep_threshold(0) == 0
    assert backend.keep_threshold(0.25) == 16384
    assert backend.keep_threshold(0.9999999) == 65535  # a rate just below 1 still keeps something
    bits = backend.random_bits(np.random.default_rng(2), (400_000,))
    assert abs(bits.mean() / 65535 - 0.5) < 0.002  # uniform over the 16 bits
    for rate in (0.0, 0.1, 0.5, 0.8):
        keep = backend.keep_mask(np.random.default_rng(3), (400_000,), rate)
        assert keep.dtype == bool and abs(keep.mean() - (1 - rate)) < 0.003


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(300, 784), (40, 28, 28, 3), (5000, 16), (70000, 1), (100_000,), (7, 9)])
def test_all_finite_finds_every_nan_and_inf(dtype, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    assert backend.all_finite(x)
    flat = x.reshape(-1)
    for where in (0, flat.size // 3, flat.size - 1):
        for bad in (np.nan, np.inf, -np.inf):
            y = flat.copy()
            y[where] = bad
            assert not backend.all_finite(y.reshape(shape)), (where, bad)
    y = flat.copy()
    y[[1, 2]] = [np.inf, -np.inf]  # inf − inf in one row sum: NaN, still found
    assert not backend.all_finite(y.reshape(shape))


def test_all_finite_overflowing_sums_are_not_false_alarms():
    big = np.full((200, 784), np.finfo(np.float32).max / 2, np.float32)  # row sums overflow to inf
    assert backend.all_finite(big)
    big[-1, -1] = np.nan
    assert not backend.all_finite(big)


def test_all_finite_non_float_and_strided():
    assert backend.all_finite(np.arange(100_000).reshape(1000, 100))
    x = np.zeros((400, 400), np.float32)
    x[3, 6] = np.nan  # column 3 of x[:, ::2]
    assert not backend.all_finite(x[:, ::2][:, 2:])
    assert backend.all_finite(x[:, ::2][:, 4:])


@pytest.mark.parametrize("shape", [(), 0, 7, np.int64(9), (3, 5), (np.int32(4), 6), (65, 64, 256), (2, 0, 3)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_aligned_empty_starts_on_a_vector_boundary(shape, dtype):
    """Many allocations in a row (malloc's 16-byte aligned addresses vary): every one (with data) starts
    on a 64-byte boundary and is a writable C-contiguous array of the shape and dtype asked for."""
    for _ in range(20):
        a = backend.aligned_empty(shape, dtype)
        assert a.ctypes.data % backend.VECTOR_ALIGNMENT == 0 or a.size == 0  # (no data: any address)
        assert a.shape == (tuple(shape) if isinstance(shape, tuple) else (shape,)) and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 1
        assert (a == 1).all()


def test_aligned_empty_refuses_negative_dimensions_and_can_be_host_only():
    for shape in (-1, (2, -2)):
        with pytest.raises(ValueError, match="negative dimensions"):
            backend.aligned_empty(shape, np.float32)
    a = backend.aligned_empty((4, 16), np.float32, host=True)
    assert isinstance(a, np.ndarray) and a.ctypes.data % backend.VECTOR_ALIGNMENT == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_axis_sums_are_numpys_sums_in_the_arrays_dtype(dtype):
    """last_axis_sums / first_axis_sums: a product with ones for the dtypes BLAS multiplies, NumPy's own sums for
    the others (float16, longdouble: NumPy's matmul of those is slower than its sum); the dtype is kept."""
    a = np.random.default_rng(0).uniform(-1, 1, (300, 70)).astype(dtype)
    for got, axis in ((backend.last_axis_sums(a), -1), (backend.first_axis_sums(a), 0)):
        assert got.dtype == dtype and got.shape == a.sum(axis=axis).shape
        np.testing.assert_allclose(got.astype(np.float64), a.astype(np.float64).sum(axis=axis),
                                   rtol=0, atol=0.5 if dtype == np.float16 else 1e-4)
