"""The optional compiled-kernel path (``shenjing.backend.jit``): when it is on, what it falls back
from, and its kernels against their NumPy twins on the cases the op tests do not reach (ties, NaN,
overlapping windows, odd sizes). The op tests (tests/autodiff/test_conv.py, test_rnn.py) run
their gradient checks and PyTorch comparisons on both paths."""

import os
import subprocess
import sys

import numpy as np
import pytest

from shenjing import backend
from shenjing.autodiff import Tensor, conv, nn, ops
from shenjing.backend import jit

needs_numba = pytest.mark.skipif(not jit.numba_available(), reason="numba is not installed")


@pytest.fixture
def both_paths():
    """Run ``fn`` with the compiled path off, then on; returns both results (the conftest restores the
    switch after the test)."""
    def run(fn):
        results = []
        for on in (False, True):
            jit.set_enabled(on)
            results.append(fn())
        return results
    return run


def test_the_switch_follows_the_environment_and_the_override(monkeypatch):
    monkeypatch.setenv("SHENJING_JIT", "0")
    jit.set_enabled(None)  # the environment is read again
    assert not jit.enabled() and jit.kernels("conv") is None
    jit.set_enabled(True)
    assert jit.enabled() == jit.numba_available()
    jit.set_enabled(None)
    assert not jit.enabled()
    monkeypatch.setenv("SHENJING_JIT", "1")
    assert not jit.enabled()  # read once, until set_enabled(None)
    jit.set_enabled(None)
    assert jit.enabled() == jit.numba_available()


def test_off_on_a_non_numpy_backend(monkeypatch):
    class FakeCupy:
        __name__ = "cupy"
    monkeypatch.setattr(backend, "xp", FakeCupy())
    jit.set_enabled(True)
    assert not jit.enabled() and jit.kernels("conv") is None


def test_usable_needs_contiguous_arrays_of_one_compiled_dtype():
    a = np.zeros((4, 5), np.float32)
    assert jit.usable(a, a + 1)
    assert not jit.usable(a, a.astype(np.float64))
    assert not jit.usable(a.T)
    assert not jit.usable(a.astype(np.float16))
    assert not jit.usable(np.zeros((), np.float32))  # numba would see a scalar


def test_import_shenjing_does_not_import_numba():
    code = "import sys, shenjing; import shenjing.models, shenjing.layers; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "SHENJING_JIT": "1"})
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------------------- kernels


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"), ((3, 3), (2, 2), "valid"),
                                                   ((3, 2), (1, 2), "same"), ((2, 2), (3, 3), "valid")])
def test_max_pool_ties_go_to_the_first_tap_on_both_paths(both_paths, dtype, pool, strides, padding):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(3, 7, 8, 17)).astype(dtype)  # many ties
    g = None

    def run():
        nonlocal g
        t = Tensor(x, requires_grad=True)
        out = conv.max_pool2d(t, pool, strides, padding)
        g = rng.standard_normal(out.shape).astype(dtype) if g is None else g
        return out.data, out._backward(g)[0]

    (ref_out, ref_dx), (out, dx) = both_paths(run)
    assert out.dtype == ref_out.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_propagates_nan_on_both_paths(both_paths, kind):
    x = np.arange(2 * 4 * 4 * 16, dtype=np.float32).reshape(2, 4, 4, 16)
    x[0, 1, 1, 2] = np.nan
    pool = conv.max_pool2d if kind == "max" else conv.avg_pool2d
    ref, out = both_paths(lambda: pool(Tensor(x), 2).data)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    assert np.isnan(out[0, 0, 0, 2])
    np.testing.assert_array_equal(out, ref)


@needs_numba
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_overlapping_pool_windows_accumulate_on_both_paths(both_paths, kind, padding):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 9, 7, 16)).astype(np.float32)
    g = rng.standard_normal((2, 5, 4, 16) if padding == "same" else (2, 4, 3, 16)).astype(np.float32)
    pool = conv.max_pool2d if kind == "max" else conv.avg_pool2d

    def run():
        out = pool(Tensor(x, requires_grad=True), (3, 3), (2, 2), padding)
        return out.data, out._backward(g)[0]

    (ref_out, ref_dx), (out, dx) = both_paths(run)
    np.testing.assert_allclose(out, ref_out, rtol=1e-6)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-6)


