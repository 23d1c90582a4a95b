"""The optional compiled-kernel path: numba kernels for the work NumPy does in many passes.

NumPy's BLAS calls use every core, but its elementwise loops, strided copies and scatters run on
one core, pass over memory once per ufunc, and allocate temporaries. Where that dominates a step
(max pooling and its gradient, col2im, the activation gradients, the LSTM gate math, optimizer
updates), a kernel compiled with numba does the same work in one pass over memory, on the calling
thread (serial: see ``kernels.JIT_OPTIONS``; BLAS keeps the cores, and :mod:`.parallel` may call the
kernels from its threads, since they release the GIL). Each kernel lives in
``shenjing.backend.kernels.<family>`` and has a NumPy twin at its call site: the NumPy code is the
reference, the tests check that both agree, and every call site falls back to it whenever the
compiled path is off.

The path is on when all of these hold:

- numba is installed (``pip install shenjing[fast]``); it is imported on first use only, so
  ``import shenjing`` stays fast;
- the array backend is NumPy (CuPy runs its own kernels);
- the environment variable ``SHENJING_JIT`` (read at the first use, and again after
  ``set_enabled(None)``) is not ``0``, and :func:`set_enabled` has not turned the path off.

Kernels are compiled on their first call for each dtype (float32, float64) and cached on disk
(numba's ``cache=True``), so only the first run on a machine pays the compile time. One family is
not numba's: ``kernels.microkernel`` holds register-blocked float32 loops written as LLVM IR with
llvmlite (which numba brings), compiled once per process: the convolution's products and the LSTM's
steps; ``kernels.tiles`` runs large float32 matrix products on the CPU's matrix unit (AMX), where there
is one (``parallel.matmul``).
"""

from __future__ import annotations

import importlib
import os

_state: dict = {"numba": None, "override": None, "environment": None, "modules": {}}
_backend = importlib.import_module(__package__)  # its ``xp`` is read per call: set_backend rebinds it

JIT_DTYPES = ("float32", "float64")
"""The dtypes the kernels are compiled for; arrays of any other dtype take the NumPy path."""

SMALL_ELEMENTS = 256
"""Kernels that call the C library's ``log1p`` once per element (the sigmoid cross-entropy) serve
arrays up to this size only: beyond it NumPy's SIMD ``log1p`` outruns them (measured crossover near
300 float32 elements), while below it NumPy's cost is its eight ufunc calls."""


def numba_available() -> bool:
    """Whether numba can be imported (imports it once; the answer is cached)."""
    if _state["numba"] is None:
        try:
            import numba  # noqa: F401
        except Exception:  # ImportError, or a numba that does not match this NumPy
            _state["numba"] = False
        else:
            _state["numba"] = True
    return _state["numba"]


def enabled() -> bool:
    """Whether the compiled path is on (see the module docstring)."""
    if _backend.xp.__name__ != "numpy":
        return False
    wanted = _state["override"]
    if wanted is None:
        wanted = _state["environment"]
        if wanted is None:  # read once (a call costs a few µs, and every op asks), until set_enabled(None)
            wanted = os.environ.get("SHENJING_JIT", "1").strip().lower() not in ("0", "false", "no", "off")
            _state["environment"] = wanted
    return wanted and numba_available()


def set_enabled(value) -> None:
    """Turn the compiled path on (True), off (False), or back to the environment's choice (None: it
    reads ``SHENJING_JIT`` again)."""
    _state["override"] = None if value is None else bool(value)
    _state["environment"] = None


def kernels(family: str, *arrays):
    """The kernel module ``shenjing.backend.kernels.<family>`` when the compiled path is on and the
    ``arrays`` the kernels would get are :func:`usable`; else None (the caller runs its NumPy twin)."""
    if not enabled() or (arrays and not usable(*arrays)):
        return None
    module = _state["modules"].get(family)
    if module is None:
        module = importlib.import_module(f"{__package__}.kernels.{family}")
        _state["modules"][family] = module
    return module


_DTYPE_CHARS = "fd"  # JIT_DTYPES as type codes (``dtype.name`` is a slow Python property)


def usable(*arrays) -> bool:
    """Whether every array is C-contiguous, not 0-d (numba takes those for scalars), with one dtype
    the kernels are compiled for."""
    dtype = arrays[0].dtype
    if dtype.char not in _DTYPE_CHARS:
        return False
    for a in arrays:  # a plain loop: every op asks, and a generator costs more than the checks
        if a.dtype != dtype or not a.ndim or not a.flags.c_contiguous:
            return False
    return True
