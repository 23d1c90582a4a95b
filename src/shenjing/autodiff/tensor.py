"""The Tensor and the tape: reverse-mode automatic differentiation.

A :class:`Tensor` wraps an array of the backend module. Every primitive op
(see :mod:`shenjing.autodiff.ops`) computes its output array and, when any
input requires a gradient and grad mode is on, records on the output its
parents and a ``backward`` closure: given the gradient of the output it
returns the gradients of the parents (the chain rule, derived by hand per op).

``loss.backward()`` orders the recorded graph topologically (iteratively, so
a chain of any length works), walks it from the output back to the leaves,
and accumulates gradients into the ``.grad`` of leaves that require one
(each leaf gets its own fresh, writable array of its own dtype).
A fresh graph is built at every step; after ``backward`` it is released
(``retain_graph=True`` keeps it), and back-propagating through a released
node again raises instead of silently returning a partial gradient.
"""

from __future__ import annotations

import contextlib
import sys

from .. import backend as B

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Run ops without recording them (inference): ``with no_grad(): y = model(x)``."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Re-enable recording inside a :func:`no_grad` block."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def _as_data(data, dtype=None):
    """The array held by ``data``; python floats and lists of them become ``floatx`` arrays."""
    if isinstance(data, Tensor):
        data = data.data
    xp = B.xp
    if not isinstance(data, xp.ndarray):
        typed = hasattr(data, "dtype")  # NumPy scalars and host arrays keep their dtype
        if dtype is not None and not typed:
            # straight to the requested dtype: a detour through floatx would round
            # a python float meant for float64 to float32 precision
            return xp.asarray(data, dtype=dtype)
        data = xp.asarray(data)
        if not typed and data.dtype.kind == "f":
            data = data.astype(B.floatx())
    if dtype is not None and data.dtype != dtype:
        data = data.astype(dtype)
    return data


