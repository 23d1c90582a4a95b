"""Weight initializers (the ``keras.initializers`` module).

An initializer is called as ``init(shape, dtype=None)`` and returns an array of the
backend module (``dtype`` defaults to ``floatx()``). Random initializers draw on the
host and copy the result to the active array module:

* with ``seed=None`` they draw from the global generator ``backend.rng()``, so
  ``set_random_seed(n)`` makes a whole run reproducible and successive calls differ;
* with an integer ``seed`` every call returns the same values (a fresh generator
  seeded with ``seed`` is made per call), as in Keras.

Fans follow Keras: a dense kernel ``(in, out)`` has fan_in = in, fan_out = out; a
convolution kernel ``(*spatial, in_channels, out_channels)`` has
fan_in = receptive · in_channels and fan_out = receptive · out_channels with
receptive = Π spatial; a vector ``(n,)`` has fan_in = fan_out = n; a scalar 1.
"""

from __future__ import annotations

import math
import numbers

from . import backend as B
from .utils.registry import Configurable, Registry

INITIALIZERS = Registry("initializer")

# std of a standard normal truncated to [-2, 2]: VarianceScaling divides by it so that
# its truncated draws keep the intended variance.
TRUNCATED_NORMAL_STD = 0.87962566103423978


# ---------------------------------------------------------------------------- helpers


def _shape(shape, who: str) -> tuple:
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    if not isinstance(shape, (str, bytes)) and hasattr(shape, "__iter__"):
        shape = tuple(shape)
    if not isinstance(shape, tuple) or not all(
        isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise ValueError(f"{who}: shape must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(n) for n in shape)


def _dtype(dtype, who: str, need_float: bool):
    dtype = B.floatx() if dtype is None else dtype
    if need_float and not B.is_float_dtype(dtype):
        raise ValueError(f"{who}: a random initializer needs a floating dtype, got dtype={dtype!r}")
    return dtype


def _check_seed(seed, who: str):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"{who}: seed must be None or a non-negative int, got seed={seed!r}")
    return int(seed)


def _generator(seed):
    """The global generator for ``seed=None``, else a fresh one seeded with ``seed``."""
    return B.generator(seed)


def _to_backend(host_array, dtype):
    return B.xp.asarray(host_array.astype(dtype, copy=False))


def _truncated_standard_normal(generator, shape):
    """Standard normal draws with every value beyond ±2 redrawn (vectorised: one redraw per round)."""
    z = generator.standard_normal(shape)
    bad = (z > 2) | (z < -2)
    count = int(bad.sum())
    while count:
        z[bad] = generator.standard_normal(count)
        bad = (z > 2) | (z < -2)
        count = int(bad.sum())
    return z


def compute_fans(shape) -> tuple:
    """(fan_in, fan_out) of a weight of ``shape`` (see the module docstring for the rule)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _non_negative(value, name: str, who: str, positive: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{who}: {name} must be a finite {kind} number, got {name}={value!r}")
    return float(value)


# ------------------------------------------------------------------------ base class


class Initializer(Configurable):
    """Base class: subclasses implement ``__call__(shape, dtype=None)`` and ``get_config()``."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype=None)")

    def clone(self):
        return type(self).from_config(self.get_config())


# ------------------------------------------------------------------------- constants


@INITIALIZERS.register("Zeros", "zeros", "zero")
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return B.xp.zeros(_shape(shape, "Zeros"), dtype=_dtype(dtype, "Zeros", False))


@INITIALIZERS.register("Ones", "ones", "one")
class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return B.xp.ones(_shape(shape, "Ones"), dtype=_dtype(dtype, "Ones", False))


@INITIALIZERS.register("Constant", "constant")
class Constant(Initializer):
    """Every entry equal to ``value`` (a number, or an array broadcastable to the shape)."""

    def __init__(self, value=0.0):
        if hasattr(value, "tolist"):  # arrays and NumPy scalars become plain (JSON-able) python values
            value = B.to_host(value).tolist() if hasattr(value, "shape") else value.tolist()
        elif isinstance(value, tuple):
            value = list(value)
        self.value = value

    def __call__(self, shape, dtype=None):
        shape = _shape(shape, "Constant")
        dtype = _dtype(dtype, "Constant", False)
        value = B.xp.asarray(self.value, dtype=dtype)
        try:
            return B.xp.broadcast_to(value, shape).copy()
        except ValueError as err:
            raise ValueError(
                f"Constant: value of shape {tuple(value.shape)} cannot be broadcast to the requested shape {shape}"
            ) from err

    def get_config(self) -> dict:
        return {"value": self.value}


