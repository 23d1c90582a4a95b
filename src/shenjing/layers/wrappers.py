"""Layers that wrap layers, and sequence reshaping: ``TimeDistributed``, ``Bidirectional``, ``RepeatVector``."""

from __future__ import annotations

import copy

from ..autodiff import Tensor, ops
from .base import Layer, _shape_str
from .recurrent import deserialize_layer, serialize_layer


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated n times along a new time axis."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if n is None or int(n) != n or n <= 0:
            raise ValueError(f"RepeatVector {self.name!r}: n must be a positive integer, got {n!r}")
        self.n = int(n)

    def call(self, inputs):
        if inputs.ndim != 2:
            raise ValueError(f"RepeatVector {self.name!r}: expected an input of rank 2 (batch, features), got shape "
                             f"{_shape_str(inputs.shape)}")
        batch, features = inputs.shape
        return ops.broadcast_to(ops.expand_dims(inputs, 1), (batch, self.n, features))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"RepeatVector {self.name!r}: expected an input of rank 2 (batch, features), got shape "
                             f"{_shape_str(input_shape)}")
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self) -> dict:
        return dict(super().get_config(), n=self.n)


class Wrapper(Layer):
    """A layer around another layer (``self.layer``), whose weights are its own."""

    def __init__(self, layer, **kwargs):
        if isinstance(layer, dict):
            layer = deserialize_layer(layer)
        if not isinstance(layer, Layer):
            raise TypeError(f"{type(self).__name__}: expected a Layer to wrap, got {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer

    def get_config(self) -> dict:
        return dict(super().get_config(), layer=serialize_layer(self.layer))

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        return cls(**config)


class TimeDistributed(Wrapper):
    """Applies ``layer`` to every time step: (batch, time, …) is reshaped to (batch·time, …), run through
    the layer in one call, and reshaped back to (batch, time, …). The input's mask passes through."""

    supports_masking = True

    def _check_shape(self, shape) -> None:
        if len(shape) < 3:
            raise ValueError(f"TimeDistributed {self.name!r}: expected an input of rank >= 3 (batch, time, …), got "
                             f"shape {_shape_str(shape)}")

    def build(self, input_shape) -> None:
        self._check_shape(input_shape)
        self.layer._maybe_build((None,) + tuple(input_shape[2:]))
        self.built = True

    def compute_output_shape(self, input_shape):
        self._check_shape(input_shape)
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def call(self, inputs, training=None, mask=None):
        self._check_shape(inputs.shape)
        batch, steps = inputs.shape[:2]
        flat = ops.reshape(inputs, (batch * steps,) + tuple(inputs.shape[2:]))
        kwargs = {}
        if mask is not None and "mask" in self.layer._call_params():
            mask = mask.data if isinstance(mask, Tensor) else mask
            if mask.ndim > 2:
                kwargs["mask"] = mask.reshape((batch * steps,) + tuple(mask.shape[2:]))
        out = self.layer(flat, training=training, **kwargs)
        if isinstance(out, (list, tuple)):
            raise ValueError(f"TimeDistributed {self.name!r}: the wrapped layer must return one tensor")
        return ops.reshape(out, (batch, steps) + tuple(out.shape[1:]))


_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(Wrapper):
    """Runs a recurrent layer forwards and a copy of it backwards, and merges the two.

    The backward copy has ``go_backwards`` flipped (or is ``backward_layer``); its output sequence is
    reversed back to input order before merging. ``merge_mode``: 'concat' (default), 'sum', 'mul',
    'ave', or None (a list [forward, backward]). ``return_state`` appends the forward then the backward
    states; ``initial_state`` is split the same way (first half forward). With ``return_sequences``
    masked steps output zeros in both directions (as Keras).
    Both directions are fresh copies made from the layer's config (new weights); weights are ordered
    forward, then backward.
    """

    supports_masking = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if isinstance(layer, dict):
            layer = deserialize_layer(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize_layer(backward_layer)
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {_MERGE_MODES}, got {merge_mode!r}")
        for label, candidate in (("layer", layer), ("backward_layer", backward_layer)):
            if candidate is not None and not (isinstance(candidate, Layer) and hasattr(candidate, "go_backwards")):
                raise ValueError(f"Bidirectional: {label} must be a recurrent layer (with go_backwards, "
                                 f"return_sequences, return_state), got {candidate!r}")
        Layer.__init__(self, **kwargs)
        self._given_backward = backward_layer is not None
        forward = self._copy(layer, "forward_", layer.go_backwards)
        if backward_layer is None:
            backward_layer = self._copy(layer, "backward_", not layer.go_backwards)
        if forward.go_backwards == backward_layer.go_backwards:
            raise ValueError(f"Bidirectional {self.name!r}: the forward and backward layers must have different "
                             f"go_backwards, got {forward.go_backwards} for both")
        for attribute in ("return_sequences", "return_state", "stateful"):
            if getattr(forward, attribute) != getattr(backward_layer, attribute):
                raise ValueError(f"Bidirectional {self.name!r}: the forward and backward layers must have the same "
                                 f"{attribute}, got {getattr(forward, attribute)} and "
                                 f"{getattr(backward_layer, attribute)}")
        self.forward_layer = forward
        self.backward_layer = backward_layer
        for sub in (forward, backward_layer):
            if hasattr(sub, "zero_output_for_mask"):
                sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self.return_sequences = forward.return_sequences
        self.return_state = forward.return_state
        self.stateful = forward.stateful

    @staticmethod
    def _copy(layer, prefix, go_backwards):
        config = copy.deepcopy(layer.get_config())
        name = layer.name
        for p in ("forward_", "backward_"):
            if name.startswith(p):
                name = name[len(p):]
        config["name"] = prefix + name
        config["go_backwards"] = bool(go_backwards)
        return type(layer).from_config(config)

    @property
    def layer(self):
        return self.forward_layer

    # ---------------------------------------------------------------- shapes
    def build(self, input_shape) -> None:
        for sub in (self.forward_layer, self.backward_layer):
            sub._maybe_build(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            shape = tuple(shape[:-1]) + (None if shape[-1] is None else 2 * shape[-1],)
        if self.merge_mode is None:
            outputs = [tuple(shape), tuple(shape)]
        else:
            outputs = [tuple(shape)]
        if self.return_state:
            return outputs + states + states
        return outputs if self.merge_mode is None else outputs[0]

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        out = mask if self.return_sequences else None
        masks = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            masks += [None] * (2 * len(self.forward_layer._state_sizes()))
        return masks if len(masks) > 1 else masks[0]

    # ------------------------------------------------------------------ call
    def __call__(self, inputs, *args, initial_state=None, **kwargs):
        if initial_state is not None:
            if isinstance(inputs, (list, tuple)):
                raise ValueError(f"Bidirectional {self.name!r}: give the initial states either as initial_state= "
                                 f"or as extra list inputs, not both")
            inputs = [inputs] + (list(initial_state) if isinstance(initial_state, (list, tuple))
                                 else [initial_state])
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, mask=None, training=None):
        forward_state = backward_state = None
        if isinstance(inputs, (list, tuple)):
            inputs, states = inputs[0], list(inputs[1:])
            if len(states) % 2:
                raise ValueError(f"Bidirectional {self.name!r}: initial_state must hold the forward then the "
                                 f"backward states (an even number), got {len(states)}")
            half = len(states) // 2
            forward_state, backward_state = states[:half], states[half:]
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        y = self.forward_layer(inputs, initial_state=forward_state, mask=mask, training=training)
        y_rev = self.backward_layer(inputs, initial_state=backward_state, mask=mask, training=training)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = ops.getitem(y_rev, (slice(None), slice(None, None, -1)))
        if self.merge_mode == "concat":
            output = [ops.concatenate([y, y_rev], axis=-1)]
        elif self.merge_mode == "sum":
            output = [ops.add(y, y_rev)]
        elif self.merge_mode == "mul":
            output = [ops.mul(y, y_rev)]
        elif self.merge_mode == "ave":
            output = [ops.mul(ops.add(y, y_rev), 0.5)]
        else:
            output = [y, y_rev]
        output += states
        return output if len(output) > 1 else output[0]

    def reset_states(self, states=None) -> None:
        if not self.stateful:
            raise AttributeError(f"Bidirectional {self.name!r}: reset_states() needs a stateful layer")
        if states is None:
            self.forward_layer.reset_states()
            self.backward_layer.reset_states()
            return
        half = len(states) // 2
        self.forward_layer.reset_states(states[:half])
        self.backward_layer.reset_states(states[half:])

    reset_state = reset_states

    @property
    def states(self):
        forward, backward = self.forward_layer.states, self.backward_layer.states
        return None if forward is None or backward is None else list(forward) + list(backward)

    # ---------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = dict(Layer.get_config(self), layer=serialize_layer(self.forward_layer), merge_mode=self.merge_mode)
        if self._given_backward:
            config["backward_layer"] = serialize_layer(self.backward_layer)
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["layer"] = deserialize_layer(config["layer"])
        if isinstance(config.get("backward_layer"), dict):
            config["backward_layer"] = deserialize_layer(config["backward_layer"])
        return cls(**config)


__all__ = ["RepeatVector", "TimeDistributed", "Bidirectional", "Wrapper"]
