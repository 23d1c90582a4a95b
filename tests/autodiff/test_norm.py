"""The fused normalization primitives of ``shenjing.autodiff.norm``: float64 central-difference
gradient checks, forward values against NumPy formulas, and PyTorch as an oracle.

Keras vs PyTorch, as compared below:

* PyTorch's ``momentum`` weights the *new* batch statistic (default 0.1); Keras's weights the old
  moving value (default 0.99): torch momentum = 1 − Keras momentum.
* ``F.batch_norm(training=True)`` normalizes with the biased batch variance (as we do), but its
  ``running_var`` averages the *unbiased* one (× N/(N − 1)); Keras 3, and shenjing, average the
  biased variance. The oracle test reproduces torch's running_var from our batch variance times
  N/(N − 1), and checks that our (biased) moving variance differs from it.
"""

import numpy as np
import pytest

from shenjing.autodiff import Tensor, norm, ops
from shenjing.backend import jit

from .helpers import KERNEL_PATHS, assert_gradients, on_both_paths

R = np.random.default_rng(7)


@pytest.fixture(autouse=True, params=KERNEL_PATHS)
def path(request):
    """Every test here runs on the NumPy reference path and on the compiled (numba) batch-norm kernels."""
    yield from on_both_paths(request)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (64, 7, 7, 16)])
@pytest.mark.parametrize("use_gamma,use_beta", [(True, True), (False, True), (True, False), (False, False)])
def test_batch_norm_train_both_paths_agree(path, dtype, shape, use_gamma, use_beta):
    """The compiled kernels (channels last) against the NumPy formulas: output, batch statistics and every
    gradient."""
    rng = np.random.default_rng(3)
    arrays = [rng.normal(2.0, 3.0, shape), rng.uniform(0.5, 2.0, shape[-1]), rng.normal(size=shape[-1])]
    g = rng.normal(size=shape).astype(dtype)
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        x, gamma, beta = (Tensor(a.astype(dtype), requires_grad=True) for a in arrays)
        y, mean, var = norm.batch_norm_train(x, gamma if use_gamma else None, beta if use_beta else None,
                                             tuple(range(len(shape) - 1)), 1e-3)
        y.backward(g)
        results.append([y.data, mean, var, x.grad] + [t.grad for t, used in ((gamma, use_gamma), (beta, use_beta))
                                                         if used])
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for ours, ref in zip(results[1], results[0]):
        assert ours.dtype == dtype and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, **tol)


@pytest.fixture
def norm_calls(monkeypatch):
    """The names of the normalization kernels called (they still run)."""
    pytest.importorskip("numba")
    import importlib

    module = importlib.import_module("shenjing.backend.kernels.norm")
    calls = []
    for name in ("batch_norm_forward", "batch_norm_backward", "batch_norm_affine", "layer_norm_forward",
                 "layer_norm_backward"):
        kernel = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *args, _k=kernel, _n=name: calls.append(_n) or _k(*args))
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_infer_both_paths_agree_with_every_gradient(norm_calls, dtype):
    """Inference mode, every input requiring a gradient (a frozen layer being fine-tuned, statistics as
    Tensors): the compiled pass and the NumPy formulas agree, and the kernels ran."""
    rng = np.random.default_rng(4)
    shape = (8, 3, 3, 5)
    arrays = [rng.normal(1.0, 2.0, shape), rng.normal(size=5), rng.uniform(0.5, 2.0, 5), rng.uniform(0.5, 2.0, 5),
              rng.normal(size=5)]
    g = rng.normal(size=shape).astype(dtype)
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        tensors = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
        y = norm.batch_norm_infer(tensors[0], *tensors[1:], 1e-3, axes=(0, 1, 2))
        y.backward(g)
        results.append([y.data] + [t.grad for t in tensors])
    assert "batch_norm_affine" in norm_calls
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for ours, ref in zip(results[1], results[0]):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, ref, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("use_gamma,use_beta", [(True, True), (False, False), (True, False)])
def test_layer_norm_last_axis_both_paths_agree(norm_calls, dtype, use_gamma, use_beta):
    """Layer normalization over the last axis: the compiled rows against the NumPy formulas (output and every
    gradient), and the kernels ran."""
    rng = np.random.default_rng(6)
    shape = (3, 5, 16)
    arrays = [rng.normal(1.0, 2.0, shape), rng.uniform(0.5, 2.0, 16), rng.normal(size=16)]
    g = rng.normal(size=shape).astype(dtype)
    results = []
    for on in (False, True):
        jit.set_enabled(on)
        x, gamma, beta = (Tensor(a.astype(dtype), requires_grad=True) for a in arrays)
        y = norm.layer_norm(x, gamma if use_gamma else None, beta if use_beta else None, (-1,), 1e-3)
        y.backward(g)
        results.append([y.data, x.grad] + [t.grad for t, used in ((gamma, use_gamma), (beta, use_beta)) if used])
    assert norm_calls == ["layer_norm_forward", "layer_norm_backward"]
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    for ours, ref in zip(results[1], results[0]):
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, ref, **tol)


