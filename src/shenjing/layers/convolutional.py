"""Convolution layers: Conv1D, Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D,
ZeroPadding1D/2D, Cropping1D/2D, UpSampling1D/2D, and the Keras 1 ``Convolution1D`` /
``Convolution2D``.

Kernels use Keras's layouts: Conv2D (kh, kw, in_channels/groups, filters), Conv1D
(k, in_channels/groups, filters), Conv2DTranspose (kh, kw, filters, in_channels),
DepthwiseConv2D (kh, kw, in_channels, depth_multiplier). The arithmetic lives in
:mod:`shenjing.autodiff.conv`.

``data_format=None``: 2-D layers adopt the format of the layer feeding them (see
:class:`~shenjing.layers.base.Layer`), else ``backend.image_data_format()``; 1-D layers use
``backend.image_data_format()``.

The Keras 1 classes take Keras 1's arguments — ``Convolution2D(nb_filter, nb_row, nb_col,
border_mode=, subsample=, dim_ordering=, init=, W_regularizer=, b_regularizer=,
W_constraint=, b_constraint=, bias=)``, ``Convolution1D(nb_filter, filter_length,
border_mode=, subsample_length=, ...)`` — as well as today's. ``Convolution2D`` defaults to
Theano's channels-first ordering unless ``dim_ordering='tf'`` / ``data_format`` says
otherwise; ``Convolution1D`` is channels-last (Keras 1's 1-D layers had no other ordering).
Their weights keep today's layout.

The pooling layers are importable from here too, as they were in Keras 1
(``from keras.layers.convolutional import Convolution2D, MaxPooling2D``).
"""

from __future__ import annotations

from .. import activations, constraints, initializers, regularizers
from ..autodiff import Tensor, ops
from ..autodiff import conv as C
from ..autodiff.tensor import is_grad_enabled
from .base import Layer, _shape_str, add_activity_loss
from .core import KernelLayer, rename_legacy_kwargs
from .pooling import (
    AveragePooling1D,
    AveragePooling2D,
    AvgPool1D,
    AvgPool2D,
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalAvgPool1D,
    GlobalAvgPool2D,
    GlobalMaxPool1D,
    GlobalMaxPool2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
    MaxPool1D,
    MaxPool2D,
    MaxPooling1D,
    MaxPooling2D,
    _SpatialLayer,
    check_padding,
    legacy_data_format,
)

# ----------------------------------------------------------------------- convolutions


