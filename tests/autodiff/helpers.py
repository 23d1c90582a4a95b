"""Shared helpers of the autodiff tests."""

import numpy as np
import pytest

from shenjing.autodiff import Tensor, check_gradients
from shenjing.backend import jit

GRAD_TOL = 1e-6


def assert_gradients(fn, *arrays, tol=GRAD_TOL):
    """Central differences agree with backward (float64) to a relative error below ``tol``."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    err = check_gradients(fn, *arrays)
    assert err < tol, f"gradient check: relative error {err:.3g} >= {tol}"


def away_from_zero(rng, shape, low=0.3, high=2.0):
    """Random values with |x| in [low, high]: no kink of abs/relu/max near them."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def distinct_pair(rng, shape_a, shape_b, margin=0.05):
    """Two arrays whose broadcast elements differ by at least ``margin`` (no ties in maximum/minimum)."""
    while True:
        a = rng.uniform(-2, 2, size=shape_a)
        b = rng.uniform(-2, 2, size=shape_b)
        if np.abs(np.subtract(a, b)).min() > margin:
            return a, b


def backward_grads(out, g=None):
    """The gradients an op's recorded backward returns for the upstream gradient ``g`` (ones by default)."""
    g = np.ones(out.shape, dtype=out.dtype) if g is None else g
    return out._backward(g)


def leaves(*arrays, dtype=None):
    return [Tensor(np.asarray(a, dtype=dtype) if dtype else a, requires_grad=True) for a in arrays]


def on_both_paths(request):
    """Body of a module's autouse fixture (``params=KERNEL_PATHS``): the test runs on the NumPy reference
    path and on the compiled (numba) kernels; yields the path's name."""
    if request.param == "compiled" and not jit.numba_available():
        pytest.skip("numba is not installed: the compiled path is off")
    jit.set_enabled(request.param == "compiled")
    yield request.param
    jit.set_enabled(None)


KERNEL_PATHS = ["numpy", "compiled"]
