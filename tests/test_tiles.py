"""float32 products on the CPU's matrix unit (``shenjing.backend.kernels.tiles``): as accurate as a float32
BLAS, the same on any number of threads, IEEE's non-finite values left to BLAS, and taken by
``parallel.matmul`` (and so by Dense layers) only for the shapes where it is faster. Skipped where the
CPU has no AMX-BF16 or the compiled path is off."""

import numpy as np
import pytest

import shenjing
from shenjing.backend import jit, parallel

tiles = _tiles = None  # the module where the unit is used, and the module whatever the host
if jit.enabled():
    from shenjing.backend.kernels import tiles as _tiles

    tiles = _tiles if _tiles.suited() else None
needs_tiles = pytest.mark.skipif(tiles is None, reason="no AMX-BF16 here, or the compiled path is off")


def test_the_unit_is_used_where_the_cpu_has_one():
    if _tiles is not None and _tiles._host_has_tiles():  # an IR or LLVM error must not pass for "no AMX"
        assert tiles is not None


def _factors(m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, k)).astype(np.float32), (rng.standard_normal((k, n)) * 0.05).astype(np.float32)


def _worst_error(product, a, b):
    """The largest error of ``product`` against float64, as a fraction of Σ|a||b| (each element's bound)."""
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    return float((np.abs(product - exact) / np.maximum(scale, np.finfo(np.float64).tiny)).max())


@needs_tiles
@pytest.mark.parametrize("shape", [(1, 1, 1), (33, 33, 33), (37, 50, 70), (600, 784, 512), (64, 1000, 300)])
def test_the_six_bfloat16_products_are_as_accurate_as_a_float32_blas(shape):
    a, b = _factors(*shape)
    product = tiles.matmul(a, b)
    assert product.shape == shape[::2] and product.dtype == np.float32
    blas = _worst_error(a @ b, a, b)
    assert _worst_error(product, a, b) <= max(2 * blas, 2.0 ** -23)  # bf16×3 (8 bits) would be ~1e-5


@needs_tiles
def test_rows_apart_in_memory_and_values_large_and_small():
    rng = np.random.default_rng(1)

    def values(shape, scale):  # magnitudes in [scale, 2 scale), either sign
        return (rng.uniform(1, 2, shape) * rng.choice([-1, 1], shape) * scale).astype(np.float32)

    wide_a, wide_b = values((70, 90), 1e15), values((60, 100), 1e-10)
    wide_a[::7] *= np.float32(1e-30)  # rows near 1e-15: products near 1e-25, above tiles.SMALLEST
    a, b = wide_a[:, 3:63], wide_b[:, 5:45]  # rows 90 and 100 floats apart
    assert _worst_error(tiles.matmul(a, b), a, b) <= 2.0 ** -22


def _poison_the_buffers():
    """Fill the reused tile buffers with bfloat16 NaNs, so that a tile the kernels forgot to write shows."""
    for name in ("a", "b"):
        buffer = getattr(tiles._scratch, name, None)
        if buffer is not None:
            buffer.fill(0xFFFF)


@needs_tiles
def test_the_threads_share_the_blocks_and_get_the_same_product(monkeypatch):
    a, b = _factors(300, 200, 96, seed=2)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("SHENJING_NUM_THREADS", threads)
        _poison_the_buffers()
        results.append(tiles.matmul(a, b))
        assert _worst_error(results[-1], a, b) <= 2.0 ** -22
    assert all(np.array_equal(results[0], r) for r in results[1:])


@needs_tiles
@pytest.mark.parametrize("where", ["a", "b"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, 1e19, 3.4e38])
@pytest.mark.parametrize("at", [(5, 7), (-1, -1)])  # in the first thread's share, and in the last row block or pair
def test_values_too_large_to_split_are_left_to_blas(where, value, at, monkeypatch):
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    a, b = _factors(600, 101, 300, seed=3)
    (a if where == "a" else b)[at] = value  # 1e19 is finite, but its parts' products could overflow
    assert tiles.matmul(a, b) is None
    with np.errstate(invalid="ignore", over="ignore"):
        expected = a @ b
        got = parallel.matmul(a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-5)


