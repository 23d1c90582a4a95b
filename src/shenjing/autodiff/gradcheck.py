"""Finite-difference gradient checking: the tool that proves each hand-derived backward."""

from __future__ import annotations

import itertools

from .. import backend as B
from .tensor import Tensor


def numerical_gradient(f, arrays, eps: float = 1e-5) -> list:
    """Central differences (f(x + eps) − f(x − eps)) / 2eps of the scalar ``f(*arrays)``
    with respect to each array in ``arrays`` (float64 arrays, perturbed in place and restored).

    The default step 1e-5 sits near the float64 optimum (machine epsilon ** (1/3), about 6e-6):
    a smaller step lets the rounding in ``f`` dominate (about 1e-16 * |f| / eps), a larger one
    the truncation error (eps ** 2 * |third derivative| / 6).
    """
    grads = []
    for array in arrays:
        grad = B.xp.zeros_like(array)
        for i in itertools.product(*map(range, array.shape)):  # by index: any memory layout is perturbed in place
            original = array[i].copy()
            array[i] = original + eps
            plus = float(f(*arrays))
            array[i] = original - eps
            minus = float(f(*arrays))
            array[i] = original
            grad[i] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def relative_error(analytic, numeric) -> float:
    """max |a − n| / max(|a| + |n|, 1e-8) — the usual scale-free gradient-check error."""
    xp = B.xp
    diff = xp.abs(analytic - numeric)
    scale = xp.maximum(xp.abs(analytic) + xp.abs(numeric), 1e-8)
    return float((diff / scale).max()) if diff.size else 0.0


def check_gradients(fn, *arrays, eps: float = 1e-5, seed_grad=None) -> float:
    """Largest relative error between backward and central differences for ``fn(*tensors)``.

    ``fn`` maps Tensors to a Tensor of any shape; it is reduced to a scalar by a
    fixed random weighting (so every output element's gradient is exercised).
    ``arrays`` should be float64.
    """
    xp = B.xp
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = seed_grad if seed_grad is not None else xp.asarray(
        B.rng().standard_normal(out.shape)).astype(out.dtype)
    (out * Tensor(weights)).sum().backward()

    def scalar(*values):
        return float((fn(*[Tensor(v) for v in values]).data * weights).sum())

    numeric = numerical_gradient(scalar, [t.data.copy(order="K") for t in tensors], eps)
    errors = [relative_error(t.grad if t.grad is not None else xp.zeros_like(t.data), n)
              for t, n in zip(tensors, numeric)]
    return max(errors) if errors else 0.0
