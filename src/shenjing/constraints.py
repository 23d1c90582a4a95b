"""Weight constraints (the ``keras.constraints`` module).

A constraint maps a weight's array to a new array of the same shape and dtype;
the optimizer applies ``variable.constraint`` to ``variable.data`` after every
update. Constraints work on plain arrays (no gradient: they are projections,
not part of the graph). ``axis`` names the axis (or axes) along which norms are
taken: for a dense kernel ``(in, out)`` the default ``axis=0`` constrains each
unit's incoming weight vector; for a channels-last conv kernel
``(rows, cols, in, out)`` use ``axis=[0, 1, 2]``.
"""

from __future__ import annotations

import math
import numbers

from . import backend as B
from .autodiff.tensor import Tensor
from .utils.registry import Configurable, Registry

CONSTRAINTS = Registry("constraint")


def _array(w):
    if isinstance(w, Tensor):
        w = w.data
    return w if isinstance(w, B.xp.ndarray) else B.xp.asarray(w, dtype=B.floatx())


def _axis(axis):
    if isinstance(axis, (list, tuple)):
        return tuple(int(a) for a in axis)
    return int(axis)


def _config_axis(axis):
    return list(axis) if isinstance(axis, tuple) else axis


def _number(value, name: str, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{who}: {name} must be a finite non-negative number, got {name}={value!r}")
    return float(value)


def _norms(w, axis):
    xp = B.xp
    return xp.sqrt(xp.sum(w * w, axis=axis, keepdims=True))


class Constraint(Configurable):
    """Base class: ``__call__(w) -> array`` (the identity here) and ``get_config()``."""

    def __call__(self, w):
        return w


@CONSTRAINTS.register("MaxNorm", "max_norm", "maxnorm")
class MaxNorm(Constraint):
    """Rescale each weight vector (norm over ``axis``) whose L2 norm exceeds ``max_value`` down to it.

    w · clip(‖w‖, 0, max_value) / (ε + ‖w‖), ε = ``backend.epsilon()``.
    """

    def __init__(self, max_value=2, axis=0):
        self.max_value = _number(max_value, "max_value", "MaxNorm")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = B.xp.clip(norms, 0, self.max_value)
        return w * (desired / (B.epsilon() + norms))

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": _config_axis(self.axis)}


@CONSTRAINTS.register("NonNeg", "non_neg", "nonneg")
class NonNeg(Constraint):
    """Zero every negative entry."""

    def __call__(self, w):
        w = _array(w)
        return w * (w >= 0).astype(w.dtype)


@CONSTRAINTS.register("UnitNorm", "unit_norm", "unitnorm")
class UnitNorm(Constraint):
    """Divide each weight vector (norm over ``axis``) by its L2 norm: w / (ε + ‖w‖)."""

    def __init__(self, axis=0):
        self.axis = _axis(axis)

    def __call__(self, w):
        w = _array(w)
        return w / (B.epsilon() + _norms(w, self.axis))

    def get_config(self) -> dict:
        return {"axis": _config_axis(self.axis)}


@CONSTRAINTS.register("MinMaxNorm", "min_max_norm")
class MinMaxNorm(Constraint):
    """Move each weight vector's L2 norm (over ``axis``) towards [min_value, max_value].

    desired = rate · clip(‖w‖, min_value, max_value) + (1 − rate) · ‖w‖, and
    w ← w · desired / (ε + ‖w‖). ``rate=1`` enforces the bounds at once; a smaller rate
    moves a fraction of the way at each step.
    """

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = _number(min_value, "min_value", "MinMaxNorm")
        self.max_value = _number(max_value, "max_value", "MinMaxNorm")
        if self.min_value > self.max_value:
            raise ValueError(
                f"MinMaxNorm: need min_value <= max_value, got min_value={min_value!r}, max_value={max_value!r}"
            )
        self.rate = _number(rate, "rate", "MinMaxNorm")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = self.rate * B.xp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (B.epsilon() + norms))

    def get_config(self) -> dict:
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": _config_axis(self.axis),
        }


# Function-style names (Keras exports the lowercase names as aliases of the classes).
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm


# ---------------------------------------------------------------- names and configs


def serialize(constraint):
    """``{'class_name', 'config'}`` for an object with ``get_config``; a named function gives its name."""
    return CONSTRAINTS.serialize(constraint)


def deserialize(config, custom_objects: dict | None = None):
    """The constraint described by ``config``: a name (defaults) or ``{'class_name', 'config'}``."""
    return CONSTRAINTS.deserialize(config, custom_objects, instantiate=None)


def get(identifier, custom_objects: dict | None = None):
    """Resolve a name, a config dict, a class (its defaults), a callable (as is) or None."""
    return CONSTRAINTS.get(identifier, custom_objects, example="max_norm", instantiate=None)


__all__ = [
    "Constraint",
    "MaxNorm",
    "NonNeg",
    "UnitNorm",
    "MinMaxNorm",
    "max_norm",
    "non_neg",
    "unit_norm",
    "min_max_norm",
    "get",
    "serialize",
    "deserialize",
    "CONSTRAINTS",
]
