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
from .utils.registry import Registry

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


class Constraint:
    """Base class: ``__call__(w) -> array`` (the identity here) and ``get_config()``."""

    def __call__(self, w):
        return w

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


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
            raise ValueError(f"MinMaxNorm: need min_value <= max_value, got min_value={min_value!r}, "
                             f"max_value={max_value!r}")
        self.rate = _number(rate, "rate", "MinMaxNorm")
        self.axis = _axis(axis)

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = self.rate * B.xp.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (B.epsilon() + norms))

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": _config_axis(self.axis)}


# Function-style names (Keras exports the lowercase names as aliases of the classes).
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm


# ---------------------------------------------------------------- names and configs


def serialize(constraint):
    """``{'class_name': ..., 'config': {...}}`` for a constraint object; a named function gives its name."""
    if constraint is None:
        return None
    if hasattr(constraint, "get_config") and not isinstance(constraint, type):
        return {"class_name": type(constraint).__name__, "config": constraint.get_config()}
    name = getattr(constraint, "__name__", None)
    if name is None or name == "<lambda>":
        raise ValueError(f"constraints.serialize: cannot serialize {constraint!r}: not a constraint object "
                         "with get_config() nor a named function")
    return name


def _build(obj, config: dict):
    if isinstance(obj, type):
        return obj.from_config(config) if hasattr(obj, "from_config") else obj(**config)
    if config:
        raise ValueError(f"constraints: {obj!r} is a function; it takes no config, got {config!r}")
    return obj


def deserialize(config, custom_objects: dict | None = None):
    """The constraint described by ``config``: a name (defaults) or ``{'class_name', 'config'}``."""
    if isinstance(config, str):
        return _build(CONSTRAINTS.lookup(config, custom_objects=custom_objects), {})
    if isinstance(config, dict):
        if "class_name" not in config:
            raise ValueError(f"constraints.deserialize: a config dict needs a 'class_name' key, got {config!r}")
        inner = config.get("config") or {}
        if not isinstance(inner, dict):
            raise ValueError(f"constraints.deserialize: 'config' must be a dict, got {inner!r}")
        return _build(CONSTRAINTS.lookup(config["class_name"], custom_objects=custom_objects), dict(inner))
    raise ValueError(
        f"constraints.deserialize: expected a name or a {{'class_name', 'config'}} dict, got {config!r}")


def get(identifier, custom_objects: dict | None = None):
    """Resolve a constraint: a name, a config dict, a class (its defaults), a callable
    (returned as is) or None."""
    if identifier is None:
        return None
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier, custom_objects=custom_objects)
    if isinstance(identifier, type):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        f"Could not interpret constraint identifier {identifier!r} (type {type(identifier).__name__}): "
        "expected a name such as 'max_norm', a Constraint, a callable, a config dict or None")


__all__ = [
    "Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm", "max_norm", "non_neg", "unit_norm",
    "min_max_norm", "get", "serialize", "deserialize", "CONSTRAINTS",
]
