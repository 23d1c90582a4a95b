"""Merge layers: combine a list of tensors of compatible shapes into one."""

from __future__ import annotations

import functools

from ..autodiff import ops
from .base import Layer, _shape_str


class _Merge(Layer):
    """Elementwise merge of two or more inputs whose shapes broadcast (batch axis aside)."""

    supports_masking = True

    min_inputs = 2

    def _check_shapes(self, shapes):
        if not isinstance(shapes, list) or len(shapes) < self.min_inputs:
            count = len(shapes) if isinstance(shapes, list) else 1
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected a list of at least {self.min_inputs} "
                             f"inputs, got {count}")
        return shapes

    def build(self, input_shape):
        self._check_shapes(input_shape)
        self.compute_output_shape(input_shape)
        self.built = True

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        rank = max(len(s) for s in shapes)
        out = []
        for i in range(1, rank + 1):
            dims = {s[-i] for s in shapes if len(s) >= i and s[-i] not in (None, 1)}
            if len(dims) > 1:
                raise ValueError(f"{type(self).__name__} {self.name!r}: inputs of shapes "
                                 f"{', '.join(_shape_str(s) for s in shapes)} cannot be merged elementwise")
            known = [s[-i] for s in shapes if len(s) >= i]
            out.append(dims.pop() if dims else (None if None in known else 1))
        out.reverse()
        out[0] = None if any(s[0] is None for s in shapes) else out[0]
        return tuple(out)

    def call(self, inputs):
        return functools.reduce(self._merge, inputs)


class Add(_Merge):
    """Sum of the inputs (residual connections)."""

    _merge = staticmethod(ops.add)


class Subtract(_Merge):
    """First input minus the second."""

    def _check_shapes(self, shapes):
        if not isinstance(shapes, list) or len(shapes) != 2:
            raise ValueError(f"Subtract {self.name!r}: expected exactly 2 inputs, got "
                             f"{len(shapes) if isinstance(shapes, list) else 1}")
        return shapes

    _merge = staticmethod(ops.sub)


class Multiply(_Merge):
    """Elementwise product of the inputs."""

    _merge = staticmethod(ops.mul)


class Maximum(_Merge):
    _merge = staticmethod(ops.maximum)


class Minimum(_Merge):
    _merge = staticmethod(ops.minimum)


class Average(_Merge):
    """Elementwise mean of the inputs."""

    def call(self, inputs):
        return ops.div(functools.reduce(ops.add, inputs), float(len(inputs)))


class Concatenate(_Merge):
    """Join the inputs along ``axis``; all other axes must agree."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def compute_output_shape(self, input_shape):
        shapes = self._check_shapes(input_shape)
        rank = len(shapes[0])
        axis = self.axis % rank
        for s in shapes:
            if len(s) != rank or any(a != b and None not in (a, b) for i, (a, b) in enumerate(zip(s, shapes[0]))
                                     if i != axis):
                raise ValueError(f"Concatenate {self.name!r}: inputs must match except on axis {self.axis}, got "
                                 f"{', '.join(_shape_str(s) for s in shapes)}")
        size = None if any(s[axis] is None for s in shapes) else sum(s[axis] for s in shapes)
        return tuple(size if i == axis else shapes[0][i] for i in range(rank))

    def call(self, inputs):
        return ops.concatenate(inputs, axis=self.axis)

    def get_config(self):
        return dict(super().get_config(), axis=self.axis)


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)
