"""The array backend: the one place where shenjing meets its array module.

Numeric code never imports NumPy itself; it reaches the array module through
``backend.xp`` (``from shenjing import backend as B`` then ``B.xp.exp(...)``),
so that the same code runs on CuPy once ``set_backend('cupy')`` rebinds it.

This module also holds the global numeric settings Keras users know:
``floatx`` (float32 by default), ``epsilon`` (1e-7), ``image_data_format``
and the seeded random generator behind every initializer and dropout mask.
"""

from __future__ import annotations

import json
import math
import operator
import os

import numpy

xp = numpy
"""The active array module (``numpy`` or ``cupy``)."""

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_rng = numpy.random.default_rng()


def set_backend(name: str) -> None:
    """Switch the array module: ``'numpy'`` or ``'cupy'``."""
    global xp
    if name == "numpy":
        xp = numpy
    elif name == "cupy":
        try:
            import cupy
        except ImportError as err:  # pragma: no cover - depends on the machine
            raise ImportError("set_backend('cupy') needs the optional extra: pip install shenjing[cupy]") from err
        xp = cupy
    else:
        raise ValueError(f"set_backend: unknown backend {name!r}; expected 'numpy' or 'cupy'")


def backend() -> str:
    """The name of the active array module."""
    return xp.__name__


def floatx() -> str:
    """The default float type of weights and data: ``'float32'`` unless changed."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the default float type (``'float16'``, ``'float32'`` or ``'float64'``)."""
    global _FLOATX
    if value not in ("float16", "float32", "float64"):
        raise ValueError(f"set_floatx: expected 'float16', 'float32' or 'float64', got {value!r}")
    _FLOATX = value


def epsilon() -> float:
    """The fuzz factor used by losses and metrics to keep logs and divisions finite."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    _EPSILON = float(value)


def image_data_format() -> str:
    """``'channels_last'`` (N, H, W, C) or ``'channels_first'`` (N, C, H, W)."""
    return _IMAGE_DATA_FORMAT


def set_image_data_format(value: str) -> None:
    global _IMAGE_DATA_FORMAT
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"set_image_data_format: expected 'channels_last' or 'channels_first', got {value!r}")
    _IMAGE_DATA_FORMAT = value


def shenjing_home() -> str:
    """The shenjing home directory: ``$SHENJING_HOME`` or ``~/.shenjing``."""
    return os.environ.get("SHENJING_HOME") or os.path.join(os.path.expanduser("~"), ".shenjing")


def _read_config() -> None:
    """Apply ``shenjing.json`` from the home directory, if present (like ``keras.json``)."""
    path = os.path.join(shenjing_home(), "shenjing.json")
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a valid JSON config file ({err})") from err
    if "floatx" in config:
        set_floatx(config["floatx"])
    if "epsilon" in config:
        set_epsilon(config["epsilon"])
    if "image_data_format" in config:
        set_image_data_format(config["image_data_format"])
    if "backend" in config:
        set_backend(config["backend"])


def rng() -> numpy.random.Generator:
    """The global host random generator, reseeded by :func:`set_random_seed`."""
    return _rng


def generator(seed=None) -> numpy.random.Generator:
    """The global host generator when ``seed`` is None, else a new generator seeded with ``seed``
    (an int or a sequence of ints): what a seeded initializer, dropout or augmentation draws from."""
    if seed is None:
        return _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, tuple, list)) and not hasattr(seed, "__index__"):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return numpy.random.default_rng(seed)


KEEP_BITS = 16
"""Random bits per entry of a dropout mask (:func:`random_bits`): the keep probability is
``1 − rate`` to within 2**-17, far below the mask's own sampling noise."""