@needs_numba
@pytest.mark.parametrize("channels", [1, 3, 7])
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_conv_with_many_sample_blocks_agrees_on_both_paths(both_paths, monkeypatch, channels, activation):
    """Blocks of a few samples each (the last one partial), odd sizes, strides and dilation."""
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 3000)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((7, 11, 9, channels)).astype(np.float32)
    k = (rng.standard_normal((3, 2, channels, 5)) * 0.3).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    kwargs = {"strides": (2, 1), "dilation_rate": (1, 2), "padding": "same", "activation": activation}
    g = None

    def run():
        nonlocal g
        out = conv.conv2d(Tensor(x, requires_grad=True), Tensor(k, requires_grad=True),
                          Tensor(b, requires_grad=True), **kwargs)
        g = rng.standard_normal(out.shape).astype(np.float32) if g is None else g
        return (out.data,) + tuple(out._backward(g))

    reference, compiled = both_paths(run)
    for ref, got in zip(reference, compiled):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


def test_float16_takes_the_numpy_path():
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 3)).astype(np.float16)
    jit.set_enabled(True)
    out = conv.max_pool2d(Tensor(x), 2)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out.data, x.reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))


@needs_numba
@pytest.mark.parametrize("name", ["relu", "tanh"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [9, 16391])
def test_fused_activation_gradients_agree_with_numpy(name, dtype, size):
    rng = np.random.default_rng(2)
    g = rng.standard_normal(size).astype(dtype)
    out = rng.standard_normal(size).astype(dtype)
    out[:3] = 0
    g[5], out[6] = np.nan, np.nan
    grad = nn.FUSED_ACTIVATIONS[name][1]
    jit.set_enabled(False)
    ref = grad(g, out)
    jit.set_enabled(True)
    got = grad(g, out)
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))
    np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == "float32" else 1e-14)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [8, 300, 70_001])
def test_compiled_sigmoid_agrees_with_numpy_within_a_few_ulp(dtype, size, both_paths):
    x = (np.random.default_rng(3).standard_normal(size) * 10).astype(dtype)
    x[:6] = [0.0, -0.0, 100.0, -100.0, np.inf, -np.inf]
    x[6] = np.nan
    ref, got = both_paths(lambda: nn._sigmoid_array(x))
    assert got.dtype == ref.dtype == dtype
    np.testing.assert_array_equal(got[:7], [0.5, 0.5, 1.0, ref[3], 1.0, 0.0, np.nan])
    assert 0 < got[3] < 1e-40 or dtype == "float32"  # e^-100 in float64, not 0
    # the C library's exp against NumPy's SIMD exp: a few ulp apart at most
    np.testing.assert_array_max_ulp(got, ref, maxulp=4)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [4, jit.SMALL_ELEMENTS, jit.SMALL_ELEMENTS + 1, 5000])
def test_compiled_sigmoid_cross_entropy_agrees_with_numpy(dtype, size, both_paths):
    """The loss (a kernel up to SMALL_ELEMENTS, NumPy beyond) and its gradient (a kernel at any size)."""
    rng = np.random.default_rng(8)
    z0 = (rng.standard_normal((size, 1)) * 6).astype(dtype)
    z0[:4, 0] = [0.0, 40.0, -40.0, 1e-8]
    y0 = (rng.random((size, 1)) > 0.5).astype(dtype)
    g0 = rng.standard_normal((size, 1)).astype(dtype)

    def run():
        z = Tensor(z0.copy(), requires_grad=True)
        y = Tensor(y0.copy(), requires_grad=True)
        out = nn.sigmoid_binary_cross_entropy(z, y)
        out.backward(g0)
        return out.data, z.grad, y.grad

    (loss_ref, gz_ref, gy_ref), (loss, gz, gy) = both_paths(run)
    assert loss.dtype == gz.dtype == dtype
    np.testing.assert_array_max_ulp(loss, loss_ref, maxulp=4)
    np.testing.assert_allclose(gz, gz_ref, rtol=1e-6 if dtype == "float32" else 1e-14,
                               atol=1e-7 if dtype == "float32" else 1e-16)
    np.testing.assert_array_equal(gy, gy_ref)
    # z = 40: the loss is e^-40 (y = 1) or 40 + e^-40 (y = 0), not 0 and not overflowed
    assert loss[1, 0] == (pytest.approx(np.exp(-40.0), rel=1e-5) if y0[1, 0] == 1 else 40.0)


