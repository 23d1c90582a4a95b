"""Recurrent layers: the cells ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``, the generic ``RNN(cell)``
wrapper, and the fused ``SimpleRNN``, ``LSTM``, ``GRU`` layers.

``RNN(cell)`` runs any cell step by step with the autodiff ops (a cell is a layer with
``state_size`` and ``call(inputs, states) -> (output, new_states)``): the general, slow path.
``SimpleRNN``/``LSTM``/``GRU`` are ``RNN`` subclasses holding their cell (the weights live on it,
named ``<layer>/<cell>/kernel``…, ordered kernel, recurrent_kernel, bias as Keras); they project
the input of all gates for the whole sequence in one matmul and run the recurrence in one fused
tape node (:mod:`shenjing.autodiff.rnn`; the LSTM's node does its projection itself,
:func:`~shenjing.autodiff.rnn.lstm_with_input`). An activation outside the fused table (tanh, sigmoid,
hard_sigmoid, relu, linear) falls back to the step-by-step path, with the same result.

Keras semantics: inputs (batch, timesteps, features); ``mask`` (batch, timesteps) from an upstream
``Masking``/``Embedding(mask_zero=True)`` makes masked steps carry the state over; ``dropout`` and
``recurrent_dropout`` (training only) use one mask per sequence, fixed over time (dropout on the
inputs, recurrent dropout on the state entering the recurrent matmul); ``initial_state=`` (or the
states as extra list inputs, ``layer([x, h0, c0])``); ``stateful`` keeps the final states of each
call for the next (``reset_states()`` clears them).
"""

from __future__ import annotations

import inspect
import sys

from .. import activations, constraints, initializers, regularizers
from .. import backend as B
from ..autodiff import Tensor, ops
from ..autodiff import rnn as fused
from .base import Layer, _shape_str, add_activity_loss
from .core import rename_legacy_kwargs

# Keras 1 argument names of the recurrent layers and cells
_KERAS1_RNN = {"output_dim": "units", "init": "kernel_initializer", "inner_init": "recurrent_initializer",
               "inner_activation": "recurrent_activation", "W_regularizer": "kernel_regularizer",
               "U_regularizer": "recurrent_regularizer", "b_regularizer": "bias_regularizer",
               "W_constraint": "kernel_constraint", "U_constraint": "recurrent_constraint",
               "b_constraint": "bias_constraint", "dropout_W": "dropout", "dropout_U": "recurrent_dropout"}
_IGNORED = ("consume_less", "implementation", "use_cudnn")  # Keras 1/2/3 performance switches


def _legacy(kwargs: dict, layer: str) -> dict:
    """Pop the Keras 1 spellings (and ignored switches) out of ``kwargs``; the renamed ones returned."""
    for key in _IGNORED:
        kwargs.pop(key, None)
    legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS1_RNN}
    if "forget_bias_init" in kwargs:  # Keras 1 LSTM: 'one' is what unit_forget_bias=True does
        legacy["unit_forget_bias"] = str(kwargs.pop("forget_bias_init")).lower() in ("one", "ones")
    return rename_legacy_kwargs(legacy, _KERAS1_RNN, layer)


def deserialize_layer(config, custom_objects: dict | None = None):
    """A layer from ``{'class_name': ..., 'config': {...}}`` (nested layers of wrappers, cells of ``RNN``):
    :func:`shenjing.saving.deserialize_layer` when present, else shenjing's layers and custom objects."""
    try:
        from ..saving.serialization import deserialize_layer as saving_deserialize
    except ImportError:
        saving_deserialize = None
    if saving_deserialize is not None:
        return saving_deserialize(config, custom_objects)
    from .. import layers as layers_module
    from ..utils.registry import _custom_objects
    from . import embedding, wrappers

    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"expected a layer config {{'class_name': ..., 'config': {{...}}}}, got {config!r}")
    name = config["class_name"]
    cls = None
    for table in (custom_objects or {}, _custom_objects):
        if name in table:
            cls = table[name]
            break
    if cls is None:
        for module in (layers_module, embedding, wrappers, sys.modules[__name__]):
            candidate = getattr(module, name, None)
            if isinstance(candidate, type) and issubclass(candidate, Layer):
                cls = candidate
                break
    if cls is None:
        raise ValueError(f"Unknown layer {name!r}: pass it in custom_objects")
    return cls.from_config(dict(config.get("config") or {}))