class _Conv(_SpatialLayer, KernelLayer):
    """Shared machinery of the convolution layers (``rank`` spatial axes)."""

    rank = 2
    _paddings = ("valid", "same")
    _has_groups = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = None if filters is None else self._positive_int(filters, "filters")
        try:
            self.kernel_size = C.normalize_tuple(kernel_size, self.rank, "kernel_size")
            self.strides = C.normalize_tuple(strides, self.rank, "strides")
            self.dilation_rate = C.normalize_tuple(dilation_rate, self.rank, "dilation_rate")
        except ValueError as err:
            raise ValueError(f"{self._describe()}: {err}") from None
        self.padding = check_padding(padding, self._paddings, self._describe())
        self._init_data_format(data_format)
        self.groups = self._positive_int(groups, "groups")
        if self.filters is not None and self.filters % self.groups:
            raise ValueError(f"{self._describe()}: groups={self.groups} must divide filters={self.filters}")
        self._init_kernel_args(activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
                               bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint)

    def _positive_int(self, value, argument: str) -> int:
        if isinstance(value, bool) or not (hasattr(value, "__index__") or isinstance(value, float)) \
                or int(value) != value or value <= 0:
            raise ValueError(f"{self._describe()}: {argument} must be a positive integer, got {value!r}")
        return int(value)

    # ---------------------------------------------------------------- shapes
    def _k_eff(self) -> tuple:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))

    def _output_spatial(self, spatial) -> tuple:
        out = []
        for size, k, s in zip(spatial, self._k_eff(), self.strides):
            if size is None:
                out.append(None)
            elif self.padding == "valid":
                out.append((size - k) // s + 1)
            else:  # same, causal: the padding keeps the length
                out.append(-(-size // s))
        return tuple(out)

    def _expected_channels(self):
        kernel = getattr(self, "kernel", None)
        return None if kernel is None else kernel.shape[-2] * self.groups

    def _check_channels(self, channels) -> None:
        if channels is None:
            raise ValueError(f"{self._describe()}: the channel axis of the input must be known "
                             f"({'last' if self._format == C.CHANNELS_LAST else 'axis 1'}), got None")
        if channels % self.groups:
            raise ValueError(f"{self._describe()}: groups={self.groups} must divide the number of input channels, "
                             f"got {channels} channels")

    def _check_input_shape(self, shape) -> None:
        self._check_rank(shape)
        channels = self._channels(shape)
        expected = self._expected_channels()
        if expected is not None and channels != expected:
            raise ValueError(f"{self._describe()}: expected {expected} input channels "
                             f"{spatial_layout_channels(self.rank, self._format, expected)}, but got an input of "
                             f"shape {_shape_str(shape)} with {channels} channels")
        self._check_spatial(shape)

    def _check_spatial(self, shape) -> None:
        if self.padding != "valid":
            return
        spatial = self._spatial(shape)
        if any(n is not None and n < k for n, k in zip(spatial, self._k_eff())):
            dilated = "" if all(d == 1 for d in self.dilation_rate) else f" (dilated to {self._k_eff()})"
            raise ValueError(f"{self._describe()}: the kernel {self.kernel_size}{dilated} is larger than the "
                             f"input's spatial size {_shape_str(spatial)} (input shape {_shape_str(shape)}) with "
                             f"padding 'valid'")

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        return self._assemble(input_shape[0], self._output_spatial(self._spatial(input_shape)), self.filters)

    # ----------------------------------------------------------------- build
    def _kernel_shape(self, channels) -> tuple:
        return self.kernel_size + (channels // self.groups, self.filters)

    def build(self, input_shape) -> None:
        super().build(input_shape)
        channels = self._channels(input_shape)
        self._check_channels(channels)
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels), self.kernel_initializer,
                                      self.kernel_regularizer, constraint=self.kernel_constraint)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    # ------------------------------------------------------------------ call
    def _convolve(self, inputs, activation=None):
        fn = C.conv1d if self.rank == 1 else C.conv2d
        strides = self.strides[0] if self.rank == 1 else self.strides
        dilation = self.dilation_rate[0] if self.rank == 1 else self.dilation_rate
        return fn(inputs, self.kernel, self.bias, strides, self.padding, dilation, self.groups, self._format,
                  activation=activation)

    _fuses_activation = True  # whether ``_convolve`` applies a fusable activation itself

    def call(self, inputs):
        fused = self._fused_activation if self._fuses_activation else None
        out = self._convolve(inputs, fused) if fused is not None else self._convolve(inputs)
        if fused is None and self.activation is not activations.linear:
            out = self.activation(out)
        add_activity_loss(self, self.activity_regularizer, out)
        return out

    def get_config(self) -> dict:
        config = dict(super().get_config(), filters=self.filters, kernel_size=self.kernel_size,
                      strides=self.strides, padding=self.padding, data_format=self.data_format,
                      dilation_rate=self.dilation_rate)
        if self._has_groups:
            config["groups"] = self.groups
        return dict(config, **self._kernel_args_config())


def spatial_layout_channels(rank: int, data_format: str, channels) -> str:
    names = "steps" if rank == 1 else "rows, cols"
    if data_format == C.CHANNELS_LAST:
        return f"(batch, {names}, {channels})"
    return f"(batch, {channels}, {names})"


class Conv2D(_Conv):
    """2-D convolution: ``activation(conv(inputs, kernel) + bias)``.

    Input (batch, rows, cols, channels) (channels_last) or (batch, channels, rows, cols);
    kernel (kh, kw, channels/groups, filters). ``padding`` 'valid' or 'same' (TensorFlow's:
    the odd pixel at the bottom/right).
    """

    rank = 2

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         **kwargs)

    def _call_with_next(self, inputs, following):
        """``following(self(inputs))`` in one op, or None where that does not apply (the caller then calls the
        two layers). It applies when no gradient is recorded through them (inference, or a frozen convolution
        of an input that needs none), ``following`` is a 'valid' MaxPooling2D, both are channels last, neither
        changes how a layer is called, and nothing else would see this layer's output (no activity
        regularizer, no mask): :func:`~shenjing.autodiff.conv.conv2d_max_pool2d` pools each cache block of the
        convolution's output as it is made (mnist_cnn's predict at batch 1000: its 147 MB convolution output
        is never written)."""
        own, other = type(self), type(following)
        if (not isinstance(following, MaxPooling2D) or other.call is not MaxPooling2D.call
                or own.call is not Conv2D.call or own._convolve is not Conv2D._convolve
                or own.__call__ is not Layer.__call__ or other.__call__ is not Layer.__call__
                or own._check_input is not Conv2D._check_input or other._check_input is not MaxPooling2D._check_input
                or own.compute_mask is not Layer.compute_mask or other.compute_mask is not Layer.compute_mask
                or not (self.built and following.built) or type(inputs) is not Tensor
                or inputs._keras_mask is not None or self.groups != 1 or self.activity_regularizer is not None
                or self._format != C.CHANNELS_LAST or following._format != C.CHANNELS_LAST
                or following.padding != "valid" or inputs.data.dtype != self.kernel.data.dtype
                or (self._fused_activation is None and self.activation is not activations.linear)):
            return None
        if is_grad_enabled() and any(t is not None and t.requires_grad for t in (inputs, self.kernel, self.bias)):
            return None  # (a graph: the layers one by one)
        self._check_input(inputs)
        following._check_input_shape_once(self.compute_output_shape(tuple(inputs.shape)))  # (its _check_input)
        return C.conv2d_max_pool2d(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                                   activation=self._fused_activation, pool_size=following.pool_size,
                                   pool_strides=following.strides)


class Conv1D(_Conv):
    """1-D convolution over the steps axis: (batch, steps, channels) -> (batch, new_steps, filters).

    Kernel (kernel_size, channels/groups, filters). ``padding`` 'valid', 'same' or 'causal'
    (zeros before the sequence only: output t sees inputs up to t).
    """

    rank = 1
    _paddings = ("valid", "same", "causal")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, groups=groups, activation=activation, use_bias=use_bias,
                         **kwargs)


