"""Core layers: Input, Dense, Activation, Dropout, Flatten, Reshape, Permute, Lambda."""

from __future__ import annotations

import math

from .. import activations, constraints, initializers, regularizers
from .. import backend as B
from ..autodiff import nn, ops
from ..autodiff.replay import replay_safe
from .base import KerasTensor, Layer, Node, _shape_str, add_activity_loss

# ----------------------------------------------------------------------------- Input


class InputLayer(Layer):
    """The entry point of a functional graph; holds the symbolic input tensor."""

    _accepts_integer_input = True

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, input_shape=None,
                 batch_input_shape=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is None:
            batch_shape = batch_input_shape
        if batch_shape is None:
            shape = shape if shape is not None else input_shape
            if shape is None:
                raise ValueError(f"InputLayer {self.name!r}: give shape= (without the batch axis) or batch_shape=")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        self._batch_input_shape = tuple(batch_shape)
        self.built = True
        node = Node(self, [], [], {})
        tensor = KerasTensor(self._batch_input_shape, dtype=dtype or B.floatx(), node=node, name=self.name)
        node.outputs = [tensor]
        node.structure = []
        self._inbound_nodes.append(node)
        self._output_shapes.append(self._batch_input_shape)
        self.tensor = tensor

    @replay_safe
    def call(self, inputs, training=None):
        return inputs

    def get_config(self) -> dict:
        return {"batch_shape": self._batch_input_shape, "name": self.name, "dtype": self.dtype}


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, **kwargs) -> KerasTensor:
    """A symbolic input of ``shape`` (without the batch axis) for the functional API."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype, batch_shape=batch_shape,
                      **kwargs).tensor


# ----------------------------------------------------------------------------- Dense

_KERAS1_DENSE = {"output_dim": "units", "init": "kernel_initializer", "W_regularizer": "kernel_regularizer",
                 "b_regularizer": "bias_regularizer", "W_constraint": "kernel_constraint",
                 "b_constraint": "bias_constraint", "bias": "use_bias"}


def rename_legacy_kwargs(kwargs: dict, table: dict, layer: str) -> dict:
    """Map Keras 1 argument names (``output_dim``, ``init``, ``border_mode``, …) to today's."""
    out = {}
    for key, value in kwargs.items():
        new = table.get(key, key)
        if new in out:
            raise TypeError(f"{layer}: got both {key!r} and {new!r}")
        out[new] = value
    return out


_FUSABLE = {activations.relu: "relu", activations.tanh: "tanh"}


class KernelLayer(Layer):
    """A layer with a kernel, an optional bias and an activation (Dense, the convolutions): the arguments
    they share, resolved with errors naming the argument, and their config."""

    _kernel_argument = "kernel"  # the prefix of the kernel's initializer/regularizer/constraint arguments

    def _init_kernel_args(self, activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                          bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint) -> None:
        kernel = self._kernel_argument
        self.activation = self._resolve(activations, activation, "activation")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = self._resolve(initializers, kernel_initializer, f"{kernel}_initializer")
        self.bias_initializer = self._resolve(initializers, bias_initializer, "bias_initializer")
        self.kernel_regularizer = self._resolve(regularizers, kernel_regularizer, f"{kernel}_regularizer")
        self.bias_regularizer = self._resolve(regularizers, bias_regularizer, "bias_regularizer")
        self.activity_regularizer = self._resolve(regularizers, activity_regularizer, "activity_regularizer")
        self.kernel_constraint = self._resolve(constraints, kernel_constraint, f"{kernel}_constraint")
        self.bias_constraint = self._resolve(constraints, bias_constraint, "bias_constraint")

    @property
    def _fused_activation(self):
        """The name of the activation when it is one the kernel's node applies itself ('relu',
        'tanh': ``nn.FUSED_ACTIVATIONS``), else None (then it is a node of its own)."""
        return _FUSABLE.get(self.activation)

    def _kernel_args_config(self) -> dict:
        return dict(activation=activations.serialize(self.activation), use_bias=self.use_bias,
                    kernel_initializer=initializers.serialize(self.kernel_initializer),
                    bias_initializer=initializers.serialize(self.bias_initializer),
                    kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
                    bias_regularizer=regularizers.serialize(self.bias_regularizer),
                    activity_regularizer=regularizers.serialize(self.activity_regularizer),
                    kernel_constraint=constraints.serialize(self.kernel_constraint),
                    bias_constraint=constraints.serialize(self.bias_constraint))