# ------------------------------------------------------------------------ random ones


@INITIALIZERS.register("RandomNormal", "random_normal", "normal")
class RandomNormal(Initializer):
    """Normal draws with ``mean`` and ``stddev`` (``'normal'`` is the Keras 1 name)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = float(mean)
        self.stddev = _non_negative(stddev, "stddev", "RandomNormal")
        self.seed = _check_seed(seed, "RandomNormal")

    def __call__(self, shape, dtype=None):
        shape, dtype = _shape(shape, "RandomNormal"), _dtype(dtype, "RandomNormal", True)
        z = _generator(self.seed).standard_normal(shape)
        return _to_backend(self.mean + self.stddev * z, dtype)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@INITIALIZERS.register("RandomUniform", "random_uniform", "uniform")
class RandomUniform(Initializer):
    """Uniform draws on [minval, maxval) (``'uniform'`` is the Keras 1 name)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = float(minval), float(maxval)
        if not self.minval <= self.maxval:
            raise ValueError(f"RandomUniform: need minval <= maxval, got minval={minval!r}, maxval={maxval!r}")
        self.seed = _check_seed(seed, "RandomUniform")

    def __call__(self, shape, dtype=None):
        shape, dtype = _shape(shape, "RandomUniform"), _dtype(dtype, "RandomUniform", True)
        u = _generator(self.seed).uniform(self.minval, self.maxval, shape)
        return _to_backend(u, dtype)

    def get_config(self) -> dict:
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


@INITIALIZERS.register("TruncatedNormal", "truncated_normal")
class TruncatedNormal(Initializer):
    """Normal draws with ``mean`` and ``stddev``, values more than 2 stddev from the mean redrawn.

    The result's standard deviation is about 0.88 · stddev.
    """

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = float(mean)
        self.stddev = _non_negative(stddev, "stddev", "TruncatedNormal")
        self.seed = _check_seed(seed, "TruncatedNormal")

    def __call__(self, shape, dtype=None):
        shape, dtype = _shape(shape, "TruncatedNormal"), _dtype(dtype, "TruncatedNormal", True)
        z = _truncated_standard_normal(_generator(self.seed), shape)
        return _to_backend(self.mean + self.stddev * z, dtype)

    def get_config(self) -> dict:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


