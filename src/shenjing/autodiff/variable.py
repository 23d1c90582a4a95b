"""Variables: the weights a model learns."""

from __future__ import annotations

from .. import backend as B
from .tensor import Tensor, _as_data


class Variable(Tensor):
    """A leaf tensor that holds a weight: named, trainable or frozen, optionally constrained.

    Optimizers update ``data`` in place (so the array's identity, and any view
    of it, survives a step); ``assign`` replaces the values, keeping the shape.
    ``constraint`` (a callable array -> array) is applied after each update.
    """

    __slots__ = ("trainable", "constraint", "regularizer")

    def __init__(self, value, name: str | None = None, trainable: bool = True, constraint=None,
                 regularizer=None, dtype=None):
        data = _as_data(value, dtype or B.floatx())
        source = value.data if isinstance(value, Tensor) else value
        if isinstance(source, B.xp.ndarray) and B.xp.may_share_memory(data, source):
            data = data.copy()  # the variable owns its array: in-place updates must not write into the caller's
        super().__init__(data, requires_grad=trainable, name=name)
        self.trainable = trainable
        self.constraint = constraint
        self.regularizer = regularizer

    @property
    def value(self):
        return self.data

    def assign(self, value) -> None:
        """Copy ``value`` into the variable; its shape must match."""
        value = _as_data(value)
        if tuple(value.shape) != tuple(self.data.shape):
            raise ValueError(
                f"Variable {self.name!r}: cannot assign a value of shape {tuple(value.shape)} "
                f"to a variable of shape {tuple(self.data.shape)}")
        self.data[...] = value

    def __setattr__(self, key, value):
        if key == "trainable" and hasattr(self, "requires_grad"):
            object.__setattr__(self, "requires_grad", bool(value))
        object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        return f"<Variable {self.name!r} shape={self.shape} dtype={self.dtype} trainable={self.trainable}>"