# ------------------------------------------------------------------------------ optimizers


def _adam_run(steps, grads, m0=None):
    from shenjing import optimizers
    from shenjing.autodiff import Variable

    var = Variable(np.linspace(-1, 1, grads.shape[-1]).astype(np.float32))
    opt = optimizers.Adam(learning_rate=0.01)
    opt.apply_gradients([(grads[0], var)])
    if m0 is not None:
        opt._slots["m"][0][...] = m0
    for step in range(1, steps):
        opt.apply_gradients([(grads[step % len(grads)], var)])
    return var.data.copy(), opt._slots["m"][0].copy(), opt._slots["v"][0].copy()


@needs_numba
def test_compiled_adam_is_the_numpy_rule_bit_for_bit(both_paths):
    size = 16387
    grads = np.random.default_rng(4).standard_normal((5, size)).astype(np.float32)
    (w_ref, m_ref, v_ref), (w, m, v) = both_paths(lambda: _adam_run(7, grads))
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(v, v_ref)


@needs_numba
def test_compiled_adam_flushes_vanishing_moments_to_zero(both_paths):
    """A weight whose gradient is 0 has its m decay by β1 a step: the compiled rule flushes it to 0 below
    the floor instead of running into the (slow) subnormal range; the weights do not notice."""
    from shenjing.optimizers.rules import MOMENT_FLOOR

    size = 16384
    grads = np.zeros((1, size), np.float32)
    m0 = np.full(size, 1e-29, np.float32)
    (w_ref, m_ref, _), (w, m, _) = both_paths(lambda: _adam_run(60, grads, m0))
    floor = np.finfo(np.float32).tiny * MOMENT_FLOOR
    assert np.all(m == 0) and np.all(m_ref > 0) and np.all(m_ref < floor)
    np.testing.assert_array_equal(w, w_ref)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_compiled_dropout_is_the_numpy_mask_bit_for_bit(dtype, size, both_paths):
    x = np.random.default_rng(0).standard_normal(size).astype(dtype)
    x[:3] = [np.nan, -0.0, np.inf][:size]
    g = np.random.default_rng(1).standard_normal(size).astype(dtype)

    def run():
        t = Tensor(x, requires_grad=True)
        with np.errstate(invalid="ignore"):  # inf · 0, as NumPy computes it
            out = ops.dropout(t, 0.3, np.random.default_rng(4))
            ops.sum(out * g).backward()
        return out.data, t.grad

    (out_np, grad_np), (out_jit, grad_jit) = both_paths(run)
    for a, b in ((out_np, out_jit), (grad_np, grad_jit)):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
        assert np.array_equal(np.signbit(a), np.signbit(b))


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (2, 3, 64)])
def test_compiled_bias_relu_is_numpy_add_then_maximum(dtype, shape, both_paths):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    a.reshape(-1)[:3] = [np.nan, -0.0, -np.inf][:a.size]
    bias = np.random.default_rng(1).standard_normal(shape[-1:]).astype(dtype)
    bias[0] = -0.0  # −0 + −0 is −0, whose relu is +0 (NumPy's maximum)

    def run():
        out = a.copy()
        nn.FUSED_ACTIVATIONS["relu"][0](out, bias)
        return out

    numpy_out, compiled = both_paths(run)
    np.testing.assert_array_equal(numpy_out, compiled)
    assert np.array_equal(np.signbit(numpy_out), np.signbit(compiled))
    expected = a + bias
    np.maximum(expected, 0, out=expected)
    np.testing.assert_array_equal(compiled, expected)