class Conv2DTranspose(_Conv):
    """Transposed 2-D convolution (the gradient of Conv2D with respect to its input), used to
    upsample: kernel (kh, kw, filters, channels).

    Output size per axis (Keras's rule), k_eff = (k − 1)·dilation + 1: without ``output_padding``,
    'valid' n·s + max(k_eff − s, 0) and 'same' n·s; with ``output_padding`` p,
    (n − 1)·s + k_eff − 2·pad + p with pad = k_eff // 2 for 'same', 0 for 'valid'.
    """

    rank = 2
    _has_groups = False

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", output_padding=None,
                 data_format=None, dilation_rate=(1, 1), activation=None, use_bias=True, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias, **kwargs)
        if output_padding is None:
            self.output_padding = None
        else:
            try:
                self.output_padding = C.normalize_tuple_nonneg(output_padding, 2, "output_padding")
            except (TypeError, ValueError) as err:
                raise ValueError(f"{self._describe()}: {err}") from None
            for p, s in zip(self.output_padding, self.strides):
                if p >= s:
                    raise ValueError(f"{self._describe()}: output_padding {self.output_padding} must be smaller "
                                     f"than the strides {self.strides}")
            if self.padding == "same":
                for p, k in zip(self.output_padding, self._k_eff()):
                    if k % 2 == 0 and p == 0:
                        raise ValueError(f"{self._describe()}: with padding 'same' and an even (dilated) kernel "
                                         f"size {self._k_eff()}, output_padding must be at least 1 on that axis, "
                                         f"got {self.output_padding}")

    def _kernel_shape(self, channels) -> tuple:
        return self.kernel_size + (self.filters, channels)

    def _expected_channels(self):
        kernel = getattr(self, "kernel", None)
        return None if kernel is None else kernel.shape[-1]

    def _check_spatial(self, shape) -> None:
        pass  # any input size has a transposed convolution

    def _output_spatial(self, spatial) -> tuple:
        pads = self.output_padding or (None, None)
        return tuple(C.deconv_output_length(n, k, self.padding, p, s, d)
                     for n, k, p, s, d in zip(spatial, self.kernel_size, pads, self.strides, self.dilation_rate))

    _fuses_activation = False

    def _convolve(self, inputs):
        return C.conv2d_transpose(inputs, self.kernel, self.bias, self.strides, self.padding, self.output_padding,
                                  self.dilation_rate, self._format)

    def get_config(self) -> dict:
        return dict(super().get_config(), output_padding=self.output_padding)


