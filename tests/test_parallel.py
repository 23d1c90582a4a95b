"""backend.parallel: blocks spread over threads give the same results as one thread."""

import numpy as np
import pytest

from shenjing import backend
from shenjing.autodiff import Tensor, conv
from shenjing.backend import parallel


def test_run_covers_every_block_once_in_order(monkeypatch):
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    blocks = list(range(10))
    parts = parallel.run(lambda part: list(part), blocks)
    assert sum(parts, []) == blocks
    assert len(parts) == (3 if parallel._available() else 1)
    assert parallel.run(lambda part: list(part), [7]) == [[7]]


def test_run_restores_the_blas_thread_count(monkeypatch):
    if not parallel._available():
        pytest.skip("this BLAS has no thread-count control")
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    before = parallel._state["get"]()
    parallel.run(lambda part: None, [1, 2, 3])
    with pytest.raises(ZeroDivisionError):
        parallel.run(lambda part: 1 / 0, [1, 2, 3])
    assert parallel._state["get"]() == before


@pytest.mark.parametrize("channels", [1, 6])
def test_threaded_convolution_equals_one_thread(channels, monkeypatch):
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((7, 9, 8, channels)), rng.standard_normal((3, 3, channels, 5)),
              rng.standard_normal(5)]
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)  # one sample per block

    def run():
        x, k, b = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = conv.conv2d(x, k, b, padding="same", activation="relu")
        (out * out).sum().backward()
        return [out.data, x.grad, k.grad, b.grad]

    monkeypatch.setenv("SHENJING_NUM_THREADS", "1")
    one = run()
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    for got, want in zip(run(), one):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("kwargs", [{}, {"pool_size": 3, "strides": 2, "padding": "same"}])
def test_threaded_pooling_equals_one_thread(op, kwargs, monkeypatch):
    x0 = np.random.default_rng(6).standard_normal((7, 9, 8, 3))
    g = None
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)

    def run():
        nonlocal g
        x = Tensor(x0.copy(), requires_grad=True)
        out = getattr(conv, op)(x, **kwargs)
        g = np.random.default_rng(1).standard_normal(out.shape) if g is None else g
        (out * Tensor(g)).sum().backward()
        return [out.data, x.grad]

    monkeypatch.setenv("SHENJING_NUM_THREADS", "1")
    one = run()
    monkeypatch.setenv("SHENJING_NUM_THREADS", "3")
    for got, want in zip(run(), one):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