def serialize_layer(layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def _check_rate(value, argument: str, who: str) -> float:
    value = float(value)
    if not 0 <= value < 1:
        raise ValueError(f"{who}: {argument} must be in [0, 1), got {value!r}")
    return value


# ------------------------------------------------------------------------------------ cells


class _Cell(Layer):
    """What the three cells share: the weight arguments, and dropout masks fixed over one sequence."""

    _gates = 1

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} {self.name!r}"
        if units is None or int(units) != units or units <= 0:
            raise ValueError(f"{who}: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.activation = self._resolve(activations, activation, "activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = self._resolve(initializers, kernel_initializer, "kernel_initializer")
        self.recurrent_initializer = self._resolve(initializers, recurrent_initializer, "recurrent_initializer")
        self.bias_initializer = self._resolve(initializers, bias_initializer, "bias_initializer")
        self.kernel_regularizer = self._resolve(regularizers, kernel_regularizer, "kernel_regularizer")
        self.recurrent_regularizer = self._resolve(regularizers, recurrent_regularizer, "recurrent_regularizer")
        self.bias_regularizer = self._resolve(regularizers, bias_regularizer, "bias_regularizer")
        self.kernel_constraint = self._resolve(constraints, kernel_constraint, "kernel_constraint")
        self.recurrent_constraint = self._resolve(constraints, recurrent_constraint, "recurrent_constraint")
        self.bias_constraint = self._resolve(constraints, bias_constraint, "bias_constraint")
        self.dropout = _check_rate(dropout, "dropout", who)
        self.recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout", who)
        self.seed = seed
        self._generator = None if seed is None else B.generator(seed)
        self._dropout_mask = None
        self._recurrent_dropout_mask = None

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    # ------------------------------------------------------------------- weights
    def _bias_initializer(self):
        return self.bias_initializer

    def _bias_shape(self):
        return (self._gates * self.units,)

    def build(self, input_shape) -> None:
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"{type(self).__name__} {self.name!r}: the feature axis of the input must be known, "
                             f"got {_shape_str(input_shape)}")
        width = self._gates * self.units
        self.kernel = self.add_weight("kernel", (features, width), self.kernel_initializer, self.kernel_regularizer,
                                      constraint=self.kernel_constraint)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width), self.recurrent_initializer,
                                                self.recurrent_regularizer, constraint=self.recurrent_constraint)
        self.bias = (self.add_weight("bias", self._bias_shape(), self._bias_initializer(), self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    # ------------------------------------------------------------------- dropout
    def _draw(self, shape, dtype, rate):
        """A dropout mask: kept entries 1/(1 − rate), dropped ones 0."""
        return B.dropout_mask(self._generator or B.rng(), shape, rate, dtype)

    def get_dropout_mask(self, inputs):
        """The input dropout mask of the current sequence (drawn at its first step)."""
        if self._dropout_mask is None or self._dropout_mask.shape != tuple(inputs.shape):
            self._dropout_mask = self._draw(inputs.shape, inputs.dtype, self.dropout)
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, state):
        if self._recurrent_dropout_mask is None or self._recurrent_dropout_mask.shape != tuple(state.shape):
            self._recurrent_dropout_mask = self._draw(state.shape, state.dtype, self.recurrent_dropout)
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self) -> None:
        self._dropout_mask = None

    def reset_recurrent_dropout_mask(self) -> None:
        self._recurrent_dropout_mask = None

    def _dropped_inputs(self, inputs, h_prev, training):
        if training and self.dropout > 0:
            inputs = ops.dropout_mask_apply(inputs, self.get_dropout_mask(inputs))
        if training and self.recurrent_dropout > 0:
            h_prev = ops.dropout_mask_apply(h_prev, self.get_recurrent_dropout_mask(h_prev))
        return inputs, h_prev

    def get_initial_state(self, batch_size, dtype=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [Tensor(B.xp.zeros((batch_size, s), dtype=dtype or self.dtype or B.floatx())) for s in sizes]

    def get_config(self) -> dict:
        return dict(super().get_config(), units=self.units, activation=activations.serialize(self.activation),
                    use_bias=self.use_bias, kernel_initializer=initializers.serialize(self.kernel_initializer),
                    recurrent_initializer=initializers.serialize(self.recurrent_initializer),
                    bias_initializer=initializers.serialize(self.bias_initializer),
                    kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                    recurrent_regularizer=regularizers.serialize(self.recurrent_regularizer),
                    bias_regularizer=regularizers.serialize(self.bias_regularizer),
                    kernel_constraint=constraints.serialize(self.kernel_constraint),
                    recurrent_constraint=constraints.serialize(self.recurrent_constraint),
                    bias_constraint=constraints.serialize(self.bias_constraint), dropout=self.dropout,
                    recurrent_dropout=self.recurrent_dropout, seed=self.seed)


def _first_state(states):
    return states[0] if isinstance(states, (list, tuple)) else states


class SimpleRNNCell(_Cell):
    """One step of the fully-connected RNN: h' = activation(x·kernel + h·recurrent_kernel + bias)."""

    def __init__(self, units=None, activation="tanh", **kwargs):
        kwargs.update(_legacy(kwargs, "SimpleRNNCell"))
        units = kwargs.pop("units", units)
        super().__init__(units, activation=activation, **kwargs)

    def call(self, inputs, states, training=None):
        x, h_prev = self._dropped_inputs(inputs, _first_state(states), training)
        h = self.activation(ops.add(ops.linear(x, self.kernel, self.bias), ops.matmul(h_prev, self.recurrent_kernel)))
        return h, [h]


class LSTMCell(_Cell):
    """One LSTM step (Hochreiter & Schmidhuber 1997), gates in Keras's order i, f, c, o.

    ``unit_forget_bias`` starts the forget gate's bias at 1 (Jozefowicz et al. 2015).
    """

    _gates = 4

    def __init__(self, units=None, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True,
                 **kwargs):
        kwargs.update(_legacy(kwargs, "LSTMCell"))
        units = kwargs.pop("units", units)
        recurrent_activation = kwargs.pop("recurrent_activation", recurrent_activation)
        unit_forget_bias = kwargs.pop("unit_forget_bias", unit_forget_bias)
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = self._resolve(activations, recurrent_activation, "recurrent_activation")
        self.unit_forget_bias = bool(unit_forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        def forget_bias_one(shape, dtype=None):
            xp = B.xp
            return xp.concatenate([B.asarray(base((units,), dtype=dtype)), xp.ones(units, dtype=dtype),
                                   B.asarray(base((2 * units,), dtype=dtype))])

        return forget_bias_one

    def call(self, inputs, states, training=None):
        h_prev, c_prev = states[0], states[1]
        x, hp = self._dropped_inputs(inputs, h_prev, training)
        z = ops.add(ops.linear(x, self.kernel, self.bias), ops.matmul(hp, self.recurrent_kernel))
        u = self.units
        i = self.recurrent_activation(z[:, :u])
        f = self.recurrent_activation(z[:, u:2 * u])
        g = self.activation(z[:, 2 * u:3 * u])
        o = self.recurrent_activation(z[:, 3 * u:])
        c = ops.add(ops.mul(f, c_prev), ops.mul(i, g))
        h = ops.mul(o, self.activation(c))
        return h, [h, c]

    def get_config(self) -> dict:
        return dict(super().get_config(), recurrent_activation=activations.serialize(self.recurrent_activation),
                    unit_forget_bias=self.unit_forget_bias)


class GRUCell(_Cell):
    """One GRU step (Cho et al. 2014), gates in Keras's order z, r, h.

    ``reset_after=True`` (the default, cuDNN's and torch's form): the reset gate multiplies the
    recurrent projection, which has its own bias (bias shape (2, 3·units): input bias, recurrent
    bias). ``reset_after=False`` (the original): it multiplies the state before the projection;
    one bias (3·units,).
    """

    _gates = 3

    def __init__(self, units=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True, **kwargs):
        kwargs.update(_legacy(kwargs, "GRUCell"))
        units = kwargs.pop("units", units)
        recurrent_activation = kwargs.pop("recurrent_activation", recurrent_activation)
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = self._resolve(activations, recurrent_activation, "recurrent_activation")
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _biases(self):
        """(input bias, recurrent bias): Tensors or None."""
        if self.bias is None:
            return None, None
        if self.reset_after:
            return ops.getitem(self.bias, 0), ops.getitem(self.bias, 1)
        return self.bias, None

    def call(self, inputs, states, training=None):
        h_prev = _first_state(states)
        x, hp = self._dropped_inputs(inputs, h_prev, training)
        u = self.units
        input_bias, recurrent_bias = self._biases()
        xz = ops.linear(x, self.kernel, input_bias)
        R = self.recurrent_kernel
        if self.reset_after:
            rec = ops.matmul(hp, R)
            if recurrent_bias is not None:
                rec = ops.add(rec, recurrent_bias)
            z = self.recurrent_activation(ops.add(xz[:, :u], rec[:, :u]))
            r = self.recurrent_activation(ops.add(xz[:, u:2 * u], rec[:, u:2 * u]))
            hh = self.activation(ops.add(xz[:, 2 * u:], ops.mul(r, rec[:, 2 * u:])))
        else:
            rec = ops.matmul(hp, R[:, :2 * u])
            z = self.recurrent_activation(ops.add(xz[:, :u], rec[:, :u]))
            r = self.recurrent_activation(ops.add(xz[:, u:2 * u], rec[:, u:]))
            hh = self.activation(ops.add(xz[:, 2 * u:], ops.matmul(ops.mul(r, hp), R[:, 2 * u:])))
        h = ops.add(ops.mul(z, h_prev), ops.mul(ops.sub(1.0, z), hh))
        return h, [h]

    def get_config(self) -> dict:
        return dict(super().get_config(), recurrent_activation=activations.serialize(self.recurrent_activation),
                    reset_after=self.reset_after)


# -------------------------------------------------------------------------------------- RNN


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class RNN(Layer):
    """Runs a cell over the time axis, step by step with the autodiff ops.

    ``cell``: a layer with ``state_size`` (an int or a list of ints) and
    ``call(inputs, states[, training]) -> (output, new_states)``; it is built with the shape
    (batch, features). Outputs: the last output (batch, units), or with ``return_sequences`` all of
    them (batch, timesteps, units) — in processing order when ``go_backwards``; ``return_state``
    appends the final states. ``zero_output_for_mask``: masked steps output zeros instead of the
    previous output.
    """

    supports_masking = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, time_major=False, zero_output_for_mask=False, activity_regularizer=None, **kwargs):
        if isinstance(cell, dict):
            cell = deserialize_layer(cell)
        if isinstance(cell, (list, tuple)):
            raise TypeError(f"{type(self).__name__}: a list of cells (stacked cells) is not supported; stack "
                            f"several recurrent layers instead")
        if not hasattr(cell, "state_size") or not hasattr(cell, "call"):
            raise TypeError(f"{type(self).__name__}: cell must have a state_size and a call(inputs, states) method, "
                            f"got {cell!r}")
        given_input_dim = "input_dim" in kwargs and kwargs.get("input_length") is None
        super().__init__(**kwargs)
        if given_input_dim and self._batch_input_shape is not None and len(self._batch_input_shape) == 2:
            self._batch_input_shape = (self._batch_input_shape[0], None, self._batch_input_shape[1])
        self.cell = cell
        if not self.trainable and isinstance(cell, Layer):
            cell.trainable = False
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)  # accepted; the loop is the same either way
        self.time_major = bool(time_major)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.activity_regularizer = self._resolve(regularizers, activity_regularizer, "activity_regularizer")
        self._states = None
        self._stateful_batch = None
        if self.stateful and self._batch_input_shape is not None:
            self._stateful_batch = self._batch_input_shape[0]

    # ----------------------------------------------------------------- shapes
    def _state_sizes(self) -> list:
        return [int(s) for s in _as_list(self.cell.state_size)]

    def _output_size(self) -> int:
        size = getattr(self.cell, "output_size", None)
        return int(size) if size is not None else self._state_sizes()[0]

    def _who(self) -> str:
        return f"{type(self).__name__} {self.name!r}"

    def _check_rank(self, shape) -> None:
        if len(shape) != 3:
            raise ValueError(f"{self._who()}: expected an input of rank 3 (batch, timesteps, features), got shape "
                             f"{_shape_str(shape)}")

    def _sequence_shape(self, input_shape):
        """(batch, timesteps, features) of the sequence input (the first of a list [x, *initial states])."""
        shape = input_shape
        if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
            shape = shape[0]
        shape = tuple(shape)
        self._check_rank(shape)
        return (shape[1], shape[0], shape[2]) if self.time_major else shape

    def build(self, input_shape) -> None:
        batch, _, features = self._sequence_shape(input_shape)
        if features is None:
            raise ValueError(f"{self._who()}: the feature axis of the input must be known, got "
                             f"{_shape_str(input_shape)}")
        if isinstance(self.cell, Layer):
            self.cell._maybe_build((batch, features))
        elif hasattr(self.cell, "build"):
            self.cell.build((batch, features))
        if self.stateful and self._stateful_batch is None and batch is not None:
            self._stateful_batch = batch
        self.built = True

    def compute_output_shape(self, input_shape):
        batch, steps, _ = self._sequence_shape(input_shape)
        units = self._output_size()
        if self.return_sequences:
            out = (steps, batch, units) if self.time_major else (batch, steps, units)
        else:
            out = (batch, units)
        if self.return_state:
            return [out] + [(batch, s) for s in self._state_sizes()]
        return out

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out_mask = mask if self.return_sequences else None
        if self.return_state:
            return [out_mask] + [None] * len(self._state_sizes())
        return out_mask

    # ------------------------------------------------------------------ states
    @property
    def states(self):
        """The stateful layer's current states (arrays), or None before its first call."""
        return self._states

    def reset_states(self, states=None) -> None:
        """Zero the states of a stateful layer (or set them to ``states``, a list of arrays)."""
        if not self.stateful:
            raise AttributeError(f"{self._who()}: reset_states() needs a stateful layer (stateful=True)")
        batch = self._stateful_batch
        if states is None:
            self._states = None if batch is None else [
                B.xp.zeros((batch, s), dtype=self.dtype or B.floatx()) for s in self._state_sizes()]
            return
        states = [s.data if isinstance(s, Tensor) else B.asarray(s) for s in _as_list(states)]
        if batch is None:
            batch = self._stateful_batch = states[0].shape[0]
        self._check_states([tuple(s.shape) for s in states], batch)
        self._states = [s.astype(self.dtype or B.floatx()).copy() for s in states]

    reset_state = reset_states

    def _check_states(self, shapes, batch) -> None:
        sizes = self._state_sizes()
        expected = [(batch, s) for s in sizes]
        if len(shapes) != len(sizes) or any(tuple(s) != e for s, e in zip(shapes, expected)):
            raise ValueError(f"{self._who()}: initial_state expected {len(sizes)} state(s) of shape(s) "
                             f"{', '.join(_shape_str(e) for e in expected)}, got {len(shapes)} of shape(s) "
                             f"{', '.join(_shape_str(s) for s in shapes) or 'none'}")

    def _initial_states(self, given, batch, dtype) -> list:
        if given:
            self._check_states([tuple(s.shape) for s in given], batch)
            return [s if isinstance(s, Tensor) else Tensor(B.asarray(s, dtype=dtype)) for s in given]
        if self.stateful:
            if self._stateful_batch is None:
                self._stateful_batch = batch
            if batch != self._stateful_batch:
                raise ValueError(f"{self._who()}: a stateful layer runs on batches of {self._stateful_batch} "
                                 f"samples (fixed by batch_input_shape or its first call), got {batch}")
            if self._states is None:
                self.reset_states()
            return [Tensor(s) for s in self._states]
        return [Tensor(B.xp.zeros((batch, s), dtype=dtype)) for s in self._state_sizes()]

    def _check_mask(self, mask, batch, steps):
        if mask is None:
            return None
        mask = mask.data if isinstance(mask, Tensor) else B.asarray(mask)
        if tuple(mask.shape) != (batch, steps):
            raise ValueError(f"{self._who()}: expected a mask of shape (batch, timesteps) = {(batch, steps)}, got "
                             f"shape {tuple(mask.shape)}")
        mask = mask.astype(bool)
        return None if mask.all() else mask

    # -------------------------------------------------------------------- call
    def __call__(self, inputs, *args, initial_state=None, **kwargs):
        if initial_state is not None:
            if isinstance(inputs, (list, tuple)):
                raise ValueError(f"{self._who()}: give the initial states either as initial_state= or as extra "
                                 f"list inputs, not both")
            inputs = [inputs] + _as_list(initial_state)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, mask=None, training=None):
        given = None
        if isinstance(inputs, (list, tuple)):
            inputs, given = inputs[0], list(inputs[1:])
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        self._check_rank(inputs.shape)
        x = ops.transpose(inputs, (1, 0, 2)) if self.time_major else inputs
        batch, steps, _ = x.shape
        if steps == 0:
            raise ValueError(f"{self._who()}: the input has no time steps (shape {_shape_str(inputs.shape)})")
        mask = self._check_mask(mask, batch, steps)
        states = self._initial_states(given, batch, x.dtype)
        output, finals = self._run(x, states, mask, training)
        if self.stateful:
            self._states = [f.data.copy() for f in finals]
        if self.time_major and self.return_sequences:
            output = ops.transpose(output, (1, 0, 2))
        add_activity_loss(self, self.activity_regularizer, output)
        return [output] + list(finals) if self.return_state else output

    def _run(self, x, states, mask, training):
        """The generic path: the cell called step by step. Returns (output, final states)."""
        cell = self.cell
        for reset in ("reset_dropout_mask", "reset_recurrent_dropout_mask"):
            if hasattr(cell, reset):
                getattr(cell, reset)()
        kwargs = {"training": training} if "training" in inspect.signature(cell.call).parameters else {}
        steps = x.shape[1]
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        outputs, previous = [], None
        for t in order:  # the states always go as a list (Keras 2's convention; Keras 3's cells accept it)
            out, new_states = cell.call(ops.getitem(x, (slice(None), t)), list(states), **kwargs)
            new_states = _as_list(new_states)
            if mask is not None:
                keep = mask[:, t:t + 1]
                states = [ops.where(keep, n, s) for n, s in zip(new_states, states)]
                if self.zero_output_for_mask or previous is None:
                    out = ops.where(keep, out, Tensor(B.xp.zeros(out.shape, dtype=out.dtype)))
                else:
                    out = ops.where(keep, out, previous)
            else:
                states = new_states
            previous = out
            if self.return_sequences:
                outputs.append(out)
        output = ops.stack(outputs, axis=1) if self.return_sequences else previous
        return output, states

    # ------------------------------------------------------------------ config
    def _rnn_config(self) -> dict:
        return {"return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
                "time_major": self.time_major, "zero_output_for_mask": self.zero_output_for_mask,
                "activity_regularizer": regularizers.serialize(self.activity_regularizer)}

    def get_config(self) -> dict:
        return dict(super().get_config(), cell=serialize_layer(self.cell), **self._rnn_config())

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if isinstance(config.get("cell"), dict):
            config["cell"] = deserialize_layer(config["cell"])
        return cls(**config)


