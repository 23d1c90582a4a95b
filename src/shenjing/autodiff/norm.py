"""Fused normalization primitives: batch normalization (training and inference) and layer
normalization, each one node of the tape with its backward derived by hand.

Notation (``axes`` are the axes the statistics are taken over, N the number of
elements each statistic covers)::

    μ = mean(x, axes)        σ² = mean((x − μ)², axes)   (the biased, population variance)
    x̂ = (x − μ) / sqrt(σ² + ε)
    y = γ · x̂ + β

With an upstream gradient g and gx̂ = g · γ, the chain rule through μ and σ² collapses to the
closed form (no graph of the intermediate mean/variance is kept)::

    dx = (1 / sqrt(σ² + ε)) · (gx̂ − mean(gx̂, axes) − x̂ · mean(gx̂ · x̂, axes))
    dγ = Σ g · x̂,   dβ = Σ g      (summed over the axes along which γ is constant)

For batch normalization γ is constant along ``axes`` (it is per channel), so gx̂ sums give
``(γ/σ)/N · (N·g − Σg − x̂·Σ(g·x̂))``; for layer normalization γ varies along ``axes``.

Parameters ``gamma`` / ``beta`` (and ``mean`` / ``var`` for inference) may be ``None`` (no scale /
no offset), may have the "parameter shape" (the sizes of the axes along which they vary, e.g.
``(C,)``), or may already have the broadcast shape (``x.ndim`` dimensions, 1 elsewhere). Their
gradients come back in their own shape and dtype; they are computed in ``x``'s dtype (a float64
parameter never upcasts float32 data).
"""

from __future__ import annotations

import math

from .. import backend as B
from ..backend import jit
from .ops import _t, unbroadcast
from .tensor import Tensor, is_grad_enabled, make

__all__ = ["batch_norm_train", "batch_norm_infer", "layer_norm", "normalize_axes"]


# --------------------------------------------------------------------------- helpers


def normalize_axes(axes, ndim: int, who: str = "normalization") -> tuple:
    """``axes`` (an int or a sequence of ints, negative allowed) as a sorted tuple of distinct
    non-negative axes of an ``ndim``-dimensional array; a clear ``ValueError`` otherwise."""
    if axes is None:
        raise ValueError(f"{who}: axes must be given (an int or a tuple of ints), got None")
    items = tuple(axes) if isinstance(axes, (tuple, list)) else (axes,)
    out = []
    for a in items:
        if isinstance(a, bool) or not hasattr(a, "__index__"):
            raise ValueError(f"{who}: axes must be integers, got {axes!r}")
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{who}: axis {a} is out of range for an input of rank {ndim} "
                             f"(valid axes are {-ndim}..{ndim - 1})")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: repeated axis in {axes!r}")
    if not out:
        raise ValueError(f"{who}: axes must name at least one axis, got {axes!r}")
    return tuple(sorted(out))


def _param(p, x_shape, varying: tuple, dtype, who: str, name: str):
    """``p`` (Tensor/array/None) as (Tensor, array broadcastable against x in x's dtype)."""
    if p is None:
        return None, None
    p = _t(p)
    broadcast = tuple(n if i in varying else 1 for i, n in enumerate(x_shape))
    compact = tuple(x_shape[i] for i in varying)
    data = p.data
    if tuple(data.shape) == broadcast:
        pass
    elif tuple(data.shape) == compact:
        data = data.reshape(broadcast)
    else:
        raise ValueError(f"{who}: {name} must have shape {compact} (or {broadcast}) for an input of shape "
                         f"{tuple(x_shape)}, got {tuple(data.shape)}")
    if data.dtype != dtype:
        data = data.astype(dtype)
    return p, data


def _grad_for(p: Tensor, grad_broadcast):
    """A gradient computed in the broadcast shape (and x's dtype), in ``p``'s own shape and dtype."""
    if p is None or not p.requires_grad:
        return None
    grad = grad_broadcast.reshape(p.shape)
    return grad if grad.dtype == p.dtype else grad.astype(p.dtype)


def _moments(xd, axes, epsilon):
    """Mean, biased variance (both keepdims), 1/sqrt(var + eps) and x̂ over ``axes``; two-pass."""
    xp = B.xp
    mean = xd.mean(axis=axes, keepdims=True)
    centered = xd - mean
    var = (centered * centered).mean(axis=axes, keepdims=True)
    inv_std = 1 / xp.sqrt(var + epsilon)
    return mean, var, inv_std, centered * inv_std