class DepthwiseConv2D(_Conv):
    """Depthwise 2-D convolution: each input channel convolved with its own ``depth_multiplier``
    filters; output channels = channels · depth_multiplier (channel c's outputs are
    c·depth_multiplier … c·depth_multiplier + depth_multiplier − 1).

    Kernel ``depthwise_kernel`` (kh, kw, channels, depth_multiplier).
    """

    rank = 2
    _has_groups = False
    _kernel_argument = "depthwise"

    def __init__(self, kernel_size, strides=(1, 1), padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=(1, 1), activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(None, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = self._positive_int(depth_multiplier, "depth_multiplier")

    @property
    def depthwise_initializer(self):
        return self.kernel_initializer

    @property
    def depthwise_regularizer(self):
        return self.kernel_regularizer

    @property
    def depthwise_constraint(self):
        return self.kernel_constraint

    def build(self, input_shape) -> None:
        _SpatialLayer.build(self, input_shape)
        channels = self._channels(input_shape)
        self._check_channels(channels)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (channels, self.depth_multiplier), self.kernel_initializer,
            self.kernel_regularizer, constraint=self.kernel_constraint)
        self.kernel = self.depthwise_kernel
        self.filters = channels * self.depth_multiplier
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    def _expected_channels(self):
        kernel = getattr(self, "kernel", None)
        return None if kernel is None else kernel.shape[2]

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        channels = self._channels(input_shape)
        filters = None if channels is None else channels * self.depth_multiplier
        return self._assemble(input_shape[0], self._output_spatial(self._spatial(input_shape)), filters)

    _fuses_activation = False

    def _convolve(self, inputs):
        return C.depthwise_conv2d(inputs, self.depthwise_kernel, self.bias, self.strides, self.padding,
                                  self.dilation_rate, self._format)

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("filters", "kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            config.pop(key)
        return dict(config, depth_multiplier=self.depth_multiplier,
                    depthwise_initializer=initializers.serialize(self.kernel_initializer),
                    depthwise_regularizer=regularizers.serialize(self.kernel_regularizer),
                    depthwise_constraint=constraints.serialize(self.kernel_constraint))


class SeparableConv2D(_Conv):
    """Depthwise separable 2-D convolution: a depthwise convolution (``depth_multiplier`` filters per
    input channel, the spatial part) followed by a 1×1 pointwise convolution mixing the channels
    into ``filters`` outputs, plus bias and activation.

    Weights: ``depthwise_kernel`` (kh, kw, channels, depth_multiplier), ``pointwise_kernel``
    (1, 1, channels·depth_multiplier, filters), ``bias`` (filters,).
    """

    rank = 2
    _has_groups = False
    _kernel_argument = "depthwise"

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid", data_format=None,
                 dilation_rate=(1, 1), depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, pointwise_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, depthwise_constraint=None,
                 pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding=padding, data_format=data_format,
                         dilation_rate=dilation_rate, activation=activation, use_bias=use_bias,
                         kernel_initializer=depthwise_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=depthwise_regularizer, bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer, kernel_constraint=depthwise_constraint,
                         bias_constraint=bias_constraint, **kwargs)
        self.depth_multiplier = self._positive_int(depth_multiplier, "depth_multiplier")
        self.pointwise_initializer = self._resolve(initializers, pointwise_initializer, "pointwise_initializer")
        self.pointwise_regularizer = self._resolve(regularizers, pointwise_regularizer, "pointwise_regularizer")
        self.pointwise_constraint = self._resolve(constraints, pointwise_constraint, "pointwise_constraint")

    def build(self, input_shape) -> None:
        _SpatialLayer.build(self, input_shape)
        channels = self._channels(input_shape)
        self._check_channels(channels)
        self.depthwise_kernel = self.add_weight(
            "depthwise_kernel", self.kernel_size + (channels, self.depth_multiplier), self.kernel_initializer,
            self.kernel_regularizer, constraint=self.kernel_constraint)
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (1, 1, channels * self.depth_multiplier, self.filters), self.pointwise_initializer,
            self.pointwise_regularizer, constraint=self.pointwise_constraint)
        self.bias = (self.add_weight("bias", (self.filters,), self.bias_initializer, self.bias_regularizer,
                                     constraint=self.bias_constraint) if self.use_bias else None)
        self.built = True

    def _expected_channels(self):
        kernel = getattr(self, "depthwise_kernel", None)
        return None if kernel is None else kernel.shape[2]

    def _convolve(self, inputs, activation=None):
        spatial = C.depthwise_conv2d(inputs, self.depthwise_kernel, None, self.strides, self.padding,
                                     self.dilation_rate, self._format)
        return C.conv2d(spatial, self.pointwise_kernel, self.bias, data_format=self._format, activation=activation)

    def get_config(self) -> dict:
        config = super().get_config()
        for key in ("kernel_initializer", "kernel_regularizer", "kernel_constraint"):
            config.pop(key)
        return dict(config, depth_multiplier=self.depth_multiplier,
                    depthwise_initializer=initializers.serialize(self.kernel_initializer),
                    pointwise_initializer=initializers.serialize(self.pointwise_initializer),
                    depthwise_regularizer=regularizers.serialize(self.kernel_regularizer),
                    pointwise_regularizer=regularizers.serialize(self.pointwise_regularizer),
                    depthwise_constraint=constraints.serialize(self.kernel_constraint),
                    pointwise_constraint=constraints.serialize(self.pointwise_constraint))