@needs_tiles
def test_factors_or_products_small_enough_to_be_flushed_are_left_to_blas():
    a, b = _factors(600, 101, 300, seed=4)
    a[-1, -1] = 1e-20
    assert _worst_error(tiles.matmul(a, b), a, b) <= 2.0 ** -22  # 1e-20 times b's values: far above 2**-102
    b[3, 3] = -1e-20  # 1e-40 could be a product: the unit would flush its parts
    assert tiles.matmul(a, b) is None
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-6)
    large_b = np.where(b < 0, -1e5, 1e5).astype(np.float32)  # products of 1e-35 with it: 1e-30, above 2**-102
    a[-1, -1] = 1e-35  # but its own parts would fall below 2**-126, where the unit reads them as zero
    assert tiles.matmul(a, large_b) is None
    a[:] = 0  # no nonzero factor in a: nothing to flush
    assert np.array_equal(tiles.matmul(a, b), np.zeros((600, 300), np.float32))


@needs_tiles
def test_parallel_matmul_takes_the_unit_for_the_shapes_it_wins(monkeypatch):
    calls = []
    real = tiles.matmul
    monkeypatch.setattr(tiles, "matmul", lambda a, b: calls.append((a.shape, b.shape)) or real(a, b))
    rows, columns, (least, most) = parallel.TILE_MIN_ROWS, parallel.TILE_MIN_COLUMNS, parallel.TILE_DEPTHS
    cases = {  # (m, k, n): taken
        (rows, least, columns): True, (rows, most, columns): True,
        (rows - 1, least, columns): False, (rows, least - 1, columns): False, (rows, most + 1, columns): False,
        (rows, least, columns - 1): False,
    }
    for (m, k, n), taken in cases.items():
        calls.clear()
        a, b = _factors(m, k, n)
        product = parallel.matmul(a, b)
        assert bool(calls) == taken, (m, k, n)
        assert _worst_error(product, a, b) <= 2.0 ** -21
    a, b = _factors(rows, least, columns)
    calls.clear()
    parallel.matmul(a.astype(np.float64), b.astype(np.float64))  # float64: BLAS
    parallel.matmul(a, np.asfortranarray(b))  # b's columns contiguous, not its rows
    parallel.matmul(a.astype(">f4"), b)  # byte-swapped
    parallel.matmul(a, b, out=np.empty((rows, columns), np.float32))
    jit.set_enabled(False)  # the conftest restores the switch
    parallel.matmul(a, b)
    assert not calls
    with pytest.raises(ValueError, match="native float32"):
        real(a.astype(">f4"), b)  # called directly, the unit refuses what it cannot read


@needs_tiles
def test_a_dense_layers_predictions_on_the_unit_match_blas(monkeypatch):
    shenjing.utils.set_random_seed(0)
    model = shenjing.models.Sequential([shenjing.layers.Dense(512, activation="relu", input_shape=(784,)),
                                        shenjing.layers.Dense(512, activation="relu"),
                                        shenjing.layers.Dense(10, activation="softmax")])
    x = np.random.default_rng(4).random((1000, 784), dtype=np.float32)
    calls = []
    real = tiles.matmul
    monkeypatch.setattr(tiles, "matmul", lambda a, b: calls.append(b.shape) or real(a, b))
    on = model.predict(x, batch_size=1000, verbose=0)
    assert calls == [(784, 512), (512, 512)]  # the last layer's 10 columns are BLAS's
    monkeypatch.setattr(parallel, "TILE_MIN_ROWS", 10**9)
    off = model.predict(x, batch_size=1000, verbose=0)
    assert on.dtype == np.float32
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=1e-7)
