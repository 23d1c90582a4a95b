"""Record the ops of a computation once and replay them on new inputs.

A training step of a small model spends most of its time in Python around the arithmetic: the layers'
``__call__``, the loss's checks and conversions, the graph's topological sort. When the same model
meets batches of one shape, the ops it runs are the same every step; only the input arrays change. So
a step can be recorded once, as a list of op calls, and replayed: each op function is called again on
the new arrays, in the same order, with the same constant arguments, building the same graph (the ops
run as ever, with their own checks and backward closures), and the backward walks it in the order
recorded. Replay gives results bit for bit equal to running the code again.

That holds only for code whose ops depend on nothing but their inputs and constants that stay the
same: the caller decides what may be recorded (``models.training`` records a step of layers and
losses known to be so). A recording refuses (:class:`Unreplayable`) what it can see to be unsafe: a
tensor made by code that is not an op (a constant that may hold data), an array that is not one of
the inputs, an op run under ``no_grad``.

Every primitive op is wrapped by :func:`recorded`; outside a recording the wrapper only calls the op.
A replay calls the op functions it recorded, as they were then: patching a module's op afterwards (a mock,
a profiler's wrapper) does not reach a replayed computation.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from .. import backend as B
from . import tensor as _tensor
from .tensor import Tensor, _topological_order, make

_recording = None  # the Recording in progress, or None


class Unreplayable(Exception):
    """Raised while building a :class:`Plan` from a recording that replay could not reproduce."""


class Recording:
    """The top-level op calls of a computation in one thread: ``(op, args, kwargs, output, grad_enabled)``
    each. Ops that an op calls itself are part of it, not recorded; ops of other threads are not seen."""

    def __init__(self):
        self.calls = []
        self.depth = 0
        self.thread = threading.get_ident()


def recorded(op):
    """Make ``op`` (a function of Tensors and constants returning a Tensor, or a tuple or list of
    them) visible to a :func:`recording`."""

    @functools.wraps(op)
    def call(*args, **kwargs):
        rec = _recording
        if rec is None or rec.depth or rec.thread != threading.get_ident():
            return op(*args, **kwargs)
        rec.depth = 1
        try:
            out = op(*args, **kwargs)
        finally:
            rec.depth = 0
        rec.calls.append((op, args, kwargs, out, _tensor._grad_enabled))
        return out

    call.op = op
    return call


def record_module_ops(namespace: dict, helpers) -> None:
    """Wrap every public function defined in the module of ``namespace`` (its ``globals()``) with
    :func:`recorded`, but the ``helpers``, which compute on arrays."""
    module = namespace["__name__"]
    for name, fn in list(namespace.items()):
        if (callable(fn) and getattr(fn, "__module__", None) == module and not name.startswith("_")
                and name not in helpers and not isinstance(fn, type)):
            namespace[name] = recorded(fn)


_start_lock = threading.Lock()


def start_recording():
    """A new :class:`Recording` of this thread's op calls, or None when one is in progress already (one
    at a time: the wrappers look in one place). End it with :func:`stop_recording`."""
    global _recording
    with _start_lock:
        if _recording is not None:
            return None
        _recording = Recording()
        return _recording


def stop_recording(rec: Recording) -> None:
    global _recording
    if _recording is rec:
        _recording = None


@contextlib.contextmanager
def recording():
    """Record the op calls made inside the block: ``with recording() as rec: ...``."""
    rec = start_recording()
    if rec is None:
        raise RuntimeError("recording(): a recording is already in progress")
    try:
        yield rec
    finally:
        stop_recording(rec)


class _Nested:
    """A list or tuple argument that holds tensors: rebuilt from the slots at every replay."""

    __slots__ = ("kind", "items")

    def __init__(self, kind, items):
        self.kind, self.items = kind, items

    def resolve(self, values):
        return self.kind(item.resolve(values) if isinstance(item, _Nested) else
                         values[item.index] if isinstance(item, _Slot) else item for item in self.items)


def _slots_in(nested: _Nested) -> list:
    out = []
    for item in nested.items:
        if isinstance(item, _Nested):
            out += _slots_in(item)
        elif isinstance(item, _Slot):
            out.append(item.index)
    return out


class _Slot:
    __slots__ = ("index",)

    def __init__(self, index):
        self.index = index


class Plan:
    """A recorded computation, replayable on new input arrays.

    ``Plan(recording, inputs, results, needed=None)``: ``inputs`` the arrays the computation was fed
    (tensors wrapping one of them, or the array itself, become inputs of the plan); ``results`` the
    tensors (or None) it produced that the caller wants back, each an op's output, an input or a
    variable; ``needed`` (one flag per result, all True by default): the results the caller will
    read. Ops that no needed result depends on are not replayed.
    Leaves that are :class:`~shenjing.autodiff.Variable` objects stay bound to the same objects (their
    current ``data`` is read at every replay). Raises :class:`Unreplayable` for anything else.
    """

    def __init__(self, rec: Recording, inputs, results, needed=None):
        from .variable import Variable

        self._values = []   # per slot: the bound object, None for inputs and op outputs
        self._inputs = []   # (slot, index of the input array, wrap in a Tensor)
        self._steps = []    # (op, args, positions, kwargs, kw_positions, output slot or slots)
        slot_of = {}        # id of a recorded tensor or array -> slot
        keep = []           # per slot, the recorded object (keeps the ids above unique)
        input_index = {id(a): i for i, a in enumerate(inputs) if a is not None}
        if len(input_index) != sum(a is not None for a in inputs):
            raise Unreplayable("one array is given as two inputs")
        variables = []

        def new_slot(obj, bound=None):
            slot_of[id(obj)] = len(self._values)
            keep.append(obj)
            self._values.append(bound)
            return len(self._values) - 1

        def slot(obj):
            found = slot_of.get(id(obj))
            if found is not None:
                return _Slot(found)
            if isinstance(obj, Tensor):
                if obj._parents or obj._backward is not None:
                    raise Unreplayable("a tensor made by an op that was not recorded")
                if isinstance(obj, Variable):
                    variables.append(obj)
                    return _Slot(new_slot(obj, obj))
                index = input_index.get(id(obj.data))
                if index is None or obj.requires_grad:
                    raise Unreplayable(f"a constant tensor of shape {obj.shape} that is not an input or a variable")
                s = new_slot(obj)
                self._inputs.append((s, index, True))
                return _Slot(s)
            index = input_index.get(id(obj))
            if index is None:
                raise Unreplayable(f"an array of shape {obj.shape} that is not an input")
            s = new_slot(obj)
            self._inputs.append((s, index, False))
            return _Slot(s)

        def convert(arg):
            if isinstance(arg, (Tensor, B.xp.ndarray)):
                return slot(arg)
            if isinstance(arg, (list, tuple)) and type(arg) in (list, tuple):
                items = [convert(a) for a in arg]
                if any(isinstance(a, (_Slot, _Nested)) for a in items):
                    return _Nested(type(arg), items)
            return arg

        for op, args, kwargs, out, grad_enabled in rec.calls:
            if not grad_enabled:
                raise Unreplayable(f"{op.__name__} ran under no_grad")
            args = [convert(a) for a in args]
            kwargs = {k: convert(v) for k, v in kwargs.items()}
            positions = [(i, a) for i, a in enumerate(args) if isinstance(a, (_Slot, _Nested))]
            kw_positions = [(k, a) for k, a in kwargs.items() if isinstance(a, (_Slot, _Nested))]
            for i, _ in positions:
                args[i] = None
            for k, _ in kw_positions:
                kwargs[k] = None
            positions = [(i, a.index if isinstance(a, _Slot) else a) for i, a in positions]
            kw_positions = [(k, a.index if isinstance(a, _Slot) else a) for k, a in kw_positions]
            if isinstance(out, Tensor):
                outs = new_slot(out)
            elif isinstance(out, (list, tuple)) and all(isinstance(t, Tensor) for t in out):
                outs = [new_slot(t) for t in out]
            else:
                raise Unreplayable(f"{op.__name__} returned {type(out).__name__}, not tensors")
            self._steps.append((op, args, positions, kwargs, kw_positions, outs))

        self._results = [None if t is None else slot(t).index for t in results]
        self._drop_unneeded([s for s, n in zip(self._results, needed or [True] * len(results)) if n])
        self._variables = variables
        self._grad_flags = [v.requires_grad for v in variables]
        self._root = self._schedule = None
        self._last = None
        self._recorded = keep  # per slot, the recorded object (until ``release``)

    def _drop_unneeded(self, needed: list) -> None:
        """Leave out the ops whose outputs no needed result depends on (ops that draw random numbers stay:
        the generator's stream must advance as it would have); their results come back as None."""
        live = {s for s in needed if s is not None}
        kept = []
        for step in reversed(self._steps):
            op, _, positions, _, kw_positions, outs = step
            if not (getattr(op, "draws_random", False) or
                    (outs in live if type(outs) is int else any(s in live for s in outs))):
                continue
            kept.append(step)
            for _, s in positions + kw_positions:
                live.update([s] if type(s) is int else _slots_in(s))
        self._steps = kept[::-1]
        self._results = [s if s in live else None for s in self._results]

    def set_backward_root(self, root: Tensor) -> None:
        """Record how a backward from ``root`` (a recorded result) walks the graph: per node, from the
        root back to the leaves, its slot and its parents' slots (None for a parent without gradient;
        the whole list None for a leaf)."""
        slots = {id(obj): i for i, obj in enumerate(self._recorded)}
        try:
            self._root = slots[id(root)]
            self._schedule = [(slots[id(node)], None if node._backward is None else
                               [slots[id(p)] if p.requires_grad else None for p in node._parents])
                              for node in reversed(_topological_order(root))]
        except KeyError:
            raise Unreplayable("the backward reaches a tensor that was not recorded") from None

    def release(self) -> None:
        """Drop the references to the recorded tensors (kept only while building)."""
        self._recorded = None

    def valid(self) -> bool:
        """False when a variable's ``requires_grad`` changed since the recording (the graph would differ)."""
        return [v.requires_grad for v in self._variables] == self._grad_flags

    def run(self, arrays) -> list:
        """Replay on ``arrays`` (the inputs, in the order of the recording): the results (tensors)."""
        values = self._values.copy()
        for s, index, wrap in self._inputs:
            values[s] = make(arrays[index], (), None) if wrap else arrays[index]
        for op, args, positions, kwargs, kw_positions, outs in self._steps:
            if positions:
                args = args.copy()
                for i, s in positions:
                    args[i] = values[s] if type(s) is int else s.resolve(values)
            if kw_positions:
                kwargs = kwargs.copy()
                for k, s in kw_positions:
                    kwargs[k] = values[s] if type(s) is int else s.resolve(values)
            out = op(*args, **kwargs)
            if type(outs) is int:
                values[outs] = out
            else:
                if len(out) != len(outs):
                    raise RuntimeError(f"replay: {op.__name__} returned {len(out)} tensors, recorded {len(outs)}")
                for s, t in zip(outs, out):
                    values[s] = t
        self._last = values
        return [None if s is None else values[s] for s in self._results]

    def forget_run(self) -> None:
        """Drop the last :meth:`run`'s tensors without a backward."""
        self._last = None

    def backward(self, root: Tensor) -> None:
        """``root.backward()`` for the root returned by the last :meth:`run`, along the recorded walk: the walk
        of ``Tensor.backward`` over a list indexed by slot (no sort, no dict), its leaves by the same rule
        (``tensor.accumulate_leaf_gradient``)."""
        values, self._last = self._last, None
        if values is None or values[self._root] is not root:
            raise RuntimeError("Plan.backward(): the root is not the one the last run() returned")
        grads = [None] * len(values)
        one = B.xp.array(1, dtype=root.data.dtype)
        grads[self._root] = one.reshape(root.data.shape) if root.data.ndim else one
        accumulate = _tensor.accumulate_leaf_gradient
        released = _tensor._released
        for s, parents in self._schedule:
            g = grads[s]
            if g is None:
                continue
            grads[s] = None
            node = values[s]
            if parents is None:
                accumulate(node, g)
                continue
            parent_grads = node._backward(g)
            for p, pg in zip(parents, parent_grads):
                if p is None or pg is None:
                    continue
                previous = grads[p]
                grads[p] = pg if previous is None else previous + pg
            parent_grads = pg = previous = None
            node._parents = ()
            node._backward = released


def replay_safe(fn):
    """Mark ``fn`` (a layer's ``call``) as safe to record: the ops it runs, and their constant arguments,
    depend on nothing but its inputs' shapes and dtypes and its object's configuration (no decision on the
    data's values, no side effect outside the ops)."""
    fn.replay_safe = True
    return fn


def is_replay_safe(fn) -> bool:
    return getattr(fn, "replay_safe", False)
