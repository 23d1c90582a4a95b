"""``Sequential``: a plain stack of layers, each feeding the next."""

from __future__ import annotations

from ..autodiff.replay import replay_safe
from ..autodiff.variable import structure_changed
from ..layers.base import KerasTensor, Layer
from ..layers.core import Input, InputLayer
from .model import Model


class Sequential(Model):
    """A linear stack: ``Sequential([Dense(10, input_dim=2), Activation('tanh'), ...])`` or ``add()``.

    The input shape comes from the first layer (``input_shape`` / ``input_dim`` /
    an ``Input``), or from the first data the model sees.
    """

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._stack = []
        self._symbolic_outputs = []  # the symbolic output after each layer, when the input shape is known
        self._input_tensor = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer) -> None:
        """Append a layer (or an ``Input`` tensor as the first element)."""
        if isinstance(layer, KerasTensor):
            if self._stack or self._input_tensor is not None:
                raise ValueError(f"Sequential {self.name!r}: an Input can only be the first element")
            self._input_tensor = layer
            self._is_graph = False
            return
        if isinstance(layer, InputLayer):
            self.add(layer.tensor)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential {self.name!r}: add() expects a Layer, got {type(layer).__name__}")
        if any(layer is existing for existing in self._stack):
            raise ValueError(f"Sequential {self.name!r}: layer {layer.name!r} is already in the model")
        if not self._stack and self._input_tensor is None and layer._batch_input_shape is not None:
            self._input_tensor = Input(batch_shape=layer._batch_input_shape)
        self._stack.append(layer)
        self._layers.append(layer)
        structure_changed()
        if self._input_tensor is not None:
            self._symbolic_outputs.append(layer(self._symbolic_output))
            self.built = True

    @property
    def _symbolic_output(self):
        return self._symbolic_outputs[-1] if self._symbolic_outputs else self._input_tensor

    def pop(self) -> Layer:
        """Remove the last layer."""
        if not self._stack:
            raise TypeError(f"Sequential {self.name!r}: there is no layer to pop")
        layer = self._stack.pop()
        self._layers.remove(layer)
        structure_changed()
        if self._symbolic_outputs:
            self._symbolic_outputs.pop()
        return layer

    @property
    def layers(self) -> list:
        return list(self._stack)

    def build(self, input_shape=None) -> None:
        """Build every layer for ``input_shape`` (batch axis included, may be None)."""
        if input_shape is None:
            raise ValueError(f"Sequential {self.name!r}: build() needs an input_shape")
        if self._input_tensor is None:
            self._input_tensor = Input(batch_shape=(None,) + tuple(input_shape[1:]))
            for layer in self._stack:
                self._symbolic_outputs.append(layer(self._symbolic_output))
        self.built = True

    @replay_safe
    def call(self, inputs, training=None):
        x = inputs
        stack = self._stack
        absorbed = False  # the layer before made this one's output too
        for i, layer in enumerate(stack):
            if absorbed:
                absorbed = False
                continue
            with_next = getattr(layer, "_call_with_next", None) if i + 1 < len(stack) else None
            if with_next is not None:  # (a Conv2D with its MaxPooling2D, in inference)
                out = with_next(x, stack[i + 1])
                if out is not None:
                    x, absorbed = out, True
                    continue
            x = layer(x, training=training)
        return x

    @property
    def input_names(self) -> list:
        return ["input"]

    @property
    def output_names(self) -> list:
        return [self._stack[-1].name] if self._stack else ["output"]

    def _input_shapes(self):
        return [self._input_tensor.shape] if self._input_tensor is not None else None

    @property
    def input(self):
        if self._input_tensor is None:
            raise AttributeError(f"Sequential {self.name!r} has no defined input yet")
        return self._input_tensor

    @property
    def output(self):
        if self._input_tensor is None:
            raise AttributeError(f"Sequential {self.name!r} has no defined output yet")
        return self._symbolic_output

    @property
    def inputs(self):
        return [self._input_tensor] if self._input_tensor is not None else None

    @property
    def outputs(self):
        return [self._symbolic_output] if self._symbolic_output is not None else None

    @property
    def input_shape(self):
        if self._input_tensor is None:
            raise AttributeError(f"Sequential {self.name!r} has no defined input shape yet")
        return self._input_tensor.shape

    @property
    def output_shape(self):
        if self._symbolic_output is None:
            raise AttributeError(f"Sequential {self.name!r} has no defined output shape yet")
        return self._symbolic_output.shape

    def _output_shapes_for(self, xs) -> list:
        if self._symbolic_output is not None:
            return [self._symbolic_output.shape]
        return super()._output_shapes_for(xs)

    def get_config(self) -> dict:
        from ..saving.serialization import sequential_config

        return sequential_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving.serialization import sequential_from_config

        return sequential_from_config(config, custom_objects, cls)