def _check_epsilon(epsilon, who):
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) and not hasattr(epsilon, "dtype"):
        raise ValueError(f"{who}: epsilon must be a non-negative number, got {epsilon!r}")
    epsilon = float(epsilon)
    if not epsilon >= 0 or not math.isfinite(epsilon):
        raise ValueError(f"{who}: epsilon must be a finite non-negative number, got {epsilon!r}")
    return epsilon


def _check_float(x: Tensor, who: str) -> None:
    if x.dtype.kind != "f":
        raise TypeError(f"{who}: expected a floating-point input, got dtype {x.dtype}")


# ------------------------------------------------------------------ batch norm, train


def _affine(xhat, gamma_b, beta_b):
    """gamma · x̂ + beta (either may be None); a new array even without both, so x̂ stays private to the backward."""
    if gamma_b is None and beta_b is None:
        return xhat.copy()
    out = xhat if gamma_b is None else xhat * gamma_b
    return out if beta_b is None else out + beta_b


def batch_norm_train(x, gamma, beta, axes, epsilon):
    """Batch normalization with the batch's own statistics (training mode).

    ``axes``: the reduction axes (all but the channel axis: ``(0,)`` for (N, C), ``(0, 1, 2)``
    for NHWC, ``(0, 2, 3)`` for NCHW). ``gamma`` / ``beta``: per-channel scale and offset
    (shape: the sizes of the other axes, e.g. ``(C,)``), or ``None``.

    Returns ``(y, batch_mean, batch_var)``: ``y`` the normalized Tensor (differentiable w.r.t.
    ``x``, ``gamma``, ``beta``), and the batch mean and the *biased* batch variance as plain
    arrays of the parameter shape (for the moving averages; they carry no gradient).
    """
    who = "batch_norm_train"
    x = _t(x)
    _check_float(x, who)
    epsilon = _check_epsilon(epsilon, who)
    axes = normalize_axes(axes, x.ndim, who)
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    n = math.prod(x.shape[i] for i in axes)
    if n == 0:
        raise ValueError(f"{who}: the reduction axes {axes} of an input of shape {x.shape} hold no element")
    gamma, gamma_b = _param(gamma, x.shape, kept, x.dtype, who, "gamma")
    beta, beta_b = _param(beta, x.shape, kept, x.dtype, who, "beta")

    parents = [x] + [p for p in (gamma, beta) if p is not None]
    compiled = _compiled_batch_norm(x, gamma_b, beta_b, axes, epsilon, parents)
    if compiled is not None:
        return compiled

    mean, var, inv_std, xhat = _moments(x.data, axes, epsilon)
    out = _affine(xhat, gamma_b, beta_b)

    def backward(g):
        g_sum = g.sum(axis=axes, keepdims=True)
        gx_sum = (g * xhat).sum(axis=axes, keepdims=True)
        grads = []
        if x.requires_grad:
            scale = inv_std if gamma_b is None else gamma_b * inv_std
            grads.append(scale * (g - (g_sum + xhat * gx_sum) / n))
        else:
            grads.append(None)
        if gamma is not None:
            grads.append(_grad_for(gamma, gx_sum))
        if beta is not None:
            grads.append(_grad_for(beta, g_sum))
        return tuple(grads)

    param_shape = tuple(x.shape[i] for i in kept)
    y = make(out, tuple(parents), backward)
    return y, mean.reshape(param_shape), var.reshape(param_shape)


def _channels_last(xd, axes) -> bool:
    """Whether the compiled batch-norm kernels may take ``xd``: statistics over every axis but the last of
    a non-empty C-contiguous array, with the compiled path on."""
    return (xd.ndim >= 1 and xd.size > 0 and axes == tuple(range(xd.ndim - 1)) and xd.flags.c_contiguous
            and jit.enabled())


def _row_arrays(xd, gamma_b, beta_b):
    """``(kernels, x as (rows, last axis), gamma, beta)`` for the kernels of ``backend.kernels.norm``
    (``gamma``, ``beta``: (last axis,), ones and zeros where the layer has none), or None where the compiled
    path cannot take the arrays."""
    xp = B.xp
    f = xd.shape[-1]
    x2 = xd.reshape(-1, f)
    gamma = xp.ones(f, xd.dtype) if gamma_b is None else gamma_b.reshape(f)
    beta = xp.zeros(f, xd.dtype) if beta_b is None else beta_b.reshape(f)
    kernels = jit.kernels("norm", x2, gamma, beta)
    return None if kernels is None else (kernels, x2, gamma, beta)


