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
@pytest.mark.parametrize("channels", [8, 17])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pool,strides,padding", [((2, 2), None, "valid"), ((3, 3), (2, 2), "valid"),
                                                   ((3, 2), (1, 2), "same"), ((2, 2), (3, 3), "valid")])
def test_max_pool_ties_go_to_the_first_tap_on_both_paths(both_paths, dtype, pool, strides, padding, channels):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(3, 7, 8, channels)).astype(dtype)  # many ties
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


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4096, 65), (7, 10), (3, 1), (2, 3, 5), (1, 10)])
def test_compiled_softmax_is_the_numpy_softmax_bit_for_bit(dtype, shape, both_paths):
    """``softmax_shift`` and ``divide_rows`` around NumPy's exp and row sum: the same probabilities,
    maxima and sums as the NumPy twin, NaN and infinities included."""
    x = (np.random.default_rng(4).standard_normal(shape) * 5).astype(dtype)
    flat = x.reshape(-1, shape[-1])
    if flat.shape[0] >= 4 and shape[-1] >= 3:
        flat[0, 1] = np.nan  # a NaN row stays NaN
        flat[1, :2] = [np.inf, 1.0]  # an infinite logit: NaN (inf − inf), as NumPy gives it
        flat[2, :] = -np.inf
        flat[3, :3] = [2.0, 2.0, -0.0]  # ties
    with np.errstate(invalid="ignore"):  # inf − inf in the NumPy twin's shift
        (p_ref, m_ref, s_ref), (p, m, s) = both_paths(lambda: nn._softmax_parts(x, -1))
    assert p.dtype == m.dtype == s.dtype == dtype
    assert m.shape == s.shape == shape[:-1] + (1,)
    for got, ref in ((p, p_ref), (m, m_ref), (s, s_ref)):
        np.testing.assert_array_equal(got, ref)
    finite = np.isfinite(x).all(axis=-1)
    e = np.exp(x[finite] - x[finite].max(-1, keepdims=True))
    np.testing.assert_allclose(p[finite], e / e.sum(-1, keepdims=True), rtol=1e-5 if dtype == "float32" else 1e-13)
    if flat.shape[0] >= 4 and shape[-1] >= 3:
        assert np.isnan(p.reshape(flat.shape)[:3]).all()


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(4096, 65), (6, 4), (2, 3, 5)])
def test_sparse_cross_entropy_with_and_without_probs_on_both_paths(dtype, shape, both_paths):
    """The loss and its gradient bit for bit the same whether the softmax is passed in (``probs``, a
    model's softmax output) or computed inside, and on both paths (``softmax_xent_grad``, labels that
    wrap included)."""
    rng = np.random.default_rng(5)
    z0 = (rng.standard_normal(shape) * 3).astype(dtype)
    labels = rng.integers(-shape[-1], shape[-1], shape[:-1])
    g0 = rng.standard_normal(shape[:-1]).astype(dtype)

    def run(with_probs):
        z = Tensor(z0.copy(), requires_grad=True)
        probs = nn.softmax(z) if with_probs else None
        out = nn.softmax_cross_entropy(z, labels, probs=probs)
        out.backward(g0)
        return out.data, z.grad

    results = [both_paths(lambda: run(False)), both_paths(lambda: run(True))]
    (loss_ref, grad_ref) = results[0][0]
    for loss, grad in (results[0][1], results[1][0], results[1][1]):
        assert loss.dtype == grad.dtype == dtype
        np.testing.assert_array_equal(loss, loss_ref)
        np.testing.assert_array_equal(grad, grad_ref)
    p = np.exp(z0 - z0.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    picked = np.take_along_axis(p, (labels % shape[-1])[..., None], -1)[..., 0]
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(loss_ref, -np.log(picked), **tol)
    onehot = np.eye(shape[-1], dtype=dtype)[labels % shape[-1]]
    np.testing.assert_allclose(grad_ref, (p - onehot) * g0[..., None], **tol)


def test_cross_entropy_refuses_probs_that_are_not_the_logits_softmax():
    z = Tensor(np.zeros((2, 3)))
    for probs in (nn.softmax(Tensor(np.zeros((2, 3)))), nn.sigmoid(z), Tensor(np.full((2, 3), 1 / 3))):
        with pytest.raises(ValueError, match="probs must be nn.softmax"):
            nn.softmax_cross_entropy(z, np.array([0, 2]), probs=probs)
    with pytest.raises(ValueError, match="probs must be nn.softmax"):
        nn.softmax_cross_entropy(z, np.eye(3)[[0, 2]].T, axis=0, probs=nn.softmax(z))


@needs_numba
@pytest.mark.parametrize("channels,strides,dilation,padding", [
    (1, (1, 1), (1, 1), "valid"), (3, (2, 1), (1, 1), "same"), (2, (1, 1), (2, 2), "valid"),
    (4, (2, 2), (1, 2), "same")])
def test_narrow_col2im_kernel_is_the_numpy_scatter(both_paths, monkeypatch, channels, strides, dilation, padding):
    """Narrow convolutions (≤ 4 input channels) scatter their input gradient in the channel-major layout: the
    compiled kernel gives the per-tap NumPy adds' gradient (strides, dilation, padding; overlapping taps)."""
    import importlib

    monkeypatch.setattr(conv, "DIRECT_FILTERS", 0)  # the column path, even at stride 1
    module = importlib.import_module("shenjing.backend.kernels.conv")
    calls = []
    kernel = module.col2im_channel_major
    monkeypatch.setattr(module, "col2im_channel_major", lambda *args: calls.append(1) or kernel(*args))
    rng = np.random.default_rng(1)
    x, k = rng.normal(size=(5, 9, 8, channels)), rng.normal(size=(3, 3, channels, 6))
    g = None

    def run():
        nonlocal g
        t = Tensor(x, requires_grad=True)
        out = conv.conv2d(t, k, None, strides=strides, padding=padding, dilation_rate=dilation)
        g = rng.normal(size=out.shape) if g is None else g
        out.backward(g)
        return t.grad

    reference, compiled = both_paths(run)
    assert calls  # the compiled run used the kernel
    np.testing.assert_allclose(compiled, reference, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ optimizers


FUSED_RULES = {  # every rule with a compiled kernel, in each of its kernel's modes
    "adam": lambda o: o.Adam(learning_rate=0.01),
    "nadam": lambda o: o.Nadam(learning_rate=0.01),
    "adamax": lambda o: o.Adamax(learning_rate=0.01),
    "sgd_momentum": lambda o: o.SGD(learning_rate=0.05, momentum=0.9),
    "sgd_nesterov": lambda o: o.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "rmsprop": lambda o: o.RMSprop(learning_rate=0.01),
    "rmsprop_centered_momentum": lambda o: o.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "rmsprop_momentum": lambda o: o.RMSprop(learning_rate=0.01, momentum=0.5),
    "adadelta": lambda o: o.Adadelta(learning_rate=1.0),
}


def _rule_run(make, steps, grads, state=None, dtype=np.float32):
    """The weights and slots after ``steps`` updates with ``grads`` (cycled); ``state`` (a value) is
    written into every slot after the first step."""
    from shenjing import optimizers
    from shenjing.autodiff import Variable

    var = Variable(np.linspace(-1, 1, grads.shape[-1]).astype(dtype), dtype=dtype)
    opt = make(optimizers)
    opt.apply_gradients([(grads[0].astype(dtype), var)])
    if state is not None:
        for table in opt._slots.values():
            table[0][...] = state
    for step in range(1, steps):
        opt.apply_gradients([(grads[step % len(grads)].astype(dtype), var)])
    return var.data.copy(), {name: table[0].copy() for name, table in opt._slots.items()}


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", list(FUSED_RULES))
def test_compiled_rules_are_the_numpy_rules_bit_for_bit(both_paths, rule, dtype):
    size = 16387
    grads = np.random.default_rng(4).standard_normal((5, size))
    grads[:, :3] = [0.0, 1e3, -1e-6]
    grads[2, 3], grads[3, 4] = np.nan, np.inf  # propagate as in NumPy (a flush must not hide them)
    with np.errstate(invalid="ignore"):
        (w_ref, slots_ref), (w, slots) = both_paths(lambda: _rule_run(FUSED_RULES[rule], 7, grads, dtype=dtype))
    assert w.dtype == dtype and np.isnan(w[3])
    np.testing.assert_array_equal(w, w_ref)
    assert slots.keys() == slots_ref.keys()
    for name in slots:
        np.testing.assert_array_equal(slots[name], slots_ref[name], err_msg=name)


@needs_numba
@pytest.mark.parametrize("rule", list(FUSED_RULES))
def test_compiled_rules_flush_vanishing_averages_to_zero(both_paths, rule):
    """A weight whose gradient is 0 has its moving averages decay every step: the compiled rules flush them
    to 0 below the floor instead of running into the (slow) subnormal range; the weights do not notice."""
    from shenjing.optimizers.rules import MOMENT_FLOOR

    size = 16384
    grads = np.zeros((1, size))
    floor = np.finfo(np.float32).tiny * MOMENT_FLOOR
    start = np.float32(floor * 1.02)  # decays below the floor within the steps, even by β2 = 0.999 a step
    (w_ref, slots_ref), (w, slots) = both_paths(lambda: _rule_run(FUSED_RULES[rule], 80, grads, state=start))
    for name in slots:
        assert np.all(slots[name] == 0), name
        assert np.all(slots_ref[name] < floor), name  # the NumPy rule's: subnormal (or underflowed at last)
    assert any(np.all(slots_ref[name] > 0) for name in slots)
    np.testing.assert_array_equal(w, w_ref)


@needs_numba
def test_compiled_adamax_propagates_nan_as_np_maximum(both_paths):
    grads = np.random.default_rng(2).standard_normal((3, 64))
    grads[1, 5] = np.nan
    with np.errstate(invalid="ignore"):
        (w_ref, slots_ref), (w, slots) = both_paths(lambda: _rule_run(FUSED_RULES["adamax"], 3, grads))
    np.testing.assert_array_equal(w, w_ref)
    np.testing.assert_array_equal(slots["u"], slots_ref["u"])
    assert np.isnan(slots["u"][5]) and np.isnan(w[5])


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