def test_batch_norm_train_runs_the_kernels(norm_calls):
    jit.set_enabled(True)
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3, 3, 2)), requires_grad=True)
    y, _, _ = norm.batch_norm_train(x, np.ones(2), np.zeros(2), (0, 1, 2), 1e-3)
    y.backward(np.ones(y.shape))
    assert norm_calls == ["batch_norm_forward", "batch_norm_backward"]


def test_batch_norm_infer_gradients_use_the_statistics_of_the_forward(path):
    """A layer's moving mean is updated in place after a forward (a shared layer run again in training
    mode): the gradients of gamma and var still use the mean the forward normalized with."""
    rng = np.random.default_rng(5)
    x, g = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    mean = rng.normal(size=4)
    grads = []
    for change in (False, True):
        moving = mean.copy()
        gamma, var = Tensor(np.ones(4), requires_grad=True), Tensor(np.ones(4), requires_grad=True)
        y = norm.batch_norm_infer(Tensor(x), moving, var, gamma, None, 1e-3, axes=(0,))
        if change:
            moving[...] = 100.0
        y.backward(g)
        grads.append((gamma.grad, var.grad))
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def n(*shape):
    return R.standard_normal(shape)


def pos(*shape):
    return R.uniform(0.5, 2.0, shape)


# --------------------------------------------------------------------------- gradient checks

BN_TRAIN = [
    ("NC", (6, 3), (0,)),
    ("NHWC", (2, 3, 2, 4), (0, 1, 2)),
    ("NCHW", (2, 4, 3, 2), (0, 2, 3)),
    ("NTC-per-step", (5, 2, 3), (0,)),
]


@pytest.mark.parametrize("name,shape,axes", BN_TRAIN, ids=[c[0] for c in BN_TRAIN])
def test_batch_norm_train_gradients(name, shape, axes):
    pshape = tuple(s for i, s in enumerate(shape) if i not in axes)
    assert_gradients(lambda x, g, b: norm.batch_norm_train(x, g, b, axes, 1e-3)[0],
                     n(*shape) * 2 + 1, n(*pshape), n(*pshape))


@pytest.mark.parametrize("use_gamma,use_beta", [(False, True), (True, False), (False, False)])
def test_batch_norm_train_gradients_without_scale_or_center(use_gamma, use_beta):
    x = n(5, 2, 3)
    params = ([n(2)] if use_gamma else []) + ([n(2)] if use_beta else [])

    def fn(x, *p):
        p = list(p)
        gamma = p.pop(0) if use_gamma else None
        beta = p.pop(0) if use_beta else None
        return norm.batch_norm_train(x, gamma, beta, (0, 2), 1e-3)[0]

    assert_gradients(fn, x, *params)


def test_batch_norm_train_gradients_with_broadcast_shaped_parameters():
    assert_gradients(lambda x, g, b: norm.batch_norm_train(x, g, b, (0, 2, 3), 1e-2)[0],
                     n(3, 2, 2, 2), n(1, 2, 1, 1), n(1, 2, 1, 1))


@pytest.mark.parametrize("shape,axes", [((6, 3), (0,)), ((2, 3, 2, 4), (0, 1, 2)), ((2, 4, 3, 2), (0, 2, 3))])
def test_batch_norm_infer_gradients(shape, axes):
    pshape = tuple(s for i, s in enumerate(shape) if i not in axes)
    # x, gamma, beta, and the statistics too when they are Tensors requiring a gradient
    assert_gradients(lambda x, m, v, g, b: norm.batch_norm_infer(x, m, v, g, b, 1e-3, axes=axes),
                     n(*shape), n(*pshape), pos(*pshape), n(*pshape), n(*pshape))
    mean, var = n(*pshape), pos(*pshape)
    assert_gradients(lambda x, g, b: norm.batch_norm_infer(x, mean, var, g, b, 1e-3, axes=axes),
                     n(*shape), n(*pshape), n(*pshape))