Convolution2DTranspose = Conv2DTranspose
SeparableConvolution2D = SeparableConv2D

# ------------------------------------------------------------------------- Keras 1

_KERAS1_CONV = {"nb_filter": "filters", "init": "kernel_initializer", "border_mode": "padding",
                "subsample": "strides", "subsample_length": "strides", "filter_length": "kernel_size",
                "dim_ordering": "data_format", "W_regularizer": "kernel_regularizer",
                "b_regularizer": "bias_regularizer", "W_constraint": "kernel_constraint",
                "b_constraint": "bias_constraint", "bias": "use_bias", "atrous_rate": "dilation_rate"}


def _keras1_kwargs(kwargs: dict, layer: str) -> dict:
    if "dim_ordering" in kwargs:
        kwargs = dict(kwargs, dim_ordering=legacy_data_format(kwargs["dim_ordering"], layer))
    return rename_legacy_kwargs(kwargs, _KERAS1_CONV, layer)


class Convolution2D(Conv2D):
    """Keras 1's 2-D convolution: ``Convolution2D(nb_filter, nb_row, nb_col, border_mode='valid',
    subsample=(1, 1), dim_ordering='th', init=, activation=, W_regularizer=, b_regularizer=,
    activity_regularizer=, W_constraint=, b_constraint=, bias=True)``.

    Channels-first (Theano's ordering) unless ``dim_ordering='tf'`` or
    ``data_format='channels_last'``. Today's keywords (``filters``, ``kernel_size``, …) work too.
    """

    def __init__(self, nb_filter=None, nb_row=None, nb_col=None, **kwargs):
        kwargs = _keras1_kwargs(kwargs, type(self).__name__)
        if nb_filter is not None:
            if "filters" in kwargs:
                raise TypeError(f"{type(self).__name__}: got the number of filters twice")
            kwargs["filters"] = nb_filter
        if "kernel_size" not in kwargs:
            if isinstance(nb_row, (tuple, list)) or (nb_row is not None and nb_col is None):
                kwargs["kernel_size"] = nb_row  # today's (filters, kernel_size) order
            elif nb_row is None or nb_col is None:
                raise TypeError(f"{type(self).__name__}: give the kernel size as nb_row and nb_col "
                                f"(Convolution2D(nb_filter, nb_row, nb_col)) or kernel_size=")
            else:
                kwargs["kernel_size"] = (nb_row, nb_col)
        elif nb_row is not None:
            raise TypeError(f"{type(self).__name__}: got both nb_row/nb_col and kernel_size")
        if kwargs.get("data_format") is None:
            kwargs["data_format"] = C.CHANNELS_FIRST
        if "filters" not in kwargs:
            raise TypeError(f"{type(self).__name__}: missing the number of filters (nb_filter)")
        super().__init__(**kwargs)