class Tensor:
    """An array with an optional gradient, the node type of the autodiff tape.

    ``data``: the array (shape as given). ``grad``: after ``backward()``, the
    gradient of the differentiated scalar with respect to this tensor, same
    shape as ``data`` (leaves only). ``requires_grad``: whether gradients flow
    to it. ``_made_by``: None, or how an op made this output, for a consumer
    that fuses with it: ``("softmax", z, max, sum)`` / ``("sigmoid", z)`` (the
    losses then start from the logits ``z``; a softmax's row maximum and sum
    are reused), ``("rows", table, ids, table's array)``
    (an embedding lookup ``table[ids]``: a projection of it can project the
    table instead, see ``ops.gathered_rows``).
    """

    __slots__ = ("data", "grad", "requires_grad", "_parents", "_backward", "_made_by", "_keras_mask", "name",
                 "__weakref__")
    __array_priority__ = 1000  # make ndarray + Tensor call Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self.data = _as_data(data, dtype)
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._parents = ()
        self._backward = None
        self._made_by = None
        self._keras_mask = None
        self.name = name

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (and op outputs that record no graph)."""
        return self._backward is None

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({B.to_host(self.data)!r}{flag})"

    def numpy(self):
        """The data as a NumPy array (copied to the host on a GPU)."""
        return B.to_host(self.data)

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> Tensor:
        """A tensor sharing the data but cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self) -> None:
        self.grad = None

    # ---------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Back-propagate from this tensor, accumulating ``.grad`` into the leaves.

        ``grad`` is the gradient of some scalar with respect to this tensor;
        it defaults to 1 and may only be left out for a one-element tensor.
        """
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require a gradient (no input had requires_grad=True)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward(): grad can be implicit only for a scalar output, got shape {self.shape}")
            grad = B.xp.array(1, dtype=self.data.dtype)
            if self.data.ndim:
                grad = grad.reshape(self.data.shape)
        else:
            grad = _as_data(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): grad of shape {grad.shape} does not match the tensor's shape "
                                 f"{self.shape}")

        order = _topological_order(self)
        grads = {self: grad}  # keyed by node: a Tensor hashes (and compares) by identity
        pop, get = grads.pop, grads.get
        for node in reversed(order):
            g = pop(node, None)
            if g is None:
                continue
            backward_fn = node._backward
            if backward_fn is None:
                accumulate_leaf_gradient(node, g)
                continue
            parent_grads = backward_fn(g)
            for parent, pg in zip(node._parents, parent_grads):
                if pg is None or not parent.requires_grad:
                    continue
                if pg.shape != parent.data.shape:
                    raise RuntimeError(
                        f"backward(): {getattr(backward_fn, '__qualname__', 'an op')} returned a gradient "
                        f"of shape {pg.shape} for an input of shape {parent.data.shape}")
                previous = get(parent)
                grads[parent] = pg if previous is None else previous + pg
            parent_grads = pg = previous = None  # hold no gradient beyond the dict (see the leaf case)
            if not retain_graph:
                node._parents = ()
                node._backward = _released

    # --------------------------------------------------------------- operators
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, exponent):
        return ops.pow(self, exponent)

    def __rpow__(self, base):
        return ops.pow(base, self)

    def __neg__(self):
        return ops.neg(self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # comparisons give plain arrays: they have no gradient
    def __lt__(self, other):
        return self.data < _as_data(other)

    def __le__(self, other):
        return self.data <= _as_data(other)

    def __gt__(self, other):
        return self.data > _as_data(other)

    def __ge__(self, other):
        return self.data >= _as_data(other)

    __hash__ = object.__hash__

    # ------------------------------------------------------------- method forms
    def sum(self, axis=None, keepdims=False):
        return ops.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return ops.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False):
        return ops.var(self, axis, keepdims)

    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)

    def transpose(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else (axes or None))

    @property
    def T(self):
        return ops.transpose(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def astype(self, dtype):
        return ops.cast(self, dtype)


def accumulate_leaf_gradient(leaf: Tensor, g) -> None:
    """Add ``g`` to ``leaf.grad``: a leaf's first gradient is always a fresh, writable array of the leaf's
    dtype (``g`` may be a read-only broadcast view, or the very array handed to another leaf), taken
    without a copy when it is one made for this leaf alone. The caller holds ``g`` under one name only."""
    if leaf.grad is None:
        dtype = leaf.data.dtype
        if dtype.kind != "f":
            leaf.grad = g.copy()
        elif (g.dtype == dtype and g.base is None and _refcount(g) == _SOLE_ARGUMENT
              and getattr(g.flags, "writeable", True)):
            leaf.grad = g
        else:
            leaf.grad = g.astype(dtype)
    else:
        leaf.grad = leaf.grad + g


def make(data, parents: tuple, backward) -> Tensor:
    """Wrap an op's output ``data``; record ``parents`` and ``backward`` when a gradient is needed.

    ``backward(g)`` must return one gradient (or None) per parent, each of the
    parent's shape.
    """
    out = _new_tensor(Tensor)
    out.data = data
    out.grad = None
    out._made_by = None
    out._keras_mask = None
    out.name = None
    if _grad_enabled:
        for p in parents:
            if p.requires_grad:
                out.requires_grad = True
                out._parents = parents
                out._backward = backward
                return out
    out.requires_grad = False
    out._parents = ()
    out._backward = None
    return out


_new_tensor = object.__new__


def _sole_argument_count():
    """What ``sys.getrefcount`` reports, inside a function, for an argument its caller holds under one local
    name only (as :func:`accumulate_leaf_gradient` is called), or None where reference counts cannot tell
    that (no getrefcount, a free-threaded build, or counts that miss a reference)."""
    count = getattr(sys, "getrefcount", None)
    if count is None or not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None

    def inside(obj):
        return count(obj)

    probe = object()
    alone = inside(probe)
    held = [probe]
    return alone if inside(probe) == alone + 1 and held else None


# A gradient array whose only reference is the caller's local name is exclusively the leaf's: it is
# adopted as ``.grad`` instead of copied (CPython's reference counts; where they cannot tell, it is
# always copied).
_SOLE_ARGUMENT = _sole_argument_count()
_refcount = sys.getrefcount if _SOLE_ARGUMENT is not None else (lambda obj: -1)


def _released(g):
    """Stands in for the ``backward`` of a node whose graph an earlier ``backward()`` freed."""
    raise RuntimeError(
        "backward(): the graph through this tensor was already freed by an earlier backward(); "
        "pass retain_graph=True to the first call to back-propagate twice, or detach() the tensor "
        "to use it as a constant")


def _topological_order(root: Tensor) -> list:
    """Nodes reachable from ``root`` (requiring grad), parents before children; no recursion.

    A depth-first post-order that visits the parents of a node last to first (a leaf is done as
    soon as it is reached).
    """
    order = []
    append = order.append
    visited = {root}
    add = visited.add
    nodes = [root]
    pending = [reversed(root._parents)]  # per open node, the parents still to visit
    while pending:
        for parent in pending[-1]:
            if parent.requires_grad and parent not in visited:
                add(parent)
                if parent._parents:
                    nodes.append(parent)
                    pending.append(reversed(parent._parents))
                    break
                append(parent)
        else:
            pending.pop()
            append(nodes.pop())
    return order


def as_tensor(x, dtype=None) -> Tensor:
    """``x`` if it is a Tensor already, else a constant Tensor of it."""
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype == dtype else ops.cast(x, dtype)
    return Tensor(x, dtype=dtype)


from . import ops  # noqa: E402  (ops needs Tensor defined first)