def _row_backward(x, parents, has_gamma, adjoint):
    """The backward of a compiled normalization over rows: ``adjoint(g2, want_dx, dx, g_sum, gx_sum)`` runs
    the kernel (``g_sum`` = Σ g and ``gx_sum`` = Σ g·x̂ per feature: the gradients of β and γ)."""
    xp = B.xp
    xd = x.data
    f = xd.shape[-1]
    gamma_t, beta_t = parents[1:1 + has_gamma], parents[1 + has_gamma:]

    def backward(g):
        g2 = xp.ascontiguousarray(g.reshape(-1, f), dtype=xd.dtype)
        dx = xp.empty_like(g2) if x.requires_grad else None
        g_sum, gx_sum = xp.empty(f, xd.dtype), xp.empty(f, xd.dtype)
        adjoint(g2, dx is not None, g2 if dx is None else dx, g_sum, gx_sum)
        grads = [None if dx is None else dx.reshape(xd.shape)]
        grads += [_grad_for(p, gx_sum) for p in gamma_t] + [_grad_for(p, g_sum) for p in beta_t]
        return tuple(grads)

    return backward


def _compiled_batch_norm(x, gamma_b, beta_b, axes, epsilon, parents):
    """:func:`batch_norm_train` for statistics over every axis but the last (channels last, or (N, C)) as
    the kernels of ``backend.kernels.norm``; None (the NumPy formulas run) for other axes, or when the
    compiled path is off or cannot take the arrays."""
    xp = B.xp
    xd = x.data
    arrays = _row_arrays(xd, gamma_b, beta_b) if _channels_last(xd, axes) else None
    if arrays is None:
        return None
    kernels, x2, gamma, beta = arrays
    c = x2.shape[1]
    out, xhat = xp.empty_like(x2), xp.empty_like(x2)
    mean, var, inv_std = (xp.empty(c, xd.dtype) for _ in range(3))
    kernels.batch_norm_forward(x2, gamma, beta, xd.dtype.type(epsilon), out, xhat, mean, var, inv_std)
    scale = inv_std if gamma_b is None else gamma * inv_std
    backward = _row_backward(x, parents, gamma_b is not None,
                             lambda g2, want_dx, dx, g_sum, gx_sum:
                             kernels.batch_norm_backward(g2, xhat, scale, want_dx, dx, g_sum, gx_sum))
    return make(out.reshape(xd.shape), tuple(parents), backward), mean, var


# -------------------------------------------------------------- batch norm, inference


def batch_norm_infer(x, mean, var, gamma, beta, epsilon, axes=None):
    """Batch normalization with given statistics (inference): ``γ·(x − mean)/sqrt(var + ε) + β``.

    An affine map of ``x``. ``axes``: the reduction axes, as for :func:`batch_norm_train`
    (default: all but the last axis, i.e. channels last); ``mean``, ``var``, ``gamma`` and ``beta``
    vary along the other axes (shape ``(C,)`` typically; ``gamma`` / ``beta`` may be ``None``).
    Gradients flow to ``x``, ``gamma`` and ``beta`` (and to ``mean`` / ``var`` if they are Tensors
    that require one: dmean = −Σ g·γ/σ, dvar = −½ Σ g·γ·(x − mean)/σ³).
    """
    who = "batch_norm_infer"
    x = _t(x)
    _check_float(x, who)
    epsilon = _check_epsilon(epsilon, who)
    axes = tuple(range(x.ndim - 1)) if axes is None else normalize_axes(axes, x.ndim, who)
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    if mean is None or var is None:
        raise ValueError(f"{who}: mean and var are required")
    mean, mean_b = _param(mean, x.shape, kept, x.dtype, who, "mean")
    var, var_b = _param(var, x.shape, kept, x.dtype, who, "var")
    gamma, gamma_b = _param(gamma, x.shape, kept, x.dtype, who, "gamma")
    beta, beta_b = _param(beta, x.shape, kept, x.dtype, who, "beta")

    xp = B.xp
    inv_std = 1 / xp.sqrt(var_b + epsilon)
    scale = inv_std if gamma_b is None else gamma_b * inv_std
    xd = x.data
    kernels = None
    if _channels_last(xd, axes):  # one compiled pass
        c = xd.shape[-1]
        x2 = xd.reshape(-1, c)
        flat = [mean_b.reshape(c), scale.reshape(c),
                xp.zeros(c, xd.dtype) if beta_b is None else beta_b.reshape(c)]
        kernels = jit.kernels("norm", x2, *flat)
    if kernels is not None:
        out = xp.empty_like(xd)
        kernels.batch_norm_affine(x2, *flat, out.reshape(-1, c))
        centered = None
        if is_grad_enabled() and (var.requires_grad or (gamma is not None and gamma.requires_grad)):
            # now, not in the backward: the statistics may be a layer's moving averages, updated in place
            centered = xp.empty_like(xd)
            kernels.batch_norm_affine(x2, flat[0], xp.ones(c, xd.dtype), xp.zeros(c, xd.dtype),
                                      centered.reshape(-1, c))
    else:
        centered = xd - mean_b
        out = centered * scale
        if beta_b is not None:
            out = out + beta_b

    parents = [x, mean, var] + [p for p in (gamma, beta) if p is not None]

    def backward(g):
        grads = [g * scale if x.requires_grad else None]
        grads.append(_grad_for(mean, unbroadcast(-g * scale, mean_b.shape)) if mean.requires_grad else None)
        grads.append(_grad_for(var, unbroadcast(g * centered * scale * (-0.5) * inv_std * inv_std, var_b.shape))
                     if var.requires_grad else None)
        if gamma is not None:
            grads.append(_grad_for(gamma, unbroadcast(g * centered * inv_std, gamma_b.shape))
                         if gamma.requires_grad else None)
        if beta is not None:
            grads.append(_grad_for(beta, unbroadcast(g, beta_b.shape)) if beta.requires_grad else None)
        return tuple(grads)

    return make(out, tuple(parents), backward)