class Convolution1D(Conv1D):
    """Keras 1's 1-D convolution: ``Convolution1D(nb_filter, filter_length, border_mode='valid',
    subsample_length=1, init=, activation=, W_regularizer=, b_regularizer=, W_constraint=,
    b_constraint=, bias=True, input_dim=, input_length=)`` on (batch, steps, input_dim).
    Today's keywords work too."""

    def __init__(self, nb_filter=None, filter_length=None, **kwargs):
        kwargs = _keras1_kwargs(kwargs, type(self).__name__)
        if nb_filter is not None:
            if "filters" in kwargs:
                raise TypeError(f"{type(self).__name__}: got the number of filters twice")
            kwargs["filters"] = nb_filter
        if filter_length is not None:
            if "kernel_size" in kwargs:
                raise TypeError(f"{type(self).__name__}: got both filter_length and kernel_size")
            kwargs["kernel_size"] = filter_length
        if kwargs.get("data_format") is None:
            kwargs["data_format"] = C.CHANNELS_LAST
        if "filters" not in kwargs or "kernel_size" not in kwargs:
            raise TypeError(f"{type(self).__name__}: give nb_filter and filter_length "
                            f"(Convolution1D(nb_filter, filter_length))")
        super().__init__(**kwargs)


# -------------------------------------------------------------- padding, cropping, upsampling


def _pairs(value, rank: int, name: str, layer: str) -> tuple:
    """An int, one int per axis (both sides) or one (before, after) pair per axis -> pairs."""
    try:
        if isinstance(value, int):
            out = ((value, value),) * rank
        elif rank == 1:
            items = tuple(value)
            if len(items) == 1:  # ((before, after),)
                items = tuple(items[0])
            out = ((int(items[0]), int(items[1])),) if len(items) == 2 else None
        else:
            items = tuple(value)
            if len(items) != rank:
                out = None
            else:
                out = tuple((int(v), int(v)) if isinstance(v, int) else tuple(int(u) for u in v) for v in items)
    except (TypeError, ValueError):
        out = None
    if out is None or any(len(p) != 2 or min(p) < 0 for p in out):
        form = "an int or (before, after)" if rank == 1 else "an int, (rows, cols) or ((top, bottom), (left, right))"
        raise ValueError(f"{layer}: {name} must be {form} with non-negative sizes, got {value!r}")
    return out


class _Resample(_SpatialLayer):
    """Shared base of ZeroPadding, Cropping and UpSampling (no weights)."""

    def __init__(self, data_format=None, **kwargs):
        legacy_default = None
        if self.rank == 2 and "dim_ordering" in kwargs:
            legacy_default = legacy_data_format(kwargs.pop("dim_ordering"), type(self).__name__)
        super().__init__(**kwargs)
        self._init_data_format(data_format, legacy_default)

    def _check_input_shape(self, shape) -> None:
        self._check_rank(shape)

    def _to_2d(self, inputs):
        """A 1-D input with a unit axis, so the 2-D ops serve both ranks."""
        if self.rank == 2:
            return inputs
        return ops.expand_dims(inputs, 1 if self._format == C.CHANNELS_LAST else 2)

    def _from_2d(self, out):
        if self.rank == 2:
            return out
        return ops.squeeze(out, 1 if self._format == C.CHANNELS_LAST else 2)