def random_bits(generator, shape) -> numpy.ndarray:
    """:data:`KEEP_BITS` uniformly random bits per entry of ``shape``: a host uint16 array, four
    entries per 64-bit draw of the generator's bit stream. Drawing dropout masks this way is about
    four times faster than uniform float32 values (``generator.random`` takes 32 bits per entry)."""
    shape = tuple(int(s) for s in shape)
    size = math.prod(shape)
    raw = generator.bit_generator.random_raw(-(-size // 4))
    return raw.view(numpy.uint16)[:size].reshape(shape)


def keep_threshold(rate: float) -> int:
    """Entries of :func:`random_bits` at or above this value are kept: a fraction ``1 − rate``."""
    return min(round(rate * (1 << KEEP_BITS)), (1 << KEEP_BITS) - 1)


def keep_mask(generator, shape, rate: float) -> numpy.ndarray:
    """A boolean host mask of ``shape``: True (keep) with probability ``1 − rate`` per entry — the
    draw behind every dropout layer."""
    return random_bits(generator, shape) >= keep_threshold(rate)


def dropout_mask(generator, shape, rate: float, dtype):
    """:func:`keep_mask` as a multiplier on the array backend: 1/(1 − rate) where kept, 0 where dropped,
    of ``dtype`` (the recurrent and embedding dropouts, which reuse one mask across steps or rows)."""
    return asarray(keep_mask(generator, shape, rate) / (1.0 - rate)).astype(dtype)


def set_random_seed(seed: int) -> None:
    """Seed every random source shenjing uses, so that one call makes a run reproducible."""
    global _rng
    import random

    random.seed(seed)
    numpy.random.seed(seed % 2**32)
    _rng = numpy.random.default_rng(seed)
    if xp is not numpy:  # pragma: no cover - GPU only
        xp.random.seed(seed % 2**32)


def clear_session() -> None:
    """Reset the default layer names (``dense``, ``dense_1``, …) as Keras's ``clear_session`` does."""
    from ..utils.naming import reset_names

    reset_names()


def to_host(array):
    """Return ``array`` as a NumPy array (a no-op on the CPU)."""
    if xp is numpy or isinstance(array, numpy.ndarray):
        return numpy.asarray(array)
    return xp.asnumpy(array)  # pragma: no cover - GPU only


def asarray(data, dtype=None):
    """Convert ``data`` (array, list, scalar, host array) to an array of the active module."""
    return xp.asarray(data, dtype=dtype)


VECTOR_ALIGNMENT = 64
"""Bytes: the width of an AVX-512 vector and of a cache line."""


def aligned_empty(shape, dtype, host=False):
    """``xp.empty(shape, dtype)`` (C order) whose data starts on a :data:`VECTOR_ALIGNMENT` boundary;
    with ``host`` a NumPy array whatever the backend (for the CPU's compiled kernels).

    The compiled kernels load and store whole 64-byte vectors; from an address that is not a multiple of
    64 every such access touches two cache lines. NumPy's allocations are only 16-byte aligned (malloc's),
    so an array's alignment, and with it a kernel's speed, would differ from run to run. Measured on the
    char-LSTM's kernels (two threads): alone, with all their arrays 32 bytes off against aligned, forward
    10.1 → 8.9 ms and backward 11.8 → 10.1 ms, most of it from the packed recurrent kernel that every step
    reads from L2; in the training step, forward 11.5 → 8.7 ms and backward 13.2 → 11.5 ms (the step, in
    the benchmark: 40 → 36 ms). A convolution's kernel matrix, small enough to stay in L1, showed no
    difference, and a different allocation size can itself move a workload's timings by a few percent
    (malloc then reuses other, colder blocks): used where measured to pay. On CuPy every allocation is
    aligned already."""
    if xp is not numpy and not host:
        return xp.empty(shape, dtype=dtype)
    dtype = numpy.dtype(dtype)
    try:
        shape = (operator.index(shape),)
    except TypeError:
        shape = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"aligned_empty: negative dimensions are not allowed, got shape {shape}")
    size = math.prod(shape) * dtype.itemsize
    raw = numpy.empty(size + VECTOR_ALIGNMENT, dtype=numpy.uint8)
    start = -raw.ctypes.data % VECTOR_ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)


def is_float_dtype(dtype) -> bool:
    return numpy.dtype(dtype).kind == "f"


def last_axis_sums(a):
    """``a.sum(axis=-1)`` of a float array as one product with ones (``a @ ones``), and
    :func:`first_axis_sums` ``a.sum(axis=0)`` (``ones @ a``): BLAS reads the array once, on every core,
    where NumPy's reductions run on one (and down the rows of a matrix, one row at a time). The
    callers choose the shapes where that pays; the dtypes are chosen here: float32 and float64 only,
    since other floats (float16, longdouble) have no BLAS and NumPy's own matmul is slower than its sum."""
    if a.dtype not in BLAS_FLOATS:
        return a.sum(axis=-1)
    return a @ xp.ones(a.shape[-1], dtype=a.dtype)


