"""The ``Layer``: Keras's ``build()`` / ``call()`` pattern on shenjing tensors.

A layer is built lazily on its first call, when the input shape is known:
``build(input_shape)`` creates the weights with ``add_weight``; ``call(inputs)``
computes the forward pass with differentiable ops. Calling a layer on a
symbolic :class:`KerasTensor` (from ``Input``) records a node of the
functional graph instead of computing anything.
"""

from __future__ import annotations

import inspect

from .. import backend as B
from ..autodiff import Tensor, Variable, no_grad, ops
from ..autodiff.variable import _structure_generation, graph_generation, structure_changed
from ..utils.naming import to_snake_case, unique_name

_STRUCTURE_ATTRIBUTES = {"_layers", "_trainable_weights", "_non_trainable_weights"}  # see Layer.losses
# a model's attributes that ``fit`` and its callbacks set, which no layer's ops depend on: setting them keeps
# the recorded training steps (``variable.graph_generation``)
_NOT_IN_THE_GRAPH = {"history", "stop_training", "_train_variables"}
_LAYER_KWARGS = {"input_shape", "batch_input_shape", "batch_size", "input_dim", "input_length", "weights",
                 "batch_shape"}


def _shape_str(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class KerasTensor:
    """A symbolic tensor of the functional API: a shape (batch dimension ``None``), a dtype,
    and the node that produced it."""

    def __init__(self, shape, dtype=None, node=None, index: int = 0, name: str | None = None, data_format=None):
        self.data_format = data_format
        self.shape = tuple(shape)
        self.dtype = dtype or B.floatx()
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        return f"<KerasTensor shape={_shape_str(self.shape)} dtype={self.dtype} name={self.name}>"


class Node:
    """One call of a layer in a functional graph: its input and output KerasTensors."""

    def __init__(self, layer, inputs: list, outputs: list, kwargs: dict):
        self.layer = layer
        self.inputs = inputs
        self.outputs = outputs
        self.kwargs = kwargs


def _flatten(structure) -> list:
    if isinstance(structure, (list, tuple)):
        return [item for part in structure for item in _flatten(part)]
    return [structure]


def _is_symbolic(inputs) -> bool:
    return any(isinstance(x, KerasTensor) for x in _flatten(inputs))


def _map(fn, structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map(fn, s) for s in structure)
    return fn(structure)


def _shape_of(x):
    return tuple(x.shape)


def _mask_of(x):
    return getattr(x, "_keras_mask", None) if isinstance(x, Tensor) else None


def _attach_masks(out, out_mask) -> None:
    """Record the mask(s) ``compute_mask`` gave on the call's output tensor(s)."""
    if isinstance(out, Tensor):
        out._keras_mask = out_mask
    elif isinstance(out, (list, tuple)) and isinstance(out_mask, (list, tuple)):
        for o, m in zip(out, out_mask):
            o._keras_mask = m


class Layer:
    """Base class of all layers.

    Spatial layers (convolution, pooling, …) take ``data_format=None`` and set
    ``self._inherit_data_format = data_format is None``: such a layer adopts the
    data format of the layer that feeds it in a model (so a Keras 1 channels-first
    ``Convolution2D`` carries its ordering to the pooling after it), else the
    global ``backend.image_data_format()``; ``self.data_format`` is resolved
    before ``build`` runs.

    Subclasses implement ``build(input_shape)`` (create weights with
    ``add_weight``) and ``call(inputs, training=None)``; ``compute_output_shape``
    is optional (by default the layer is run once on zeros to find it).
    """

    def __init__(self, trainable: bool = True, name: str | None = None, dtype=None, **kwargs):
        unknown = set(kwargs) - _LAYER_KWARGS
        if unknown:
            raise TypeError(f"{type(self).__name__}: unexpected keyword argument(s) {sorted(unknown)}")
        object.__setattr__(self, "_layers", [])
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.built = False
        self._trainable = trainable
        self.dtype = dtype
        self._trainable_weights: list = []
        self._non_trainable_weights: list = []
        self._activity_losses: list = []
        self._inbound_nodes: list = []
        self._output_shapes: list = []
        self._initial_weights = kwargs.get("weights")
        self._batch_input_shape = None
        if kwargs.get("batch_shape") is not None:
            self._batch_input_shape = tuple(kwargs["batch_shape"])
        elif kwargs.get("batch_input_shape") is not None:
            self._batch_input_shape = tuple(kwargs["batch_input_shape"])
        elif kwargs.get("input_shape") is not None:
            self._batch_input_shape = (kwargs.get("batch_size"),) + tuple(kwargs["input_shape"])
        elif kwargs.get("input_dim") is not None:
            extra = (kwargs["input_length"],) if kwargs.get("input_length") is not None else ()
            self._batch_input_shape = (kwargs.get("batch_size"),) + extra + (int(kwargs["input_dim"]),)

    # ------------------------------------------------------------------ tracking
    def __setattr__(self, key, value):
        if isinstance(value, Layer) and key != "_outbound":
            if value not in self._layers:
                self._layers.append(value)
                structure_changed()
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value):
            for v in value:
                if v not in self._layers:
                    self._layers.append(v)
                    structure_changed()
        elif key in _STRUCTURE_ATTRIBUTES:
            structure_changed()
        elif key == "built":  # a (re)build may change which inputs the layer accepts
            object.__setattr__(self, "_valid_input_shape", None)
        if key not in _NOT_IN_THE_GRAPH:
            graph_generation[0] += 1
        object.__setattr__(self, key, value)

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = value
        for w in self._trainable_weights:
            w.requires_grad = bool(value) and w.trainable

    # ------------------------------------------------------------------- weights
    def add_weight(self, name: str, shape, initializer="glorot_uniform", regularizer=None, trainable: bool = True,
                   constraint=None, dtype=None, order: str = "C") -> Variable:
        """Create a weight ``Variable`` of ``shape`` from ``initializer`` and track it; ``order`` is its
        memory layout (see ``Variable``)."""
        from .. import constraints, initializers, regularizers

        dtype = dtype or self.dtype or B.floatx()
        init = initializers.get(initializer)
        value = init(tuple(int(s) for s in shape), dtype=dtype)
        object.__setattr__(self, "_valid_input_shape", None)  # the checks may depend on the weights' shapes
        var = Variable(value, name=f"{self.name}/{name}", trainable=trainable,
                       constraint=constraints.get(constraint), regularizer=regularizers.get(regularizer),
                       dtype=dtype, order=order)
        if trainable:
            var.requires_grad = self._trainable
            self._trainable_weights.append(var)
        else:
            self._non_trainable_weights.append(var)
        structure_changed()
        return var

    def _all_layers(self) -> list:
        """This layer's sub-layers, recursively, each once."""
        layers = self._layers
        if not layers:
            return []
        for layer in layers:
            if layer._layers:
                break
        else:  # no sub-layer has sub-layers of its own (a plain stack): the list without repeats
            return list({id(layer): layer for layer in layers}.values())
        seen, out, stack = set(), [], list(reversed(layers))
        while stack:
            layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            out.append(layer)
            stack.extend(reversed(layer._layers))
        return out

    @property
    def trainable_weights(self) -> list:
        if not self._trainable:
            return []
        weights = list(self._trainable_weights)
        for layer in self._all_layers():
            if layer._trainable:
                weights.extend(w for w in layer._trainable_weights if w not in weights)
        return weights

    @property
    def non_trainable_weights(self) -> list:
        weights = list(self._non_trainable_weights)
        if not self._trainable:
            weights = list(self._trainable_weights) + weights
        for layer in self._all_layers():
            own = layer._non_trainable_weights + (layer._trainable_weights if not (layer._trainable and self._trainable)
                                                  else [])
            weights.extend(w for w in own if w not in weights)
        return weights

    @property
    def weights(self) -> list:
        """All weights in creation order: this layer's own, then its sub-layers'."""
        out = list(self._trainable_weights) + list(self._non_trainable_weights)
        for layer in self._all_layers():
            out.extend(w for w in layer._trainable_weights + layer._non_trainable_weights if w not in out)
        return out

    trainable_variables = trainable_weights
    variables = weights

    def get_weights(self) -> list:
        """The weights' values as host arrays (copies)."""
        return [B.to_host(w.data).copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Set the weights from a list of arrays, in the order of ``get_weights``."""
        own = self.weights
        if len(weights) != len(own):
            raise ValueError(
                f"Layer {self.name!r}: set_weights expected a list of {len(own)} arrays "
                f"({', '.join(_shape_str(w.shape) for w in own) or 'no weights'}), got {len(weights)}")
        for var, value in zip(own, weights):
            if tuple(value.shape) != tuple(var.shape):
                raise ValueError(
                    f"Layer {self.name!r}: weight {var.name!r} has shape {_shape_str(var.shape)}, "
                    f"but the value given has shape {_shape_str(value.shape)}")
        for var, value in zip(own, weights):
            var.data[...] = B.asarray(value, dtype=var.dtype)

    def count_params(self) -> int:
        if not self.built and not self.weights:
            raise ValueError(f"Layer {self.name!r} is not built yet: its number of weights is unknown")
        return int(sum(w.size for w in self.weights))

    @property
    def losses(self) -> list:
        """The regularization penalties (scalar Tensors): weight regularizers, then activity losses."""
        # Where penalties can come from -- per layer (this one, then its sub-layers), its weights that
        # have a regularizer, then its activity losses -- is cached until the layers, their weights or a
        # regularizer change (``structure_changed``); the penalties themselves are computed every time.
        cached = self.__dict__.get("_penalty_sources")
        if cached is None or cached[0] != _structure_generation[0]:
            sources = tuple((tuple(w for w in layer._trainable_weights + layer._non_trainable_weights
                                   if w.regularizer is not None), None if layer is self else layer)
                            for layer in [self] + self._all_layers())  # (None for self: no reference cycle)
            cached = (_structure_generation[0], sources)
            object.__setattr__(self, "_penalty_sources", cached)
        out = []
        for regularized, layer in cached[1]:
            for w in regularized:
                out.append(w.regularizer(w))
            activity = (self if layer is None else layer)._activity_losses
            if activity:
                out.extend(activity)
        return out

    # -------------------------------------------------------------------- build
    def build(self, input_shape) -> None:
        self.built = True

    def _maybe_build(self, input_shape) -> None:
        if not self.built:
            if getattr(self, "_inherit_data_format", False) and self.data_format is None:
                self.data_format = B.image_data_format()
            self.build(input_shape)
            self.built = True
            if self._initial_weights is not None:
                self.set_weights(self._initial_weights)
                self._initial_weights = None

    def compute_output_shape(self, input_shape):
        """Output shape(s) for ``input_shape`` (batch dimension may be None): by default, run on zeros."""
        def dummy(shape):
            return Tensor(B.xp.zeros(tuple(1 if d is None else d for d in shape), dtype=B.floatx()))

        is_multi = isinstance(input_shape, list)
        with no_grad():
            sample = [dummy(s) for s in input_shape] if is_multi else dummy(input_shape)
            out = self.call(sample, **self._call_kwargs_for(training=False))
        if isinstance(out, (list, tuple)):
            return [(None,) + tuple(o.shape[1:]) for o in out]
        return (None,) + tuple(out.shape[1:])

    def _call_kwargs_for(self, training=None, **kwargs) -> dict:
        params = self._call_params()
        out = {k: v for k, v in kwargs.items() if k in params}
        if "training" in params:
            out["training"] = training
        return out

    def _call_params(self):
        cls = type(self)
        cached = cls.__dict__.get("_call_signature_cache")
        if cached is None:
            cached = set(inspect.signature(cls.call).parameters)
            cls._call_signature_cache = cached
        return cached

    def _call_flags(self) -> tuple:
        """Per class: (``call`` takes ``training``, ``call`` takes ``mask``, ``compute_mask`` is overridden)."""
        cls = type(self)
        cached = cls.__dict__.get("_call_flags_cache")
        if cached is None:
            params = self._call_params()
            cached = ("training" in params, "mask" in params, cls.compute_mask is not Layer.compute_mask)
            cls._call_flags_cache = cached
        return cached

    # --------------------------------------------------------------------- call
    def call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__}.call")

    def __call__(self, inputs, *args, training=None, **kwargs):
        if not args and not kwargs and self.built:
            # the common case, one concrete input and no extra arguments: the same steps as below,
            # without the generality of nested structures
            if isinstance(inputs, Tensor):
                mask = inputs._keras_mask
                if inputs.data.dtype.kind != "f":
                    inputs = self._to_tensor(inputs)
                return self._call_one(inputs, mask, training)
            if isinstance(inputs, B.xp.ndarray):
                return self._call_one(self._to_tensor(inputs), None, training)
        return self._call_general(inputs, *args, training=training, **kwargs)

    def _call_one(self, inputs, mask, training):
        """``__call__`` of a built layer on one Tensor whose mask is ``mask``."""
        takes_training, takes_mask, own_compute_mask = self._call_flags()
        self._check_input(inputs)
        if mask is not None and takes_mask:
            out = self.call(inputs, training=training, mask=mask) if takes_training else \
                self.call(inputs, mask=mask)
        else:
            out = self.call(inputs, training=training) if takes_training else self.call(inputs)
        if mask is not None or own_compute_mask:
            _attach_masks(out, self.compute_mask(inputs, mask))
        return out

    def _call_general(self, inputs, *args, training=None, **kwargs):
        if _is_symbolic(inputs):
            return self._symbolic_call(inputs, *args, training=training, **kwargs)
        masks = _map(_mask_of, inputs)
        inputs = _map(self._to_tensor, inputs)
        shape = [_shape_of(x) for x in inputs] if isinstance(inputs, (list, tuple)) else _shape_of(inputs)
        self._maybe_build(shape)
        self._check_input(inputs)
        call_kwargs = self._call_kwargs_for(training=training, **kwargs)
        masked = any(m is not None for m in _flatten(masks))
        if masked and "mask" in self._call_params() and kwargs.get("mask") is None:
            call_kwargs["mask"] = masks
        out = self.call(inputs, *args, **call_kwargs)
        if masked or type(self).compute_mask is not Layer.compute_mask:
            _attach_masks(out, self.compute_mask(inputs, masks if masked else None))
        return out

    # ------------------------------------------------------------------ masking
    supports_masking = False
    """True for layers that keep the time steps of their input: the input's mask passes through."""

    def compute_mask(self, inputs, mask=None):
        """The output's mask (a boolean array, True = a real step) from the input's: passed through
        by layers that support masking, dropped by the others. Masking and Embedding(mask_zero=True)
        override it to create masks."""
        if not self.supports_masking:
            return None
        if isinstance(mask, (list, tuple)):
            present = [m for m in mask if m is not None]
            if not present:
                return None
            combined = present[0]
            for m in present[1:]:
                combined = combined & m
            return combined
        return mask

    _accepts_integer_input = False  # True for layers fed indices (Embedding) and for models (pass-through)

    def _to_tensor(self, x):
        """Arrays become Tensors; numbers are cast to the layer's float type (integers too, except for
        layers that take indices), so that a float32 model never computes in float64."""
        if x is None:
            return x
        data = x.data if isinstance(x, Tensor) else B.asarray(x)
        kind = data.dtype.kind
        if kind not in "fiub":
            raise TypeError(f"Layer {self.name!r} ({type(self).__name__}): expected a numeric input, got an array "
                            f"of dtype {data.dtype}")
        if kind == "f" or not self._accepts_integer_input:
            target = self.dtype or B.floatx()
            if isinstance(x, Tensor):
                if data.dtype == target or kind == "f":
                    return x
                cast = ops.cast(x, target)
                cast._keras_mask = x._keras_mask
                return cast
            if data.dtype != target:
                data = data.astype(target)
        return x if isinstance(x, Tensor) else Tensor(data)

    def _resolve(self, module, identifier, argument: str):
        """``module.get(identifier)`` with an error that names this layer and the argument."""
        try:
            return module.get(identifier)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__} {self.name!r}, argument {argument!r}: {err}") from None

    def _check_input(self, inputs) -> None:
        """Hook for layers to validate a concrete input (shape, rank) before ``call``."""

    def _check_input_shape_once(self, shape) -> None:
        """``_check_input_shape`` for a concrete input's shape, skipped for the shape that passed last: a
        model calls a layer on batches of one shape, and the check costs microseconds a call (a tenth of
        a single-sample prediction's time over mnist_cnn's layers). Setting ``built`` or adding a weight
        forgets the shape."""
        if shape != self.__dict__.get("_valid_input_shape"):
            self._check_input_shape(shape)
            object.__setattr__(self, "_valid_input_shape", shape)

    def _symbolic_call(self, inputs, *args, training=None, **kwargs):
        flat = _flatten(inputs)
        shapes = [x.shape for x in flat]
        input_shape = shapes if isinstance(inputs, (list, tuple)) else shapes[0]
        upstream_format = next((x.data_format for x in flat if x.data_format), None)
        if getattr(self, "_inherit_data_format", False) and not self.built:
            self.data_format = upstream_format or B.image_data_format()
        self._maybe_build(input_shape)
        self._check_symbolic_input(input_shape)
        out_shape = self.compute_output_shape(input_shape)
        multi = isinstance(out_shape, list)
        node = Node(self, flat, [], dict(kwargs, training=training) if training is not None else dict(kwargs))
        node.structure = inputs
        data_format = getattr(self, "data_format", None) or upstream_format
        outputs = [KerasTensor(s, node=node, index=i, name=f"{self.name}_out{i}", data_format=data_format)
                   for i, s in enumerate(out_shape if multi else [out_shape])]
        node.outputs = outputs
        self._inbound_nodes.append(node)
        self._output_shapes.append(out_shape)
        return outputs if multi else outputs[0]

    def _check_symbolic_input(self, input_shape) -> None:
        """Validate a symbolic input shape: layers with a fixed input size override ``_check_input_shape``."""
        self._check_input_shape(input_shape)

    def _check_input_shape(self, input_shape) -> None:
        pass

    @property
    def output_shape(self):
        if not self._output_shapes:
            raise AttributeError(f"Layer {self.name!r} has never been called on a symbolic input: no output shape")
        shapes = self._output_shapes
        return shapes[0] if all(s == shapes[0] for s in shapes) else "multiple"

    @property
    def input(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has no inbound node")
        node = self._inbound_nodes[0]
        return node.structure

    @property
    def output(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer {self.name!r} has no inbound node")
        outs = self._inbound_nodes[0].outputs
        return outs if len(outs) > 1 else outs[0]

    @property
    def input_shape(self):
        inp = self.input
        return [x.shape for x in inp] if isinstance(inp, (list, tuple)) else inp.shape

    # ------------------------------------------------------------------- config
    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            config["dtype"] = self.dtype
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = self._batch_input_shape
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


def add_activity_loss(layer: Layer, regularizer, output: Tensor) -> None:
    """Record ``regularizer(output)`` as the layer's activity loss for this call (averaged over the batch)."""
    if regularizer is not None:
        layer._activity_losses = [ops.div(regularizer(output), output.shape[0] or 1)]