class ZeroPadding2D(_Resample):
    """Zeros around each image: ``padding`` an int, (rows, cols) symmetric, or ((top, bottom), (left, right))."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.padding = _pairs(padding, self.rank, "padding", self._describe())

    def _widths(self):
        return ((0, 0),) + self.padding if self.rank == 1 else self.padding

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        spatial = tuple(None if n is None else n + a + b for n, (a, b) in zip(self._spatial(input_shape),
                                                                              self.padding))
        return self._assemble(input_shape[0], spatial, self._channels(input_shape))

    def call(self, inputs):
        return self._from_2d(C.zero_pad2d(self._to_2d(inputs), self._widths(), self._format))

    def get_config(self) -> dict:
        return dict(super().get_config(), padding=self.padding, data_format=self.data_format)


class ZeroPadding1D(ZeroPadding2D):
    """Zeros before and after each sequence: ``padding`` an int or (before, after)."""

    rank = 1

    def __init__(self, padding=1, **kwargs):
        super().__init__(padding, **kwargs)


class Cropping2D(_Resample):
    """Cut pixels off each image: ``cropping`` an int, (rows, cols) symmetric, or ((top, bottom), (left, right))."""

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.cropping = _pairs(cropping, self.rank, "cropping", self._describe())

    def _check_input_shape(self, shape) -> None:
        super()._check_input_shape(shape)
        for n, (a, b) in zip(self._spatial(shape), self.cropping):
            if n is not None and a + b >= n:
                raise ValueError(f"{self._describe()}: cropping {self.cropping} removes everything from an input "
                                 f"of shape {_shape_str(shape)}")

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        spatial = tuple(None if n is None else n - a - b for n, (a, b) in zip(self._spatial(input_shape),
                                                                              self.cropping))
        return self._assemble(input_shape[0], spatial, self._channels(input_shape))

    def call(self, inputs):
        crops = ((0, 0),) + self.cropping if self.rank == 1 else self.cropping
        return self._from_2d(C.crop2d(self._to_2d(inputs), crops, self._format))

    def get_config(self) -> dict:
        return dict(super().get_config(), cropping=self.cropping, data_format=self.data_format)


class Cropping1D(Cropping2D):
    """Cut steps off the start and end of each sequence: ``cropping`` an int or (start, end)."""

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, **kwargs)


class UpSampling2D(_Resample):
    """Repeat each row ``size[0]`` times and each column ``size[1]`` times (nearest neighbour)."""

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format, **kwargs)
        try:
            self.size = C.normalize_tuple(size, self.rank, "size")
        except ValueError as err:
            raise ValueError(f"{self._describe()}: {err}") from None
        if interpolation != "nearest":
            raise ValueError(f"{self._describe()}: interpolation must be 'nearest' (the only one implemented), "
                             f"got {interpolation!r}")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        self._check_input_shape(input_shape)
        spatial = tuple(None if n is None else n * s for n, s in zip(self._spatial(input_shape), self.size))
        return self._assemble(input_shape[0], spatial, self._channels(input_shape))

    def call(self, inputs):
        size = (1,) + self.size if self.rank == 1 else self.size
        return self._from_2d(C.upsample2d(self._to_2d(inputs), size, self._format, self.interpolation))

    def get_config(self) -> dict:
        config = dict(super().get_config(), size=self.size, data_format=self.data_format)
        if self.rank == 2:
            config["interpolation"] = self.interpolation
        return config


class UpSampling1D(UpSampling2D):
    """Repeat each step ``size`` times: (batch, steps, features) -> (batch, steps·size, features)."""

    rank = 1

    def __init__(self, size=2, **kwargs):
        if "length" in kwargs:  # Keras 1
            size = kwargs.pop("length")
        super().__init__(size, **kwargs)


__all__ = [
    "Conv1D", "Conv2D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D", "Convolution1D", "Convolution2D",
    "Convolution2DTranspose", "SeparableConvolution2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D",
    "Cropping2D", "UpSampling1D", "UpSampling2D",
    # pooling, importable from here as in Keras 1
    "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "MaxPool1D", "MaxPool2D",
    "AvgPool1D", "AvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalAvgPool1D", "GlobalAvgPool2D",
]