# ----------------------------------------------------------------------------- fused layers


def _cell_attribute(name):
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's ``{name}``.")


class _FusedRNN(RNN):
    """SimpleRNN/LSTM/GRU: the cell holds the weights; the sequence runs in one fused tape node."""

    _cell_class = _Cell
    _cell_name = "cell"
    _cell_args = ()

    def __init__(self, units=None, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 time_major=False, zero_output_for_mask=False, **kwargs):
        legacy = _legacy(kwargs, type(self).__name__)
        cell_kwargs = {k: kwargs.pop(k) for k in self._cell_args if k in kwargs}
        cell_kwargs.update({k: legacy.pop(k) for k in list(legacy) if k in self._cell_args})
        units = legacy.pop("units", units)
        options = dict(activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                       recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                       kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                       bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                       recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint, dropout=dropout,
                       recurrent_dropout=recurrent_dropout, seed=seed)
        options.update(legacy)
        name = kwargs.get("name") or None
        if name is None:
            from ..utils.naming import to_snake_case, unique_name

            name = kwargs["name"] = unique_name(to_snake_case(type(self).__name__))
        cell = self._cell_class(units, name=f"{name}/{self._cell_name}", dtype=kwargs.get("dtype"),
                                trainable=kwargs.get("trainable", True), **options, **cell_kwargs)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll, time_major=time_major,
                         zero_output_for_mask=zero_output_for_mask, activity_regularizer=activity_regularizer,
                         **kwargs)

    units = _cell_attribute("units")
    activation = _cell_attribute("activation")
    use_bias = _cell_attribute("use_bias")
    kernel_initializer = _cell_attribute("kernel_initializer")
    recurrent_initializer = _cell_attribute("recurrent_initializer")
    bias_initializer = _cell_attribute("bias_initializer")
    kernel_regularizer = _cell_attribute("kernel_regularizer")
    recurrent_regularizer = _cell_attribute("recurrent_regularizer")
    bias_regularizer = _cell_attribute("bias_regularizer")
    kernel_constraint = _cell_attribute("kernel_constraint")
    recurrent_constraint = _cell_attribute("recurrent_constraint")
    bias_constraint = _cell_attribute("bias_constraint")
    dropout = _cell_attribute("dropout")
    recurrent_dropout = _cell_attribute("recurrent_dropout")
    seed = _cell_attribute("seed")
    kernel = _cell_attribute("kernel")
    recurrent_kernel = _cell_attribute("recurrent_kernel")
    bias = _cell_attribute("bias")

    def _dropped(self, x, training):
        """The input with its dropout mask applied (training only; one mask per sequence, fixed over
        time), and the recurrent dropout mask (or None)."""
        cell = self.cell
        batch, steps, features = x.shape
        if training and cell.dropout > 0:
            x = ops.dropout_mask_apply(x, cell._draw((batch, 1, features), x.dtype, cell.dropout))
        rdm = None
        if training and cell.recurrent_dropout > 0:
            rdm = cell._draw((batch, cell.units), x.dtype, cell.recurrent_dropout)
        return x, rdm

    def _project(self, x, training, bias):
        """All gates' input projection for the whole sequence in one matmul (time-major inside, so that
        each step's slice is contiguous), and the recurrent dropout mask. An embedding lookup is looked
        up again in time-major order, so that the projection projects the embedding table instead
        (``ops.linear``)."""
        x, rdm = self._dropped(x, training)
        batch, steps, features = x.shape
        table, ids = ops.gathered_rows(x, batch * steps)
        if table is not None:
            flat = ops.take(table, B.xp.ascontiguousarray(ids.T).reshape(-1))
        else:
            flat = ops.reshape(ops.transpose(x, (1, 0, 2)), (steps * batch, features))
        proj = ops.linear(flat, self.cell.kernel, bias)
        proj = ops.transpose(ops.reshape(proj, (steps, batch, proj.shape[-1])), (1, 0, 2))
        return proj, rdm

    def _fused_activations(self):
        names = [fused.fusable(self.cell.activation)]
        if hasattr(self.cell, "recurrent_activation"):
            names.append(fused.fusable(self.cell.recurrent_activation))
        return None if None in names else names

    def _finish(self, outs):
        sequence, *finals = outs
        output = sequence if self.return_sequences else ops.getitem(sequence, (slice(None), -1))
        return output, finals

    def _options(self, mask, rdm):
        # the final states only when they are used: without them the node's output is the outputs alone
        return dict(mask=mask, go_backwards=self.go_backwards, recurrent_dropout_mask=rdm,
                    zero_output_for_mask=self.zero_output_for_mask, return_states=self.return_state or self.stateful)

    def get_config(self) -> dict:
        config = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "batch_input_shape"):
            config.pop(key, None)
        return dict(Layer.get_config(self), **config, **self._rnn_config())

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class SimpleRNN(_FusedRNN):
    """Fully-connected RNN whose output is fed back: h_t = activation(x_t·kernel + h_{t−1}·recurrent_kernel + bias).

    Weights: kernel (features, units), recurrent_kernel (units, units), bias (units,).
    """

    _cell_class = SimpleRNNCell
    _cell_name = "simple_rnn_cell"

    def _run(self, x, states, mask, training):
        acts = self._fused_activations()
        if acts is None:
            return super()._run(x, states, mask, training)
        proj, rdm = self._project(x, training, self.cell.bias)
        return self._finish(fused.simple_rnn(proj, states[0], self.cell.recurrent_kernel, acts[0],
                                             **self._options(mask, rdm)))