COLUMN_MAJOR_KERNEL_SIZE = 1 << 20
"""Dense kernels with at least this many entries (4 MiB in float32, beyond a core's L2 cache) are
stored column-major, PyTorch's (units, in) layout (``Variable(order="F")``). One sample's product with
such a kernel is bound by reading it, and is then a gemv that OpenBLAS runs on every core: mnist_cnn's
9216×128 kernel takes 52 µs against 137 µs row-major (2 threads). Below this size the two layouts are
within a few µs for one sample, and row-major's batched products are up to 10% faster (784×512 at
batch 128: 374 vs 459 µs for the kernel's gradient)."""


class Dense(KernelLayer):
    """``activation(inputs @ kernel + bias)`` on the last axis.

    Input (batch, …, in) -> output (batch, …, units); kernel (in, units), bias (units,).
    Keras 1 spellings (``output_dim``, ``init``, ``W_regularizer``, ``bias``) are accepted.
    """

    supports_masking = True

    def __init__(self, units=None, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS1_DENSE}
        if legacy:
            legacy = rename_legacy_kwargs(legacy, _KERAS1_DENSE, "Dense")
            units = legacy.pop("units", units)
            kernel_initializer = legacy.pop("kernel_initializer", kernel_initializer)
            kernel_regularizer = legacy.pop("kernel_regularizer", kernel_regularizer)
            bias_regularizer = legacy.pop("bias_regularizer", bias_regularizer)
            kernel_constraint = legacy.pop("kernel_constraint", kernel_constraint)
            bias_constraint = legacy.pop("bias_constraint", bias_constraint)
            use_bias = legacy.pop("use_bias", use_bias)
        super().__init__(**kwargs)
        if units is None or int(units) != units or units <= 0:
            raise ValueError(f"Dense {self.name!r}: units must be a positive integer, got {units!r}")
        self.units = int(units)
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint)

    def build(self, input_shape) -> None:
        if len(input_shape) < 2:
            raise ValueError(f"Dense {self.name!r}: expected an input of rank >= 2 (batch, features), "
                             f"got shape {_shape_str(input_shape)}")
        if input_shape[-1] is None:
            raise ValueError(f"Dense {self.name!r}: the last axis of the input must be known, got "
                             f"{_shape_str(input_shape)}")
        order = "F" if input_shape[-1] * self.units >= COLUMN_MAJOR_KERNEL_SIZE else "C"
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint, order=order)
        self.bias = (self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    def _check_input_shape(self, shape) -> None:
        expected = self.kernel.shape[0]
        if len(shape) < 2 or shape[-1] != expected:
            raise ValueError(f"Input 0 of layer {self.name!r} (Dense) is incompatible with the layer: expected the "
                             f"last axis to have size {expected} (shape (None, {expected})), but got an input of "
                             f"shape {_shape_str(shape)}")

    def _check_input(self, inputs) -> None:
        self._check_input_shape_once(tuple(inputs.shape))

    @replay_safe
    def call(self, inputs):
        fused = self._fused_activation
        if fused is not None:
            out = nn.dense(inputs, self.kernel, self.bias, fused)
        else:
            out = ops.linear(inputs, self.kernel, self.bias)
            out = self.activation(out) if self.activation is not activations.linear else out
        add_activity_loss(self, self.activity_regularizer, out)
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        return dict(super().get_config(), units=self.units, **self._kernel_args_config())


class Activation(Layer):
    """Applies an activation function (a name such as ``'tanh'`` or a callable)."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = self._resolve(activations, activation, "activation")

    @replay_safe
    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return dict(super().get_config(), activation=activations.serialize(self.activation))


# --------------------------------------------------------------------------- Dropout


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs during training and scales the rest by 1/(1 − rate).

    Inactive in inference. ``noise_shape`` broadcasts one mask over axes of size 1;
    ``seed`` makes the masks of this layer reproducible on its own. The mask is drawn from 16
    random bits per entry and applied in one pass (``ops.dropout``).
    """

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        if "p" in kwargs:  # Keras 1
            rate = kwargs.pop("p")
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout {self.name!r}: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = noise_shape
        self.seed = seed
        self._generator = None if seed is None else B.generator(seed)

    @replay_safe
    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        noise_shape = None
        if self.noise_shape is not None:
            if len(self.noise_shape) != inputs.ndim:
                raise ValueError(f"Dropout {self.name!r}: noise_shape {tuple(self.noise_shape)} must have one entry "
                                 f"per input axis, got an input of shape {tuple(inputs.shape)}")
            noise_shape = tuple(s if n is None else n for s, n in zip(inputs.shape, self.noise_shape))
        return ops.dropout(inputs, self.rate, self._generator, noise_shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return dict(super().get_config(), rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)


# ------------------------------------------------------------------------ reshaping


class Flatten(Layer):
    """(batch, d1, d2, …) -> (batch, d1·d2·…). With ``data_format='channels_first'`` the
    channels are moved last first, so that a model's Dense weights match either layout."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format
        self._inherit_data_format = data_format is None

    @replay_safe
    def call(self, inputs):
        if self.data_format == "channels_first" and inputs.ndim > 2:
            inputs = ops.transpose(inputs, (0,) + tuple(range(2, inputs.ndim)) + (1,))
        return ops.reshape(inputs, (inputs.shape[0], -1))

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))

    def get_config(self) -> dict:
        return dict(super().get_config(), data_format=self.data_format)


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def _resolve(self, input_shape):
        size = math.prod(input_shape[1:])
        known = math.prod(d for d in self.target_shape if d != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"Reshape {self.name!r}: cannot reshape {_shape_str(input_shape)} to "
                                 f"{_shape_str(self.target_shape)}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if known != size:
            raise ValueError(f"Reshape {self.name!r}: an input of shape {_shape_str(input_shape)} ({size} values per "
                             f"sample) cannot become {_shape_str(self.target_shape)} ({known} values)")
        return self.target_shape

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0],) + self._resolve(inputs.shape))

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            return (input_shape[0],) + tuple(None if d == -1 else d for d in self.target_shape)
        return (input_shape[0],) + self._resolve(input_shape)

    def get_config(self) -> dict:
        return dict(super().get_config(), target_shape=self.target_shape)


class Permute(Layer):
    """Permute the non-batch axes: ``dims`` is 1-indexed, e.g. ``(2, 1)`` swaps the two axes."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute {self.name!r}: dims must be a permutation of 1..{len(self.dims)}, "
                             f"got {self.dims}")

    def call(self, inputs):
        if inputs.ndim != len(self.dims) + 1:
            raise ValueError(f"Permute {self.name!r}: expected an input of rank {len(self.dims) + 1}, got shape "
                             f"{_shape_str(inputs.shape)}")
        return ops.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self) -> dict:
        return dict(super().get_config(), dims=self.dims)


class Lambda(Layer):
    """Wrap a function of tensors as a layer (saved by name only; loading needs custom_objects)."""

    def __init__(self, function, output_shape=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        self.function = function
        self._fixed_output_shape = output_shape
        self.arguments = arguments or {}

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._fixed_output_shape is not None:
            return (input_shape[0],) + tuple(self._fixed_output_shape)
        return super().compute_output_shape(input_shape)

    def get_config(self) -> dict:
        return dict(super().get_config(), function=getattr(self.function, "__name__", "lambda"))