def first_axis_sums(a):
    """``a.sum(axis=0)`` of a float array as ``ones @ a`` (see :func:`last_axis_sums`)."""
    if a.dtype not in BLAS_FLOATS:
        return a.sum(axis=0)
    return xp.ones(a.shape[0], dtype=a.dtype) @ a


BLAS_FLOATS = (numpy.float32, numpy.float64)
"""The dtypes BLAS multiplies (NumPy's matmul of any other runs its own, slower loops)."""


FINITE_BY_PRODUCT = 1 << 16
"""From this many values of a contiguous float32/float64 array of two or more dimensions (rows of 16 values
or more) :func:`all_finite` reads it once, through a BLAS matrix-vector product, instead of through
``isfinite`` and its boolean array."""


def all_finite(array) -> bool:
    """Whether every value of ``array`` is finite (no NaN, no ±inf); True for non-float arrays.

    A large contiguous float array is summed row by row as one matrix-vector product with ones: a NaN or
    an infinity in a row makes its sum NaN or infinite (x·1 = x, and NaN and inf survive every addition
    but inf − inf, which is NaN), so finite sums prove finite values. Only sums that overflow to inf
    from finite values (rows of values near the dtype's largest) are false alarms, which the exact check
    then clears. BLAS reads the array on every core at once: the MLP's 20,000 × 784 inputs (float32) are
    checked in 1.1 ms against 4.5 ms for ``isfinite(x).all()`` (2 threads).
    """
    if array.dtype.kind != "f":
        return True
    if array.ndim > 1 and array.size >= FINITE_BY_PRODUCT and array.dtype in BLAS_FLOATS \
            and array.flags.c_contiguous:
        rows = array.reshape(array.shape[0], -1)
        if rows.shape[1] >= 16:
            with numpy.errstate(over="ignore", invalid="ignore"):  # the sums of bad rows, expected here
                sums = last_axis_sums(rows)
            if bool(xp.isfinite(sums).all()):
                return True
    return bool(xp.isfinite(array).all())


# ------------------------------------------------------------------------- performance

CACHE_BLOCK_BYTES = 3 << 19
"""The size of the blocks the cache-blocked kernels (the im2col and direct convolutions, pooling) work on
at a time, as each counts a sample's bytes (im2col: its columns; the direct convolution: input and output;
pooling: its input): one block's working set stays in one core's L2 cache, output rows included. Measured
on a Xeon with 2 MB of L2 per core, each of the two threads running its own blocks: mnist_cnn's
(26, 26, 32) → 64 convolution (663 KB of columns a sample) builds the columns of 1,000 samples in 16.6 ms
in blocks of one sample against 32 ms in blocks of four. With 1.5 MB (two samples) instead of 3 MB (four),
interleaved runs: mnist_cnn inference at batch 1000 6,639 → 6,937 samples/s, training 1,884 → 1,975; the
seed CNN's training unchanged (20,254 against 20,158)."""


def block_rows(bytes_per_row: int, rows: int) -> int:
    """How many of ``rows`` (samples) to process at a time when one costs ``bytes_per_row`` of
    working memory: enough to fill :data:`CACHE_BLOCK_BYTES`; all of them on a GPU (CuPy), where
    blocking only adds kernel launches."""
    if xp is not numpy:
        return max(rows, 1)
    return max(1, min(rows, CACHE_BLOCK_BYTES // max(int(bytes_per_row), 1)))


def tune_allocator(enable: bool = True) -> bool:
    """Keep freed large blocks in the process heap instead of returning them to the kernel.

    A training step allocates the same large temporaries (activations, gradients, im2col
    columns) every step. glibc's malloc serves blocks above its mmap threshold with fresh
    ``mmap`` pages and unmaps them on ``free``, so every step page-faults all of that memory in
    again. Raising the mmap and trim thresholds (``mallopt``; the same as the environment
    variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``) makes freed blocks reusable,
    the job a caching allocator does in other frameworks: measured −15% CPU time per mnist_cnn
    training step, with the same peak memory. Done on import on Linux with glibc unless
    ``SHENJING_TUNE_MALLOC=0``; returns whether the setting was applied.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    mmap_bytes, trim_bytes = (512 << 20, 512 << 20) if enable else (128 << 10, 128 << 10)
    return bool(mallopt(m_mmap_threshold, mmap_bytes)) and bool(mallopt(m_trim_threshold, trim_bytes))


_read_config()
if os.environ.get("SHENJING_TUNE_MALLOC", "1") != "0":
    tune_allocator()