class LSTM(_FusedRNN):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), Keras's gate order i, f, c, o.

    Weights: kernel (features, 4·units), recurrent_kernel (units, 4·units), bias (4·units,)
    (``unit_forget_bias``: the forget gate's bias starts at 1). States: [h, c].
    """

    _cell_class = LSTMCell
    _cell_name = "lstm_cell"
    _cell_args = ("recurrent_activation", "unit_forget_bias")

    def __init__(self, units=None, activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True,
                 **kwargs):
        kwargs.setdefault("recurrent_activation", recurrent_activation)
        kwargs.setdefault("unit_forget_bias", unit_forget_bias)
        super().__init__(units, activation=activation, **kwargs)

    recurrent_activation = _cell_attribute("recurrent_activation")
    unit_forget_bias = _cell_attribute("unit_forget_bias")

    def _run(self, x, states, mask, training):
        acts = self._fused_activations()
        if acts is None:
            return super()._run(x, states, mask, training)
        # the input projection runs inside the fused node (one matmul over the sequence, bias folded in)
        x, rdm = self._dropped(x, training)
        cell = self.cell
        return self._finish(fused.lstm_with_input(x, cell.kernel, cell.bias, states[0], states[1],
                                                  cell.recurrent_kernel, acts[1], acts[0], **self._options(mask, rdm)))


class GRU(_FusedRNN):
    """Gated recurrent unit (Cho et al. 2014), Keras's gate order z, r, h.

    ``reset_after=True`` (default; torch's and cuDNN's convention): bias (2, 3·units) holding the input
    and the recurrent bias. ``reset_after=False`` (the original convention): bias (3·units,).
    Weights: kernel (features, 3·units), recurrent_kernel (units, 3·units), bias.
    """

    _cell_class = GRUCell
    _cell_name = "gru_cell"
    _cell_args = ("recurrent_activation", "reset_after")

    def __init__(self, units=None, activation="tanh", recurrent_activation="sigmoid", reset_after=True, **kwargs):
        kwargs.setdefault("recurrent_activation", recurrent_activation)
        kwargs.setdefault("reset_after", reset_after)
        super().__init__(units, activation=activation, **kwargs)

    recurrent_activation = _cell_attribute("recurrent_activation")
    reset_after = _cell_attribute("reset_after")

    def _run(self, x, states, mask, training):
        acts = self._fused_activations()
        if acts is None:
            return super()._run(x, states, mask, training)
        input_bias, recurrent_bias = self.cell._biases()
        proj, rdm = self._project(x, training, input_bias)
        return self._finish(fused.gru(proj, states[0], self.cell.recurrent_kernel, recurrent_bias,
                                      reset_after=self.cell.reset_after, recurrent_activation=acts[1],
                                      activation=acts[0], **self._options(mask, rdm)))


__all__ = ["RNN", "SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell"]
