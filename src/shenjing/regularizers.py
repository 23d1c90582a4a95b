"""Weight regularizers (the ``keras.regularizers`` module).

A regularizer maps a weight (a :class:`~shenjing.autodiff.Tensor`, usually a
``Variable``) to a scalar penalty Tensor built from autodiff ops, so that the
penalty's gradient flows into the weight when it is added to the loss:

* ``L1(l1)``:  l1 · Σ|w|           (gradient l1 · sign(w))
* ``L2(l2)``:  l2 · Σ w²           (gradient 2 · l2 · w)
* ``L1L2(l1, l2)``: both
* ``OrthogonalRegularizer(factor, mode)``: factor · mean |cos| between distinct rows (or columns)

The Keras 2 function forms ``l1(l=0.01)``, ``l2(l=0.01)`` and ``l1_l2(l1=0.01, l2=0.01)``
return instances.
"""

from __future__ import annotations

import math
import numbers

from . import backend as B
from .autodiff import ops
from .autodiff.tensor import Tensor
from .utils.registry import Configurable, Registry

REGULARIZERS = Registry("regularizer")


def _factor(value, name: str, who: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{who}: {name} must be a finite non-negative number, got {name}={value!r}")
    return float(value)


def _weight(x) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if not B.is_float_dtype(x.dtype):
        x = ops.cast(x, B.floatx())
    return x


def _zero(w: Tensor) -> Tensor:
    return Tensor(B.xp.zeros((), dtype=w.dtype))


class Regularizer(Configurable):
    """Base class: ``__call__(weight) -> scalar Tensor`` and ``get_config()``."""

    def __call__(self, weight) -> Tensor:
        return _zero(_weight(weight))


def _const(value: float, w: Tensor) -> Tensor:
    """``value`` as a constant of ``w``'s dtype (made directly, never rounded through float32)."""
    return Tensor(B.xp.asarray(value, dtype=w.dtype))


def _l1_term(l1: float, w: Tensor) -> Tensor:
    return ops.sum(ops.abs(w)) * _const(l1, w)


def _l2_term(l2: float, w: Tensor) -> Tensor:
    return ops.sum(ops.square(w)) * _const(l2, w)


@REGULARIZERS.register("L1L2")
class L1L2(Regularizer):
    """l1 · Σ|w| + l2 · Σw² (a zero factor leaves its term out)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _factor(l1, "l1", "L1L2", 0.0)
        self.l2 = _factor(l2, "l2", "L1L2", 0.0)

    def __call__(self, weight) -> Tensor:
        w = _weight(weight)
        penalty = None
        if self.l1:
            penalty = _l1_term(self.l1, w)
        if self.l2:
            term = _l2_term(self.l2, w)
            penalty = term if penalty is None else penalty + term
        return _zero(w) if penalty is None else penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


@REGULARIZERS.register("L1")
class L1(Regularizer):
    """l1 · Σ|w|; its gradient is l1 · sign(w) (0 at w = 0)."""

    def __init__(self, l1=0.01):
        self.l1 = _factor(l1, "l1", "L1", 0.01)

    def __call__(self, weight) -> Tensor:
        w = _weight(weight)
        return _l1_term(self.l1, w) if self.l1 else _zero(w)

    def get_config(self) -> dict:
        return {"l1": self.l1}


@REGULARIZERS.register("L2")
class L2(Regularizer):
    """l2 · Σw²; its gradient is 2 · l2 · w."""

    def __init__(self, l2=0.01):
        self.l2 = _factor(l2, "l2", "L2", 0.01)

    def __call__(self, weight) -> Tensor:
        w = _weight(weight)
        return _l2_term(self.l2, w) if self.l2 else _zero(w)

    def get_config(self) -> dict:
        return {"l2": self.l2}


@REGULARIZERS.register("OrthogonalRegularizer", "orthogonal_regularizer")
class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (``mode='rows'``) or columns (``mode='columns'``) of a 2-D weight to be orthogonal.

    Penalty: factor · mean over distinct pairs (i, j) of |⟨v_i, v_j⟩| with the v unit-normalized
    (vectors of norm below 1e-6 are divided by 1e-6 instead of their norm).
    """

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = _factor(factor, "factor", "OrthogonalRegularizer", 0.01)
        if mode not in ("rows", "columns"):
            raise ValueError(f"OrthogonalRegularizer: mode must be 'rows' or 'columns', got mode={mode!r}")
        self.mode = mode

    def __call__(self, weight) -> Tensor:
        w = _weight(weight)
        if w.ndim != 2:
            raise ValueError(f"OrthogonalRegularizer: expects a 2-D weight, got shape {tuple(w.shape)}")
        if self.mode == "columns":
            w = ops.transpose(w)
        size = w.shape[0]
        if size < 2:
            return _zero(w)
        squared = ops.sum(ops.square(w), axis=1, keepdims=True)
        unit = w / ops.sqrt(ops.maximum(squared, _const(1e-12, w)))
        gram = ops.matmul(unit, ops.transpose(unit))
        off_diagonal = gram * Tensor(1 - B.xp.eye(size, dtype=w.dtype))
        pairs = size * (size - 1) / 2
        return ops.sum(ops.abs(off_diagonal)) * _const(self.factor * 0.5 / pairs, w)

    def get_config(self) -> dict:
        return {"factor": self.factor, "mode": self.mode}


# Keras 2 function forms (each returns an instance); the lowercase names also resolve in get().
@REGULARIZERS.register("l1")
def l1(l=0.01, **kwargs) -> L1:  # noqa: E741
    """``L1(l)`` (``l1=`` is accepted too)."""
    return L1(kwargs.pop("l1", l), **kwargs)


@REGULARIZERS.register("l2")
def l2(l=0.01, **kwargs) -> L2:  # noqa: E741
    """``L2(l)`` (``l2=`` is accepted too)."""
    return L2(kwargs.pop("l2", l), **kwargs)


@REGULARIZERS.register("l1_l2")
def l1_l2(l1=0.01, l2=0.01) -> L1L2:  # noqa: F811 (shadows the module-level names only inside)
    """``L1L2(l1, l2)`` with Keras 2's defaults of 0.01 for both."""
    return L1L2(l1=l1, l2=l2)


orthogonal_regularizer = OrthogonalRegularizer


# ---------------------------------------------------------------- names and configs


def serialize(regularizer):
    """``{'class_name', 'config'}`` for an object with ``get_config``; a named function gives its name."""
    return REGULARIZERS.serialize(regularizer)


def _build(obj, config: dict):
    """The Keras 2 factory functions l1/l2/l1_l2 take their config as arguments."""
    return obj(**config) if obj in (l1, l2, l1_l2) else REGULARIZERS.instantiate(obj, config)


def deserialize(config, custom_objects: dict | None = None):
    """The regularizer described by ``config``: a name (defaults) or ``{'class_name', 'config'}``."""
    return REGULARIZERS.deserialize(config, custom_objects, instantiate=_build)


def get(identifier, custom_objects: dict | None = None):
    """Resolve a name, a config dict, a class (its defaults), a callable (as is) or None."""
    return REGULARIZERS.get(identifier, custom_objects, example="l2", instantiate=_build)


__all__ = [
    "Regularizer",
    "L1",
    "L2",
    "L1L2",
    "OrthogonalRegularizer",
    "l1",
    "l2",
    "l1_l2",
    "orthogonal_regularizer",
    "get",
    "serialize",
    "deserialize",
    "REGULARIZERS",
]