def test_batch_norm_infer_default_axes_are_channels_last_and_params_optional():
    x, mean, var = n(4, 3, 5), n(5), pos(5)
    out = norm.batch_norm_infer(Tensor(x), mean, var, None, None, 1e-3)
    np.testing.assert_allclose(out.data, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-13)
    assert_gradients(lambda x: norm.batch_norm_infer(x, mean, var, None, None, 1e-3), x)


LN_AXES = [((4, 5), (-1,)), ((2, 3, 4), (1, 2)), ((2, 3, 2, 2), (1, 2, 3)), ((2, 3, 4), (1,)),
           ((2, 3, 2, 3), (1, 3))]


@pytest.mark.parametrize("shape,axes", LN_AXES, ids=[str(a) for _, a in LN_AXES])
def test_layer_norm_gradients(shape, axes):
    pshape = tuple(shape[a] for a in sorted(a % len(shape) for a in axes))
    assert_gradients(lambda x, g, b: norm.layer_norm(x, g, b, axes, 1e-3), n(*shape) * 3 - 1, n(*pshape),
                     n(*pshape))
    assert_gradients(lambda x: norm.layer_norm(x, None, None, axes, 1e-3), n(*shape))


# ------------------------------------------------------------------------- forward values


def test_batch_norm_train_values_and_statistics():
    x, gamma, beta = n(2, 3, 4, 5) * 3 + 2, n(3), n(3)
    y, mean, var = norm.batch_norm_train(Tensor(x), gamma, beta, (0, 2, 3), 1e-3)
    ref_mean = x.mean(axis=(0, 2, 3))
    ref_var = x.var(axis=(0, 2, 3))  # biased (ddof=0)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13)
    np.testing.assert_allclose(var, ref_var, rtol=1e-13)
    assert mean.shape == var.shape == (3,)
    expected = (gamma[:, None, None] * (x - ref_mean[:, None, None]) / np.sqrt(ref_var[:, None, None] + 1e-3)
                + beta[:, None, None])
    np.testing.assert_allclose(y.data, expected, rtol=1e-12, atol=1e-12)
    assert not isinstance(mean, Tensor) and not isinstance(var, Tensor)


def test_layer_norm_values():
    x, gamma, beta = n(3, 4, 5), n(4, 5), n(4, 5)
    y = norm.layer_norm(Tensor(x), gamma, beta, (-2, -1), 1e-5)
    mu = x.mean(axis=(1, 2), keepdims=True)
    sd = np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.data, gamma * (x - mu) / sd + beta, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_and_parameter_grads_keep_their_dtype():
    x = Tensor(n(6, 3).astype("float32"), requires_grad=True)
    gamma = Tensor(np.ones(3), requires_grad=True)  # float64
    beta = Tensor(np.zeros(3, dtype="float32"), requires_grad=True)
    y, mean, var = norm.batch_norm_train(x, gamma, beta, (0,), 1e-3)
    assert y.dtype == np.float32 and mean.dtype == np.float32 and var.dtype == np.float32
    ops.sum(y * n(6, 3).astype("float32")).backward()
    assert x.grad.dtype == np.float32 and gamma.grad.dtype == np.float64 and beta.grad.dtype == np.float32
    assert gamma.grad.shape == (3,)
    out = norm.layer_norm(Tensor(n(2, 4).astype("float32")), None, None, -1, 1e-3)
    assert out.dtype == np.float32


def test_no_graph_without_requires_grad_and_constant_parameters():
    y, _, _ = norm.batch_norm_train(Tensor(n(4, 2)), np.ones(2), np.zeros(2), (0,), 1e-3)
    assert not y.requires_grad
    x = Tensor(n(4, 2), requires_grad=True)
    y, _, _ = norm.batch_norm_train(x, np.ones(2), np.zeros(2), (0,), 1e-3)
    ops.sum(y * n(4, 2)).backward()
    assert x.grad.shape == (4, 2)