@INITIALIZERS.register("VarianceScaling", "variance_scaling")
class VarianceScaling(Initializer):
    """Draws whose variance is ``scale / n``, n = fan_in, fan_out or their average (``mode``).

    ``distribution``: ``'truncated_normal'`` (std √(scale/n) / 0.8796…, truncated at 2 std, so the
    truncated draws have variance scale/n), ``'untruncated_normal'`` (std √(scale/n)) or
    ``'uniform'`` (on ±√(3·scale/n)). ``'normal'`` is accepted as the old name of ``'truncated_normal'``.
    """

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        who = type(self).__name__
        self.scale = _non_negative(scale, "scale", who, positive=True)
        mode = str(mode).lower()
        if mode not in self.MODES:
            raise ValueError(f"{who}: mode must be one of {', '.join(self.MODES)}; got mode={mode!r}")
        distribution = str(distribution).lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(
                f"{who}: distribution must be one of {', '.join(self.DISTRIBUTIONS)}; got distribution={distribution!r}"
            )
        self.mode, self.distribution = mode, distribution
        self.seed = _check_seed(seed, who)

    def _n(self, shape) -> float:
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        return max(1.0, float(n))

    def __call__(self, shape, dtype=None):
        who = type(self).__name__
        shape, dtype = _shape(shape, who), _dtype(dtype, who, True)
        variance = self.scale / self._n(shape)
        generator = _generator(self.seed)
        if self.distribution == "truncated_normal":
            values = (math.sqrt(variance) / TRUNCATED_NORMAL_STD) * _truncated_standard_normal(generator, shape)
        elif self.distribution == "untruncated_normal":
            values = math.sqrt(variance) * generator.standard_normal(shape)
        else:
            limit = math.sqrt(3.0 * variance)
            values = generator.uniform(-limit, limit, shape)
        return _to_backend(values, dtype)

    def get_config(self) -> dict:
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution, "seed": self.seed}


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling whose scale/mode/distribution are fixed; only ``seed`` is configurable."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"

    def __init__(self, seed=None):
        super().__init__(scale=self._SCALE, mode=self._MODE, distribution=self._DISTRIBUTION, seed=seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


@INITIALIZERS.register("GlorotUniform", "glorot_uniform")
class GlorotUniform(_FixedVarianceScaling):
    """Glorot/Xavier uniform: U(±√(6 / (fan_in + fan_out)))."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "uniform"


@INITIALIZERS.register("GlorotNormal", "glorot_normal")
class GlorotNormal(_FixedVarianceScaling):
    """Glorot/Xavier normal: truncated normal with variance 2 / (fan_in + fan_out)."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_avg", "truncated_normal"


@INITIALIZERS.register("HeUniform", "he_uniform")
class HeUniform(_FixedVarianceScaling):
    """He uniform: U(±√(6 / fan_in))."""

    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "uniform"


@INITIALIZERS.register("HeNormal", "he_normal")
class HeNormal(_FixedVarianceScaling):
    """He normal: truncated normal with variance 2 / fan_in."""

    _SCALE, _MODE, _DISTRIBUTION = 2.0, "fan_in", "truncated_normal"


@INITIALIZERS.register("LecunUniform", "lecun_uniform")
class LecunUniform(_FixedVarianceScaling):
    """LeCun uniform: U(±√(3 / fan_in))."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "uniform"


@INITIALIZERS.register("LecunNormal", "lecun_normal")
class LecunNormal(_FixedVarianceScaling):
    """LeCun normal: truncated normal with variance 1 / fan_in."""

    _SCALE, _MODE, _DISTRIBUTION = 1.0, "fan_in", "truncated_normal"


@INITIALIZERS.register("Orthogonal", "orthogonal")
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain``, from the QR decomposition of a normal matrix.

    A shape of 2 or more dims is treated as a (Π shape[:-1], shape[-1]) matrix; its columns
    are orthonormal when it has at least as many rows as columns, else its rows are.
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain = float(gain)
        self.seed = _check_seed(seed, "Orthogonal")

    def __call__(self, shape, dtype=None):
        shape, dtype = _shape(shape, "Orthogonal"), _dtype(dtype, "Orthogonal", True)
        if len(shape) < 2:
            raise ValueError(f"Orthogonal: the weight must have at least 2 dims, got shape {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        if rows == 0 or cols == 0:
            return B.xp.zeros(shape, dtype=dtype)
        tall = (max(rows, cols), min(rows, cols))
        a = B.xp.asarray(_generator(self.seed).standard_normal(tall))
        q, r = B.xp.linalg.qr(a)
        # Make the decomposition unique (and Q Haar-distributed): R with a positive diagonal.
        signs = B.xp.sign(B.xp.diagonal(r))
        signs = B.xp.where(signs == 0, 1.0, signs)
        q = q * signs
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain, "seed": self.seed}


@INITIALIZERS.register("Identity", "identity")
class Identity(Initializer):
    """``gain`` times the identity matrix (2-D weights only; a non-square one gets ones on its diagonal)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        shape, dtype = _shape(shape, "Identity"), _dtype(dtype, "Identity", False)
        if len(shape) != 2:
            raise ValueError(f"Identity: only 2-D weights can be initialized to the identity, got shape {shape}")
        return (self.gain * B.xp.eye(shape[0], shape[1])).astype(dtype)

    def get_config(self) -> dict:
        return {"gain": self.gain}


# Function-style names (Keras exports the lowercase names as aliases of the classes).
zeros = Zeros
ones = Ones
constant = Constant
random_normal = RandomNormal
random_uniform = RandomUniform
truncated_normal = TruncatedNormal
variance_scaling = VarianceScaling
glorot_uniform = GlorotUniform
glorot_normal = GlorotNormal
he_uniform = HeUniform
he_normal = HeNormal
lecun_uniform = LecunUniform
lecun_normal = LecunNormal
orthogonal = Orthogonal
identity = Identity


# ---------------------------------------------------------------- names and configs


def serialize(initializer):
    """``{'class_name', 'config'}`` for an object with ``get_config``; a named function gives its name."""
    return INITIALIZERS.serialize(initializer)


def deserialize(config, custom_objects: dict | None = None):
    """The initializer described by ``config``: a name (defaults) or ``{'class_name', 'config'}``."""
    return INITIALIZERS.deserialize(config, custom_objects, instantiate=None)


def get(identifier, custom_objects: dict | None = None):
    """Resolve a name, a config dict, a class (its defaults), a callable (as is) or None."""
    return INITIALIZERS.get(identifier, custom_objects, example="glorot_uniform", instantiate=None)


__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "Orthogonal",
    "Identity",
    "compute_fans",
    "get",
    "serialize",
    "deserialize",
    "INITIALIZERS",
    "zeros",
    "ones",
    "constant",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_uniform",
    "lecun_normal",
    "orthogonal",
    "identity",
]