# ------------------------------------------------------------------------ layer norm


def _compiled_layer_norm(x, gamma_b, beta_b, axes, epsilon, parents):
    """:func:`layer_norm` over the last axis alone as the kernels of ``backend.kernels.norm`` (one row at a
    time: its statistics, then its output; NumPy made a dozen passes with temporaries); None (the NumPy
    formulas run) for other axes, or when the compiled path is off or cannot take the arrays."""
    xp = B.xp
    xd = x.data
    usable = xd.size > 0 and axes == (xd.ndim - 1,) and xd.flags.c_contiguous and jit.enabled()
    arrays = _row_arrays(xd, gamma_b, beta_b) if usable else None
    if arrays is None:
        return None
    kernels, x2, gamma, beta = arrays
    out, xhat = xp.empty_like(x2), xp.empty_like(x2)
    inv_std = xp.empty(x2.shape[0], xd.dtype)
    kernels.layer_norm_forward(x2, gamma, beta, xd.dtype.type(epsilon), out, xhat, inv_std)
    backward = _row_backward(x, parents, gamma_b is not None,
                             lambda g2, want_dx, dx, g_sum, gx_sum:
                             kernels.layer_norm_backward(g2, xhat, inv_std, gamma, want_dx, dx, g_sum, gx_sum))
    return make(out.reshape(xd.shape), tuple(parents), backward)


def layer_norm(x, gamma, beta, axes, epsilon):
    """Layer normalization: statistics over ``axes`` per sample (e.g. ``(-1,)``, or ``(1, 2, 3)``
    for a whole image), then ``γ·x̂ + β`` with ``gamma`` / ``beta`` varying along ``axes``
    (shape: the sizes of those axes; or ``None``). Returns the output Tensor.
    """
    who = "layer_norm"
    x = _t(x)
    _check_float(x, who)
    epsilon = _check_epsilon(epsilon, who)
    axes = normalize_axes(axes, x.ndim, who)
    n = math.prod(x.shape[i] for i in axes)
    if n == 0:
        raise ValueError(f"{who}: the normalized axes {axes} of an input of shape {x.shape} hold no element")
    gamma, gamma_b = _param(gamma, x.shape, axes, x.dtype, who, "gamma")
    beta, beta_b = _param(beta, x.shape, axes, x.dtype, who, "beta")
    parents = [x] + [p for p in (gamma, beta) if p is not None]
    compiled = _compiled_layer_norm(x, gamma_b, beta_b, axes, epsilon, parents)
    if compiled is not None:
        return compiled

    _, _, inv_std, xhat = _moments(x.data, axes, epsilon)
    out = _affine(xhat, gamma_b, beta_b)

    def backward(g):
        grads = []
        if x.requires_grad:
            gxhat = g if gamma_b is None else g * gamma_b
            s1 = gxhat.sum(axis=axes, keepdims=True)
            s2 = (gxhat * xhat).sum(axis=axes, keepdims=True)
            grads.append(inv_std * (gxhat - (s1 + xhat * s2) / n))
        else:
            grads.append(None)
        if gamma is not None:
            grads.append(_grad_for(gamma, unbroadcast(g * xhat, gamma_b.shape)) if gamma.requires_grad else None)
        if beta is not None:
            grads.append(_grad_for(beta, unbroadcast(g, beta_b.shape)) if beta.requires_grad else None)
        return tuple(grads)

    return make(out, tuple(parents), backward)

