"""Variables: the weights a model learns."""

from __future__ import annotations

from .. import backend as B
from .tensor import Tensor, _as_data

#: bumped whenever something that decides which regularization penalties a model has changes (a variable's
#: regularizer here; the layers, their weights and their sub-layers in ``layers.base``): the layers' cached
#: lists of penalty sources start over when it moves
_structure_generation = [0]


#: bumped whenever anything that may decide which ops a model's step runs changes: the structure above, any
#: attribute of a layer (``Layer.__setattr__``), a variable's ``trainable``; a recorded training step
#: (``models.step_replay``) is replayed only in the generation it was recorded in
graph_generation = [0]


def structure_changed() -> None:
    """Invalidate the layers' cached lists of penalty sources (see ``Layer.losses``) and recorded steps."""
    _structure_generation[0] += 1
    graph_generation[0] += 1


class Variable(Tensor):
    """A leaf tensor that holds a weight: named, trainable or frozen, optionally constrained.

    Optimizers update ``data`` in place (so the array's identity, and any view
    of it, survives a step); ``assign`` replaces the values, keeping the shape.
    ``constraint`` (a callable array -> array) is applied after each update.

    ``order``: the memory layout of ``data``, "C" (row-major, the default) or "F"
    (column-major: a 2-D weight stored as its transpose would be in C). It
    changes speed, and at most the rounding of BLAS's sums: Dense keeps its
    large (in, units) kernels in "F", PyTorch's (units, in) layout, where one
    sample's product with them is a multithreaded BLAS gemv (a third of the
    time of the row-major one). The layout survives ``assign`` and in-place
    updates, and an optimizer keeps its slots in it.
    """

    __slots__ = ("_trainable", "constraint", "_regularizer")

    def __init__(self, value, name: str | None = None, trainable: bool = True, constraint=None,
                 regularizer=None, dtype=None, order: str = "C"):
        if order not in ("C", "F"):
            raise ValueError(f"Variable {name!r}: order must be 'C' or 'F', got {order!r}")
        data = _as_data(value, dtype or B.floatx())
        source = value.data if isinstance(value, Tensor) else value
        owned = not (isinstance(source, B.xp.ndarray) and B.xp.may_share_memory(data, source))
        if not (owned and (data.flags.c_contiguous if order == "C" else data.flags.f_contiguous)):
            # the variable owns its array, in its layout: in-place updates must not write into the caller's
            data = data.copy(order=order)
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

    @property
    def regularizer(self):
        """A callable ``variable -> scalar Tensor`` whose penalty is added to the loss, or None."""
        return self._regularizer

    @regularizer.setter
    def regularizer(self, value) -> None:
        self._regularizer = value
        structure_changed()

    @property
    def trainable(self):
        """Whether the variable is trained; setting it sets ``requires_grad`` too."""
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self.requires_grad = bool(value)
        self._trainable = value
        graph_generation[0] += 1

    def __repr__(self) -> str:
        return f"<Variable {self.name!r} shape={self.shape} dtype={self.dtype} trainable={self.trainable}>"
