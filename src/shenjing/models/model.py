"""``Model``: the functional graph ``Model(inputs, outputs)`` and the base of subclassed models.

A functional model walks its recorded nodes in topological order; a
subclassed model runs the user's ``call()``. Both inherit the training API
(:class:`~shenjing.models.training.Trainer`) and are layers themselves, so a
model can be called inside another.
"""

from __future__ import annotations

from ..autodiff.replay import replay_safe
from ..layers.base import KerasTensor, Layer, _flatten
from ..layers.core import InputLayer
from .summary import print_summary
from .training import Trainer


def _graph_nodes(inputs: list, outputs: list) -> list:
    """The nodes between ``inputs`` and ``outputs``, each after the nodes that feed it (iterative DFS)."""
    order, state = [], {}
    stack = [(t.node, False) for t in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            state[id(node)] = "done"
            order.append(node)
            continue
        if state.get(id(node)):
            continue
        state[id(node)] = "open"
        stack.append((node, True))
        for t in reversed(node.inputs):
            if not state.get(id(t.node)):
                stack.append((t.node, False))
    input_ids = {id(t) for t in inputs}
    for node in order:
        if isinstance(node.layer, InputLayer) and id(node.outputs[0]) not in input_ids:
            raise ValueError(f"Graph disconnected: the output depends on input {node.layer.name!r}, which is not "
                             f"among the model's inputs ({', '.join(t.name for t in inputs)})")
    return order


def _layers_by_depth(nodes: list) -> list:
    """The graph's layers as Keras lists them: deepest first (inputs first), each once.

    A node's depth is its longest distance to an output; a layer's is that of its deepest node.
    """
    depth = {}
    consumers = {}
    for node in nodes:
        for t in node.inputs:
            consumers.setdefault(id(t.node), []).append(node)
    for node in reversed(nodes):
        depth[id(node)] = max((depth[id(c)] + 1 for c in consumers.get(id(node), [])), default=0)
    layer_depth, first_seen = {}, {}
    for i, node in enumerate(nodes):
        key = id(node.layer)
        layer_depth[key] = max(layer_depth.get(key, 0), depth[id(node)])
        first_seen.setdefault(key, (i, node.layer))
    ordered = sorted(first_seen.values(), key=lambda item: (-layer_depth[id(item[1])], item[0]))
    return [layer for _, layer in ordered]


class Model(Trainer, Layer):
    """A model: ``Model(inputs, outputs)`` (functional) or a subclass defining ``call()``.

    ``inputs`` / ``outputs``: a KerasTensor (from ``Input``) or a list / dict of them.
    """

    _accepts_integer_input = True  # each layer inside casts what it receives

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        inputs = kwargs.pop("input", inputs)  # Keras 1: Model(input=..., output=...)
        outputs = kwargs.pop("output", outputs)
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        Trainer.__init__(self)
        self._is_graph = False
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError(f"Model {self.name!r}: give both inputs= and outputs=")
            self._init_graph(inputs, outputs)

    # ------------------------------------------------------------------ graph
    def _init_graph(self, inputs, outputs) -> None:
        self._nested_inputs = inputs
        self._multi_output = isinstance(outputs, (list, tuple, dict))
        if isinstance(outputs, dict):
            self._output_names = list(outputs)
            outputs = list(outputs.values())
        if isinstance(inputs, dict):
            inputs = list(inputs.values())
        self._inputs = [t for t in _flatten(inputs)]
        self._outputs = [t for t in _flatten(outputs)]
        for t in self._inputs + self._outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"Model {self.name!r}: inputs and outputs must be symbolic tensors from Input() "
                                f"and layer calls, got {type(t).__name__}")
        self._nodes = _graph_nodes(self._inputs, self._outputs)
        self._graph_layers = _layers_by_depth(self._nodes)
        layers = self._graph_layers
        self._layers = []
        self.__setattr__("_tracked_graph_layers", [layer for layer in layers])
        if not hasattr(self, "_output_names"):
            self._output_names = [t.node.layer.name for t in self._outputs]
        self._is_graph = True
        self.built = True

    @property
    def layers(self) -> list:
        if self._is_graph:
            return list(self._graph_layers)
        return list(self._layers)

    @property
    def input(self):
        """The symbolic input (a list for several inputs), e.g. for ``Model(model.input, layer.output)``."""
        if not self._is_graph:
            return Layer.input.fget(self)
        return self._inputs[0] if len(self._inputs) == 1 else list(self._inputs)

    @property
    def output(self):
        if not self._is_graph:
            return Layer.output.fget(self)
        return self._outputs[0] if len(self._outputs) == 1 else list(self._outputs)

    @property
    def output_shape(self):
        """The output shape (a list of shapes for several outputs) of a functional model."""
        if not self._is_graph:
            return Layer.output_shape.fget(self)
        shapes = [t.shape for t in self._outputs]
        return shapes if self._multi_output else shapes[0]

    @property
    def inputs(self) -> list:
        return list(self._inputs) if self._is_graph else None

    @property
    def outputs(self) -> list:
        return list(self._outputs) if self._is_graph else None

    @property
    def input_names(self) -> list:
        return [t.node.layer.name for t in self._inputs] if self._is_graph else ["input"]

    @property
    def output_names(self) -> list:
        return self._output_names if self._is_graph else ["output"]

    def _input_shapes(self) -> list | None:
        return [t.shape for t in self._inputs] if self._is_graph else None

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by ``name`` or by ``index`` in ``model.layers``."""
        if index is not None:
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"get_layer: index {index} is out of range; model {self.name!r} has "
                                 f"{len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r} in model {self.name!r}; its layers are "
                         f"{[layer.name for layer in self.layers]}")

    @replay_safe
    def call(self, inputs, training=None):
        if not self._is_graph:
            raise NotImplementedError(f"Model {self.name!r}: a subclassed model must define call()")
        return self._run_graph(inputs, training)

    def _run_graph(self, inputs, training):
        flat = _flatten(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(flat) != len(self._inputs):
            raise ValueError(f"Model {self.name!r} expects {len(self._inputs)} input(s), got {len(flat)}")
        values = {id(t): v for t, v in zip(self._inputs, flat)}
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args = _substitute(node.structure, values)
            out = node.layer(args, training=training, **{k: v for k, v in node.kwargs.items() if k != "training"})
            outs = out if isinstance(out, (list, tuple)) else [out]
            for t, v in zip(node.outputs, outs):
                values[id(t)] = v
        result = [values[id(t)] for t in self._outputs]
        return result if self._multi_output else result[0]

    def compute_output_shape(self, input_shape):
        if self._is_graph:
            shapes = [t.shape for t in self._outputs]
            return shapes if self._multi_output else shapes[0]
        return super().compute_output_shape(input_shape)

    def build(self, input_shape) -> None:
        self.built = True

    def summary(self, line_length=None, positions=None, print_fn=None) -> None:
        """Print Keras's table: layer (type), output shape, param #, then the totals."""
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    # ---------------------------------------------------------------- saving
    def save(self, filepath, overwrite=True, include_optimizer=True) -> None:
        """The whole model (architecture, weights, optimizer state) in one file: ``.keras`` (zip) or ``.h5``."""
        from ..saving import save_model

        save_model(self, filepath, overwrite=overwrite, include_optimizer=include_optimizer)

    def save_weights(self, filepath, overwrite=True, save_format=None) -> None:
        """The weights: ``*.weights.h5`` (Keras 3 layout), ``*.h5`` (Keras 2 layout) or ``*.npz``."""
        from ..saving import save_weights

        save_weights(self, filepath, overwrite=overwrite, save_format=save_format)

    def load_weights(self, filepath, by_name=False, skip_mismatch=False) -> None:
        """Load weights saved by shenjing or Keras (either HDF5 layout, ``.keras``, ``.npz``)."""
        from ..saving import load_weights

        load_weights(self, filepath, by_name=by_name, skip_mismatch=skip_mismatch)

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON (``shenjing.models.model_from_json`` rebuilds it)."""
        from ..saving import model_to_json

        return model_to_json(self, **kwargs)

    def get_config(self) -> dict:
        if self._is_graph and type(self).call is Model.call:
            from ..saving.serialization import functional_config

            return functional_config(self)
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving.serialization import functional_from_config

        return functional_from_config(config, custom_objects, cls)


def _substitute(structure, values):
    if isinstance(structure, (list, tuple)):
        return type(structure)(_substitute(s, values) for s in structure)
    if isinstance(structure, KerasTensor):
        return values[id(structure)]
    return structure
