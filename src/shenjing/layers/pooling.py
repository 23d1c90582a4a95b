"""Pooling layers: MaxPooling1D/2D, AveragePooling1D/2D and their global forms.

2-D layers given ``data_format=None`` adopt the data format of the layer that feeds them
(see :class:`~shenjing.layers.base.Layer`), so a ``MaxPooling2D`` after a Keras 1
channels-first ``Convolution2D`` pools the right axes. 1-D layers given None use
``backend.image_data_format()``.

Keras 1 spellings are accepted: ``border_mode`` (padding) and ``dim_ordering`` ('th' is
channels-first, 'tf' channels-last) for the 2-D layers — a 2-D layer given either one is a
Keras 1 layer and defaults to Theano's channels-first ordering — and ``pool_length``,
``stride``, ``border_mode`` for the 1-D layers (channels-last, as Keras 1's).
"""

from __future__ import annotations

from .. import backend as B
from ..autodiff import conv as C
from ..autodiff import ops
from .base import Layer, _shape_str

_DIM_ORDERING = {"th": C.CHANNELS_FIRST, "tf": C.CHANNELS_LAST, "default": C.CHANNELS_FIRST,
                 C.CHANNELS_FIRST: C.CHANNELS_FIRST, C.CHANNELS_LAST: C.CHANNELS_LAST}


def legacy_data_format(value, layer: str) -> str:
    """Keras 1's ``dim_ordering`` value ('th', 'tf', 'default') as a data format."""
    if value not in _DIM_ORDERING:
        raise ValueError(f"{layer}: dim_ordering must be 'th' (channels_first) or 'tf' (channels_last), got {value!r}")
    return _DIM_ORDERING[value]


def check_data_format(value, layer: str):
    """``value`` if it is None or a data format, else a ValueError naming ``layer``."""
    if value is not None and value not in (C.CHANNELS_LAST, C.CHANNELS_FIRST):
        raise ValueError(f"{layer}: data_format must be 'channels_last' or 'channels_first' (or None), "
                         f"got {value!r}")
    return value


def check_padding(value, allowed, layer: str) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        expected = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{layer}: padding must be one of {expected}, got {value!r}")
    return value.lower()


def spatial_layout(rank: int, data_format: str) -> str:
    """A human description of the expected input layout, for error messages."""
    names = "steps" if rank == 1 else "rows, cols"
    return f"(batch, {names}, channels)" if data_format == C.CHANNELS_LAST else f"(batch, channels, {names})"


class _SpatialLayer(Layer):
    """Shared data-format handling of the spatial layers (rank 1 or 2 spatial axes)."""

    rank = 2

    def _init_data_format(self, data_format, legacy_default=None):
        data_format = check_data_format(data_format, self._describe())
        if data_format is None and legacy_default is not None:
            data_format = legacy_default
        self.data_format = data_format
        # 2-D layers follow the upstream layer's format; 1-D ones default to the global setting
        self._inherit_data_format = data_format is None and self.rank == 2

    def _describe(self) -> str:
        name = self.__dict__.get("name")
        return f"{type(self).__name__} {name!r}" if name else type(self).__name__

    @property
    def _format(self) -> str:
        return self.data_format or B.image_data_format()

    def build(self, input_shape) -> None:
        if self.data_format is None:
            self.data_format = B.image_data_format()
        self._check_rank(input_shape)
        self.built = True

    def _check_rank(self, shape) -> None:
        if len(shape) != self.rank + 2:
            raise ValueError(f"{self._describe()}: expected an input of rank {self.rank + 2} "
                             f"{spatial_layout(self.rank, self._format)}, got shape {_shape_str(shape)}")

    def _spatial(self, shape) -> tuple:
        return tuple(shape[1:-1]) if self._format == C.CHANNELS_LAST else tuple(shape[2:])

    def _channels(self, shape):
        return shape[-1] if self._format == C.CHANNELS_LAST else shape[1]

    def _assemble(self, batch, spatial, channels) -> tuple:
        if self._format == C.CHANNELS_LAST:
            return (batch,) + tuple(spatial) + (channels,)
        return (batch, channels) + tuple(spatial)

    def _check_input(self, inputs) -> None:
        self._check_input_shape_once(tuple(inputs.shape))


# ------------------------------------------------------------------------ local pooling