def test_errors_are_clear():
    x = Tensor(n(4, 3))
    with pytest.raises(ValueError, match="axis 2 is out of range for an input of rank 2"):
        norm.batch_norm_train(x, None, None, (0, 2), 1e-3)
    with pytest.raises(ValueError, match="repeated axis"):
        norm.layer_norm(x, None, None, (1, -1), 1e-3)
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        norm.batch_norm_train(x, np.ones(4), None, (0,), 1e-3)
    with pytest.raises(ValueError, match=r"beta must have shape \(3,\)"):
        norm.layer_norm(x, None, np.ones(4), (1,), 1e-3)
    with pytest.raises(ValueError, match="epsilon"):
        norm.batch_norm_infer(x, np.zeros(3), np.ones(3), None, None, -1.0)
    with pytest.raises(TypeError, match="floating-point"):
        norm.layer_norm(Tensor(np.arange(6).reshape(2, 3)), None, None, -1, 1e-3)


# ------------------------------------------------------------------------- torch oracle

RTOL, ATOL = 1e-10, 1e-12


@pytest.fixture
def torch():
    """PyTorch, or skip (only the oracle tests need it)."""
    return pytest.importorskip("torch")


def _compare(torch, ours_out, ours_in, ref_out, ref_in):
    np.testing.assert_allclose(ours_out.data, ref_out.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg="forward")
    weights = np.random.default_rng(11).standard_normal(ours_out.shape)
    ops.sum(ours_out * weights).backward()
    (ref_out * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(ours_in, ref_in)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (2, 3, 4, 5)])
def test_batch_norm_train_matches_torch_values_gradients_and_running_stats(torch, shape):
    """Channels on axis 1 (torch's layout). Keras momentum 0.9 ↔ torch momentum 0.1."""
    F = torch.nn.functional
    keras_momentum, eps = 0.9, 1e-3
    arrays = [n(*shape) * 2 + 0.5, n(shape[1]), n(shape[1])]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    axes = (0,) + tuple(range(2, len(shape)))
    moving_mean, moving_var = n(shape[1]), pos(shape[1])
    running_mean, running_var = torch.tensor(moving_mean.copy()), torch.tensor(moving_var.copy())

    y, mean, var = norm.batch_norm_train(ours[0], ours[1], ours[2], axes, eps)
    ref = F.batch_norm(theirs[0], running_mean, running_var, theirs[1], theirs[2], training=True,
                       momentum=1 - keras_momentum, eps=eps)
    _compare(torch, y, ours, ref, theirs)

    # the moving mean: the same update under either parametrization of momentum
    ours_mean = keras_momentum * moving_mean + (1 - keras_momentum) * mean
    np.testing.assert_allclose(ours_mean, running_mean.numpy(), rtol=RTOL, atol=ATOL)
    # the moving variance: torch averages the unbiased variance, Keras 3 / shenjing the biased one
    count = int(np.prod([shape[a] for a in axes]))
    torch_like = keras_momentum * moving_var + (1 - keras_momentum) * var * count / (count - 1)
    np.testing.assert_allclose(torch_like, running_var.numpy(), rtol=RTOL, atol=ATOL)
    ours_var = keras_momentum * moving_var + (1 - keras_momentum) * var
    assert not np.allclose(ours_var, running_var.numpy(), rtol=1e-6)


def test_batch_norm_infer_matches_torch(torch):
    F = torch.nn.functional
    shape, eps = (3, 4, 2, 3), 1e-5
    mean, var = n(4), pos(4)
    arrays = [n(*shape), n(4), n(4)]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = norm.batch_norm_infer(ours[0], mean, var, ours[1], ours[2], eps, axes=(0, 2, 3))
    ref = F.batch_norm(theirs[0], torch.tensor(mean), torch.tensor(var), theirs[1], theirs[2], training=False,
                       eps=eps)
    _compare(torch, y, ours, ref, theirs)


@pytest.mark.parametrize("shape,axes", [((4, 6), (-1,)), ((2, 3, 4), (-2, -1)), ((2, 3, 2, 2), (1, 2, 3))])
def test_layer_norm_matches_torch(torch, shape, axes):
    F = torch.nn.functional
    eps = 1e-5
    pshape = shape[len(shape) - len(axes):]  # torch normalizes trailing axes
    arrays = [n(*shape) * 2 - 1, n(*pshape), n(*pshape)]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = norm.layer_norm(ours[0], ours[1], ours[2], axes, eps)
    ref = F.layer_norm(theirs[0], pshape, theirs[1], theirs[2], eps=eps)
    _compare(torch, y, ours, ref, theirs)
