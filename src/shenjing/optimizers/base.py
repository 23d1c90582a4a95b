"""The one optimizer base class: everything but the update rule.

:class:`Optimizer` owns what every rule shares: the learning rate (a constant, a
:class:`~shenjing.optimizers.schedules.LearningRateSchedule` or any callable
``f(iterations)``, plus Keras 2's time-based ``decay``), gradient clipping,
decoupled weight decay, the per-variable slot arrays, variable constraints,
the exponential moving average (EMA) of the weights, configs and state.

One call of :meth:`Optimizer.apply` does, in this order:

1. pair gradients with variables; ``None`` gradients and frozen variables are skipped;
2. clip: ``clipvalue`` (elementwise), then ``clipnorm`` (per variable), then ``global_clipnorm``
   (over all gradients) -- each one that is set, in tf.keras 2's order;
3. decoupled weight decay ``v -= lr * weight_decay * v`` (Keras 3);
4. the update rule of the subclass (:meth:`Optimizer._update_step`), in place on ``variable.data``;
5. each updated variable's ``constraint``;
6. the EMA of every variable seen (and, every ``ema_overwrite_frequency`` steps, the overwrite of the
   variables with their averages);
7. ``iterations += 1``.

Gradients are never written to: a clipped or cast gradient is a new array.
A subclass declares its slots (:meth:`Optimizer._slot_specs`) and implements
``_update_step(index, w, g, lr)``, where ``w`` is the variable's array (to be
updated in place), ``g`` the processed gradient (same dtype and shape) and
``lr`` the learning rate of this step as a Python float; ``self.iterations`` is
the number of steps applied before this one. The built-in rules (and the EMA)
run through :meth:`Optimizer._blockwise`: ``out=`` ufuncs on the slots and two
scratch buffers the optimizer keeps, a large variable block by block, so that a
step allocates nothing and each block's dozen passes stay in the cache (on
W4's 1.2 M parameters an Adam step takes half the time of whole-array
temporaries, with the same bits). Variables keep their own arrays: one flat
buffer for all of them was measured and does not pay (the per-variable Python
cost is microseconds; gathering the gradients into it costs a copy).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import warnings

from .. import backend as B
from ..utils.registry import Registry
from . import schedules as _schedules

OPTIMIZERS = Registry("optimizer")

_BLOCK = 1 << 16  # elements per block of an in-place update (see Optimizer._blockwise)
_N_SCRATCH = 2  # scratch arrays per block: what the rules need

_BASE_ARGS = ("learning_rate", "clipnorm", "clipvalue", "global_clipnorm", "weight_decay", "use_ema",
              "ema_momentum", "ema_overwrite_frequency", "ema_warmup", "name", "lr", "decay")


def flat_views(*arrays):
    """1-D views of ``arrays`` (all of one shape) that list their elements in one common order, for
    an elementwise update over flat arrays: when all are row-major (C) or all column-major (F, as
    Dense's kernel and its gradient); else None."""
    if all(a.flags.c_contiguous for a in arrays):
        return [a.reshape(-1) for a in arrays]
    if all(a.flags.f_contiguous for a in arrays):
        return [a.reshape(-1, order="F") for a in arrays]
    return None


def _float(value, arg: str, owner: str, *, low=None, high=None, low_open=False, high_open=False) -> float:
    """``value`` as a finite float within the given bounds, or a clear error naming ``arg``."""
    if isinstance(value, bool):
        raise TypeError(f"{owner}: argument {arg!r} must be a number, got a bool ({value!r})")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: argument {arg!r} must be a number, got {type(value).__name__} "
                        f"({value!r})") from None
    if not math.isfinite(out):
        raise ValueError(f"{owner}: argument {arg!r} must be finite, got {value!r}")
    if low is not None and (out < low or (low_open and out == low)):
        raise ValueError(f"{owner}: argument {arg!r} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (out > high or (high_open and out == high)):
        raise ValueError(f"{owner}: argument {arg!r} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return out


def _optional_positive(value, arg: str, owner: str):
    return None if value is None else _float(value, arg, owner, low=0.0, low_open=True)


def _as_array(x):
    """The array held by ``x`` (a Tensor's ``data``), or ``x`` converted to an array."""
    if isinstance(x, B.xp.ndarray):
        return x
    data = getattr(x, "data", None)
    if isinstance(data, B.xp.ndarray):
        return data
    return B.xp.asarray(x)


class Optimizer:
    """Base class of the optimizers (see the module docstring for what one step does).

    Args:
        learning_rate: a float, a ``LearningRateSchedule`` or a callable ``f(iterations) -> float``.
        clipnorm: clip each gradient to this L2 norm (per variable).
        clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]``.
        global_clipnorm: clip all gradients together to this global L2 norm (not with ``clipnorm``).
        weight_decay: decoupled weight decay: ``v -= lr * weight_decay * v`` before the rule.
        use_ema: keep an exponential moving average of the weights.
        ema_momentum: the EMA decay, ``avg = m * avg + (1 - m) * v``.
        ema_overwrite_frequency: if set, overwrite the variables with their averages every that many steps.
        ema_warmup: TensorFlow's warm-up: the decay at update ``n`` (0-based) is
            ``min(ema_momentum, (1 + n) / (10 + n))`` and the averages start from the variables' values;
            without it the first update copies the variables (Keras 3).
        name: the optimizer's name (default: the class name in lower case).
        lr: Keras 1/2 spelling of ``learning_rate`` (accepted silently; it wins if both are given).
        decay: Keras 2 time-based decay: the rate used is ``lr / (1 + decay * iterations)``.
    """

    #: every slot name a subclass may create (used to validate ``set_state``)
    slot_names: tuple = ()

    def __init__(self, learning_rate=0.001, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 weight_decay=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 ema_warmup=False, name=None, **kwargs):
        owner = type(self).__name__
        if "lr" in kwargs:
            learning_rate = kwargs.pop("lr")
        decay = kwargs.pop("decay", 0.0)
        if kwargs:
            unknown = ", ".join(repr(k) for k in kwargs)
            raise TypeError(f"{owner}: unexpected keyword argument(s) {unknown}. "
                            f"Accepted arguments: {', '.join(self._accepted_arguments())}")
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"{owner}: only one of clipnorm and global_clipnorm can be set; got "
                             f"clipnorm={clipnorm!r} and global_clipnorm={global_clipnorm!r}")
        self.clipnorm = _optional_positive(clipnorm, "clipnorm", owner)
        self.clipvalue = _optional_positive(clipvalue, "clipvalue", owner)
        self.global_clipnorm = _optional_positive(global_clipnorm, "global_clipnorm", owner)
        self.weight_decay = None if weight_decay is None else _float(weight_decay, "weight_decay", owner, low=0.0)
        self.decay = _float(decay, "decay", owner, low=0.0)
        self.use_ema = bool(use_ema)
        self.ema_momentum = _float(ema_momentum, "ema_momentum", owner, low=0.0, high=1.0)
        if ema_overwrite_frequency is not None:
            if isinstance(ema_overwrite_frequency, bool) or int(ema_overwrite_frequency) != ema_overwrite_frequency \
                    or ema_overwrite_frequency < 1:
                raise ValueError(f"{owner}: argument 'ema_overwrite_frequency' must be a positive integer or "
                                 f"None, got {ema_overwrite_frequency!r}")
            ema_overwrite_frequency = int(ema_overwrite_frequency)
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.ema_warmup = bool(ema_warmup)
        self.name = name if name is not None else owner.lower()
        self._learning_rate = self._check_learning_rate(learning_rate)
        self._iterations = 0
        self._variables: list = []  # every variable seen, in order of first appearance
        self._index: dict = {}  # id(variable) -> position in _variables
        self._slots: dict = {}  # slot name -> {variable index -> array}
        self._wd_exclude_ids: set = set()
        self._wd_exclude_names: tuple = ()

    # ------------------------------------------------------------- arguments
    @classmethod
    def _accepted_arguments(cls) -> list:
        names = []
        for klass in cls.__mro__:
            if "__init__" not in klass.__dict__:
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names:
                    names.append(p.name)
        return names + [a for a in ("lr", "decay") if a not in names]

    def _check_learning_rate(self, value):
        owner = type(self).__name__
        if isinstance(value, dict):
            value = _schedules.deserialize(value)
        if isinstance(value, _schedules.LearningRateSchedule) or callable(value):
            return value
        return _float(value, "learning_rate", owner, low=0.0)

    # --------------------------------------------------------- learning rate
    @property
    def iterations(self) -> int:
        """The number of updates applied so far (an int; settable)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value) -> None:
        if isinstance(value, bool) or int(value) != value or value < 0:
            raise ValueError(f"{type(self).__name__}: iterations must be a non-negative integer, got {value!r}")
        self._iterations = int(value)

    @property
    def uses_schedule(self) -> bool:
        """Whether a schedule (or another callable) drives the learning rate."""
        return callable(self._learning_rate)

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next step, as a float.

        A schedule or callable is evaluated at ``iterations``; Keras 2's ``decay`` then divides the
        rate by ``1 + decay * iterations``.
        """
        lr = self._learning_rate
        if callable(lr):
            lr = lr(self._iterations)
            if not isinstance(lr, (int, float)):
                lr = B.to_host(_as_array(lr))
        lr = float(lr)
        if self.decay:
            lr = lr / (1.0 + self.decay * self._iterations)
        return lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        """Set a constant rate (or install a new schedule/callable).

        Setting a number while a schedule or callable drives the rate raises ``TypeError``.
        With Keras 2 ``decay`` the number set is the rate of the *next* step (reading it back gives
        it), and it keeps decaying from there.
        """
        if isinstance(value, (_schedules.LearningRateSchedule, dict)) or callable(value):
            self._learning_rate = self._check_learning_rate(value)
            return
        if self.uses_schedule:
            raise TypeError(
                f"{type(self).__name__}: the learning rate is driven by "
                f"{type(self._learning_rate).__name__}, so it cannot be set to a number. Create the "
                "optimizer with a float learning_rate if it must be settable (e.g. by a callback), or "
                "assign a new schedule.")
        lr = _float(value, "learning_rate", type(self).__name__, low=0.0)
        if self.decay:
            lr = lr * (1.0 + self.decay * self._iterations)
        self._learning_rate = lr

    @property
    def lr(self) -> float:
        """Keras 1/2 spelling of :attr:`learning_rate`."""
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = value

    # ------------------------------------------------------------- variables
    def _slot_specs(self) -> list:
        """``[(slot name, initial value), ...]`` for one variable, given the hyper-parameters."""
        return []

    def _track(self, variable) -> int:
        """The index of ``variable``; a new one is registered and its slots created."""
        index = self._index.get(id(variable))
        if index is not None:
            return index
        data = getattr(variable, "data", None)
        if not isinstance(data, B.xp.ndarray):
            raise TypeError(f"{type(self).__name__}: expected Variables, got {type(variable).__name__} "
                            f"({variable!r})")
        index = len(self._variables)
        self._variables.append(variable)
        self._index[id(variable)] = index
        for name, initial in self._slot_specs():
            self._slot(name, index, initial)
        if self.use_ema:
            self._slot("ema", index, None)
        return index

    def _slot(self, name: str, index: int, initial=0.0):
        """The slot array ``name`` of variable ``index``, created on first use (``initial`` None: a copy
        of the variable). An array put there by ``set_state`` is adopted after a shape check."""
        table = self._slots.setdefault(name, {})
        data = self._variables[index].data
        arr = table.get(index)
        if (arr is not None and arr.shape == data.shape and arr.dtype == data.dtype
                and (arr.flags.c_contiguous or not data.flags.c_contiguous)
                and (arr.flags.f_contiguous or data.flags.c_contiguous or not data.flags.f_contiguous)):
            return arr  # (in the variable's layout when that is row- or column-major)
        if arr is not None:
            if arr.shape != data.shape:
                raise ValueError(
                    f"{type(self).__name__}: state {name}/{index} has shape {tuple(arr.shape)} but variable "
                    f"{self._variables[index].name!r} has shape {tuple(data.shape)}")
            # adopted state (set_state, a loaded file): in the variable's dtype and memory layout, so that
            # the update runs over flat arrays (a column-major kernel with row-major slots ran 30-90x slower)
            adopted = B.xp.empty_like(data)
            adopted[...] = arr
            arr = adopted
        elif initial is None:
            arr = data.copy(order="K")  # the variable's memory layout: an update runs over both as flat arrays
        else:
            arr = B.xp.zeros_like(data)
            if initial:
                arr += initial
        table[index] = arr
        return arr

    def build(self, variables) -> None:
        """Register ``variables`` (in this order: it fixes the state keys) and create their slots now.

        Optional: :meth:`apply` registers the variables it meets the same way.
        """
        for variable in variables:
            self._track(variable)

    @property
    def built(self) -> bool:
        return bool(self._variables)

    @property
    def variables(self) -> list:
        """The variables the optimizer has seen, in index order."""
        return list(self._variables)

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Leave the variables in ``var_list``, and those whose name contains any string of
        ``var_names``, out of weight decay (e.g. ``var_names=['bias']``)."""
        self._wd_exclude_ids = {id(v) for v in (var_list or ())}
        self._wd_exclude_names = tuple(var_names or ())

    def _use_weight_decay(self, variable) -> bool:
        if id(variable) in self._wd_exclude_ids:
            return False
        name = variable.name or ""
        return not any(s in name for s in self._wd_exclude_names)

    # ----------------------------------------------------------------- apply
    def apply_gradients(self, grads_and_vars):
        """Apply ``[(gradient, variable), ...]``; see :meth:`apply`."""
        pairs = list(grads_and_vars)
        return self.apply([g for g, _ in pairs], [v for _, v in pairs])

    def apply(self, grads, variables=None):
        """Apply one update of ``grads`` to ``variables`` (default: the variables seen so far, in order).

        ``None`` gradients and variables with ``trainable=False`` are skipped. Returns the new
        ``iterations``.
        """
        grads = list(grads)
        if variables is None:
            if not self._variables:
                raise ValueError(f"{type(self).__name__}.apply: no variables given and the optimizer is not "
                                 "built; pass the variables or call build(variables) first")
            variables = self._variables
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"{type(self).__name__}.apply: got {len(grads)} gradients for "
                             f"{len(variables)} variables")
        work = []
        index_of = self._index
        ndarray = B.xp.ndarray
        for grad, variable in zip(grads, variables):
            index = index_of.get(id(variable))
            if index is None:
                index = self._track(variable)
            if grad is None or not getattr(variable, "trainable", True):
                continue
            data = variable.data
            if type(grad) is not ndarray or grad.shape != data.shape or grad.dtype != data.dtype:
                grad = self._prepare_gradient(grad, variable)
            if not data.flags.c_contiguous and data.flags.f_contiguous and not grad.flags.f_contiguous:
                grad = B.xp.asfortranarray(grad)  # the variable's layout: the update then runs over flat arrays
            work.append([index, variable, grad])
        if self.clipvalue is not None or self.clipnorm is not None or self.global_clipnorm is not None:
            self._clip(work)
        lr = self.learning_rate
        if self.weight_decay:
            factor = 1.0 - lr * self.weight_decay
            for _, variable, _ in work:
                if self._use_weight_decay(variable):
                    variable.data *= factor
        self._before_step(lr)
        update = self._update_step
        for index, variable, grad in work:
            update(index, variable.data, grad, lr)
            constraint = getattr(variable, "constraint", None)  # (reads this variable alone: after its update)
            if constraint is not None:
                variable.data[...] = _as_array(constraint(variable.data))
        if self.use_ema:
            self._update_ema()
        self._iterations += 1
        return self._iterations

    def _prepare_gradient(self, grad, variable):
        grad = _as_array(grad)
        data = variable.data
        if tuple(grad.shape) != tuple(data.shape):
            raise ValueError(f"{type(self).__name__}: gradient of shape {tuple(grad.shape)} for variable "
                             f"{variable.name!r} of shape {tuple(data.shape)}")
        if grad.dtype != data.dtype:
            grad = grad.astype(data.dtype)  # a new array: the caller's gradient is left alone
        return grad

    def _clip(self, work) -> None:
        """Clip the gradients in ``work`` (``[index, variable, grad]`` items; a clipped gradient is a new array)."""
        xp = B.xp
        if self.clipvalue is not None:
            for item in work:
                item[2] = xp.clip(item[2], -self.clipvalue, self.clipvalue)
        if self.clipnorm is not None:
            for item in work:
                norm = math.sqrt(float(xp.sum(xp.square(item[2]))))
                if norm > self.clipnorm:
                    item[2] = item[2] * (self.clipnorm / norm)
        if self.global_clipnorm is not None and work:
            norm = math.sqrt(sum(float(xp.sum(xp.square(item[2]))) for item in work))
            if norm > self.global_clipnorm:
                scale = self.global_clipnorm / norm
                for item in work:
                    item[2] = item[2] * scale

    def _before_step(self, lr: float) -> None:
        """Hook run once per step before the per-variable updates (Nadam's momentum cache)."""

    def _update_step(self, index: int, w, g, lr: float) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update_step(index, w, g, lr)")

    def _blockwise(self, fn, n_scratch: int, w, g, *slots) -> None:
        """Run the in-place update ``fn(w, g, *slots, *scratch)`` over ``w`` (the variable's array), ``g``
        (its gradient, read only) and ``slots`` (arrays of ``w``'s shape, updated in place), with
        ``n_scratch`` scratch arrays of the same shape owned by the optimizer.

        With NumPy a large variable goes by blocks of ``_BLOCK`` elements, so that the dozen passes of
        a rule run over data in the cache instead of main memory (an elementwise rule gives the same
        bits either way); no array is allocated per step.
        """
        n = w.size
        if n <= _BLOCK:
            try:
                scratch = self._scratch_views[w.shape, w.dtype]
            except (AttributeError, KeyError):
                scratch = self._scratch_like(w)
            fn(w, g, *slots, *scratch) if n_scratch == _N_SCRATCH else fn(w, g, *slots, *scratch[:n_scratch])
            return
        xp = B.xp
        flat = flat_views(w, g, *slots) if B.backend() == "numpy" else None
        if flat is None:
            # on a GPU one pass per operation is best; with NumPy, arrays of different layouts (set from
            # outside) have no common flat order: update the whole arrays
            fn(w, g, *slots, *[xp.empty_like(w) for _ in range(n_scratch)])
            return
        flat_w, flat_g, *flat_slots = flat
        buffers = self._scratch_buffers(w.dtype)[:n_scratch]
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            scratch = buffers if stop - start == _BLOCK else [buf[:stop - start] for buf in buffers]
            fn(flat_w[start:stop], flat_g[start:stop], *[a[start:stop] for a in flat_slots], *scratch)

    def _scratch_buffers(self, dtype) -> list:
        """The optimizer's scratch buffers of ``dtype``: 1-D arrays of ``_BLOCK`` elements, made once."""
        try:
            table = self._scratch
        except AttributeError:
            table = self._scratch = {}
        buffers = table.get(dtype)
        if buffers is None:
            buffers = table[dtype] = [B.xp.empty(_BLOCK, dtype=dtype) for _ in range(_N_SCRATCH)]
        return buffers

    def _scratch_like(self, w) -> tuple:
        """Scratch arrays of ``w``'s shape and dtype (``w.size <= _BLOCK``): views of the scratch buffers,
        kept per shape."""
        try:
            views = self._scratch_views
        except AttributeError:
            views = self._scratch_views = {}
        n = w.size
        held = views[w.shape, w.dtype] = tuple(buf[:n].reshape(w.shape) for buf in self._scratch_buffers(w.dtype))
        return held

    # ------------------------------------------------------------------- EMA
    def _ema_decay(self) -> float:
        n = self._iterations
        if self.ema_warmup:
            return min(self.ema_momentum, (1.0 + n) / (10.0 + n))
        return self.ema_momentum if n > 0 else 0.0

    def _update_ema(self) -> None:
        decay = self._ema_decay()
        xp = B.xp

        def ema(average, value, s1):
            xp.multiply(value, 1.0 - decay, out=s1)
            average *= decay
            average += s1

        for index, variable in enumerate(self._variables):
            self._blockwise(ema, 1, self._slot("ema", index, None), variable.data)
        freq = self.ema_overwrite_frequency
        if freq and (self._iterations + 1) % freq == 0:
            for index, variable in enumerate(self._variables):
                variable.data[...] = self._slots["ema"][index]

    def _require_ema(self, what: str) -> None:
        if not self.use_ema:
            raise ValueError(f"{type(self).__name__}.{what}: the optimizer keeps no moving average; "
                             "create it with use_ema=True")

    def _ema_pairs(self, variables, what: str):
        self._require_ema(what)
        variables = self._variables if variables is None else list(variables)
        pairs = []
        for variable in variables:
            index = self._index.get(id(variable))
            if index is None:
                # never updated by this optimizer (e.g. it never had a gradient): its average is itself
                continue
            pairs.append((variable, self._slot("ema", index, None)))
        return pairs

    @property
    def ema_weights(self) -> list:
        """The moving averages, one array per variable seen (index order); ``[]`` without ``use_ema``."""
        if not self.use_ema:
            return []
        return [self._slot("ema", i, None) for i in range(len(self._variables))]

    def swap_ema_weights(self, variables=None) -> None:
        """Exchange, in place, the values of ``variables`` (default: all seen) and their averages.
        Calling it twice restores both. Variables this optimizer never updated are left as they are."""
        for variable, average in self._ema_pairs(variables, "swap_ema_weights"):
            held = variable.data.copy()
            variable.data[...] = average
            average[...] = held

    @contextlib.contextmanager
    def averaged_weights(self, variables=None):
        """``with opt.averaged_weights(model.trainable_weights): model.evaluate(...)``: the averages are
        swapped in for the block and the trained values restored after it (even on an exception)."""
        variables = self._variables if variables is None else list(variables)
        self.swap_ema_weights(variables)
        try:
            yield self
        finally:
            self.swap_ema_weights(variables)

    def finalize_variable_values(self, variables=None) -> None:
        """Copy the moving averages into the variables (a no-op without ``use_ema``); Keras calls it at the
        end of ``fit``."""
        if not self.use_ema:
            return
        for variable, average in self._ema_pairs(variables, "finalize_variable_values"):
            variable.data[...] = average

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict:
        """The constructor arguments (JSON-friendly); a schedule becomes ``{'class_name', 'config'}``."""
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            lr = _schedules.serialize(lr)
        elif callable(lr):
            warnings.warn(f"{type(self).__name__}.get_config: the learning rate is a plain callable, which "
                          "cannot be serialised; its current value is stored instead. Use a "
                          "LearningRateSchedule subclass to keep the schedule.", stacklevel=2)
            lr = self.learning_rate
        return {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "ema_warmup": self.ema_warmup,
            "decay": self.decay,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    # ----------------------------------------------------------------- state
    def _extra_state(self) -> dict:
        """Optimizer-wide state beyond ``iterations`` and the slots (arrays)."""
        return {}

    def _set_extra_state(self, state: dict) -> None:
        pass

    def get_state(self) -> dict:
        """``{'iterations': array, '<slot>/<variable index>': array, ...}`` (copies).

        Variable indices follow the order in which the optimizer first met the variables (``build``
        or ``apply``); the EMA averages are the slot ``ema``.
        """
        state = {"iterations": B.xp.asarray(self._iterations, dtype="int64")}
        for name in sorted(self._slots):
            for index in sorted(self._slots[name]):
                state[f"{name}/{index}"] = self._slots[name][index].copy()
        state.update(self._extra_state())
        return state

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state`'s output: the next step is then identical. Slots of variables not
        seen yet are kept and adopted when ``build``/``apply`` meets the variable with that index."""
        owner = type(self).__name__
        state = dict(state)
        extra_keys = set(self._extra_state())
        allowed = set(self.slot_names) | {"ema"}
        slots = []
        for key, value in state.items():
            if key == "iterations" or key in extra_keys:
                continue
            name, sep, index = key.rpartition("/")
            if not sep or not index.isdigit():
                raise ValueError(f"{owner}.set_state: unexpected key {key!r}; expected 'iterations', "
                                 f"'<slot>/<index>' or one of {sorted(extra_keys)}")
            if name not in allowed:
                raise ValueError(f"{owner}.set_state: unknown slot {name!r} in key {key!r}; {owner} has slots "
                                 f"{sorted(allowed)}")
            slots.append((name, int(index), _as_array(value)))
        if "iterations" in state:
            self.iterations = int(B.to_host(_as_array(state["iterations"])))
        for name, index, value in slots:
            table = self._slots.setdefault(name, {})
            current = table.get(index)
            if current is not None:
                if current.shape != value.shape:
                    raise ValueError(f"{owner}.set_state: {name}/{index} has shape {tuple(value.shape)}, "
                                     f"expected {tuple(current.shape)}")
                current[...] = value
            elif index < len(self._variables):
                table[index] = value.copy()
                self._slot(name, index)
            else:
                table[index] = value.copy()
        self._set_extra_state({k: state[k] for k in extra_keys if k in state})

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self._learning_rate!r} " \
               f"iterations={self._iterations}>"