class _Pooling(_SpatialLayer):
    kind = "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        legacy_default = None
        if self.rank == 1:
            if "pool_length" in kwargs:
                pool_size = kwargs.pop("pool_length")
            if "stride" in kwargs:
                strides = kwargs.pop("stride")
            if "border_mode" in kwargs:
                padding = kwargs.pop("border_mode")
        else:
            if "border_mode" in kwargs:
                padding = kwargs.pop("border_mode")
                legacy_default = C.CHANNELS_FIRST
            if "dim_ordering" in kwargs:
                legacy_default = legacy_data_format(kwargs.pop("dim_ordering"), type(self).__name__)
        super().__init__(**kwargs)
        try:
            self.pool_size = C.normalize_tuple(pool_size, self.rank, "pool_size")
            self.strides = self.pool_size if strides is None else C.normalize_tuple(strides, self.rank, "strides")
        except ValueError as err:
            raise ValueError(f"{self._describe()}: {err}") from None
        self.padding = check_padding(padding, ("valid", "same"), self._describe())
        self._init_data_format(data_format, legacy_default)

    def _output_spatial(self, spatial) -> tuple:
        out = []
        for size, k, s in zip(spatial, self.pool_size, self.strides):
            if size is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-size // s))
            else:
                out.append((size - k) // s + 1)
        return tuple(out)

    def _check_input_shape(self, shape) -> None:
        self._check_rank(shape)
        spatial = self._spatial(shape)
        if self.padding == "valid" and any(n is not None and n < k for n, k in zip(spatial, self.pool_size)):
            raise ValueError(f"{self._describe()}: the pool size {self.pool_size} is larger than the input's "
                             f"spatial size {_shape_str(spatial)} (input shape {_shape_str(shape)}) with "
                             f"padding 'valid'")

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        spatial = self._output_spatial(self._spatial(input_shape))
        return self._assemble(input_shape[0], spatial, self._channels(input_shape))

    def call(self, inputs):
        fn = {(1, "max"): C.max_pool1d, (1, "avg"): C.avg_pool1d,
              (2, "max"): C.max_pool2d, (2, "avg"): C.avg_pool2d}[(self.rank, self.kind)]
        return fn(inputs, self.pool_size if self.rank == 2 else self.pool_size[0],
                  self.strides if self.rank == 2 else self.strides[0], self.padding, self._format)

    def get_config(self) -> dict:
        return dict(super().get_config(), pool_size=self.pool_size, strides=self.strides, padding=self.padding,
                    data_format=self.data_format)


class MaxPooling2D(_Pooling):
    """The maximum over each ``pool_size`` window, moved by ``strides`` (default: the pool size).

    Input (batch, rows, cols, channels) or (batch, channels, rows, cols); 'valid' or 'same' padding.
    """

    rank, kind = 2, "max"


class AveragePooling2D(_Pooling):
    """The mean over each window; with 'same' padding, the mean of the window's real pixels."""

    rank, kind = 2, "avg"


class MaxPooling1D(_Pooling):
    """The maximum over each ``pool_size`` window of the steps axis: (batch, steps, features)."""

    rank, kind = 1, "max"


class AveragePooling1D(_Pooling):
    """The mean over each window of the steps axis."""

    rank, kind = 1, "avg"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D


# ----------------------------------------------------------------------- global pooling


class _GlobalPooling(_SpatialLayer):
    kind = "max"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        legacy_default = None
        if self.rank == 2 and "dim_ordering" in kwargs:
            legacy_default = legacy_data_format(kwargs.pop("dim_ordering"), type(self).__name__)
        super().__init__(**kwargs)
        self.keepdims = bool(keepdims)
        self._init_data_format(data_format, legacy_default)

    def _axes(self) -> tuple:
        return tuple(range(1, self.rank + 1)) if self._format == C.CHANNELS_LAST else tuple(range(2, self.rank + 2))

    def _check_input_shape(self, shape) -> None:
        self._check_rank(shape)

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        if self.keepdims:
            return self._assemble(input_shape[0], (1,) * self.rank, self._channels(input_shape))
        return (input_shape[0], self._channels(input_shape))

    def call(self, inputs):
        reduce = ops.max if self.kind == "max" else ops.mean
        return reduce(inputs, axis=self._axes(), keepdims=self.keepdims)

    def get_config(self) -> dict:
        return dict(super().get_config(), data_format=self.data_format, keepdims=self.keepdims)


class GlobalMaxPooling2D(_GlobalPooling):
    """The maximum over all pixels of each channel: (batch, channels), or (batch, 1, 1, channels) with keepdims."""

    rank, kind = 2, "max"


class GlobalAveragePooling2D(_GlobalPooling):
    """The mean over all pixels of each channel."""

    rank, kind = 2, "avg"


class GlobalMaxPooling1D(_GlobalPooling):
    """The maximum over the steps of each feature: (batch, steps, features) -> (batch, features)."""

    rank, kind = 1, "max"


class GlobalAveragePooling1D(_GlobalPooling):
    """The mean over the steps of each feature."""

    rank, kind = 1, "avg"


GlobalMaxPool2D = GlobalMaxPooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool1D = GlobalMaxPooling1D
GlobalAvgPool1D = GlobalAveragePooling1D

__all__ = [
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "MaxPool1D", "MaxPool2D",
    "AvgPool1D", "AvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D",
]
