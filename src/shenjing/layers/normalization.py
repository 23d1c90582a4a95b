"""Normalization layers: ``BatchNormalization`` and ``LayerNormalization``.

Both run on the fused primitives of :mod:`shenjing.autodiff.norm` (one tape node each, with the
closed-form backward).

Keras and PyTorch differ on batch normalization; shenjing follows Keras 3:

* ``momentum`` is the weight of the *old* moving value: ``moving = momentum·moving +
  (1 − momentum)·batch`` (default 0.99). PyTorch's ``momentum`` is the weight of the *new*
  value (default 0.1): torch momentum = 1 − Keras momentum.
* The moving variance averages the *biased* batch variance (the one used to normalize), as
  Keras 3 does (``ops.moments``); PyTorch's ``running_var`` (and Keras 2.1–2.x multi-backend)
  averages the unbiased, N/(N − 1)-corrected one.
* ``epsilon`` defaults to 1e-3 (PyTorch: 1e-5); it is added to the variance inside the square root.
* A frozen layer (``trainable=False``) runs in inference mode even when called with
  ``training=True`` (Keras 2+); PyTorch ties this to ``.eval()`` instead.
"""

from __future__ import annotations

from .. import backend as B
from .. import constraints, initializers, regularizers
from ..autodiff import norm, ops
from .base import Layer, _shape_str
from .core import rename_legacy_kwargs

_KERAS1_BN = {"beta_init": "beta_initializer", "gamma_init": "gamma_initializer"}
_LOW_PRECISION = ("float16", "bfloat16")


def _axis_config(axis):
    return list(axis) if isinstance(axis, (list, tuple)) else int(axis)


def _check_axis_arg(axis, who: str):
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    if not items or any(isinstance(a, bool) or not hasattr(a, "__index__") for a in items):
        raise ValueError(f"{who}: axis must be an integer or a list of integers, got axis={axis!r}")
    return [int(a) for a in items] if isinstance(axis, (list, tuple)) else int(axis)


def _resolve_axes(axis, input_shape, who: str) -> tuple:
    """The layer's ``axis`` argument (int or list) as sorted non-negative axes of ``input_shape``."""
    rank = len(input_shape)
    items = axis if isinstance(axis, (list, tuple)) else [axis]
    out = []
    for a in items:
        if not -rank <= a < rank:
            raise ValueError(f"{who}: axis {a} is out of range for an input of rank {rank} "
                             f"(shape {_shape_str(input_shape)}); valid axes are {-rank}..{rank - 1}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ValueError(f"{who}: axis {axis!r} names an axis twice")
    for a in out:
        if a == 0 and rank > 1:
            raise ValueError(f"{who}: axis {axis!r} names the batch axis (0); give the axis (or axes) of the "
                             f"features instead, e.g. -1 (channels last) or 1 (channels first)")
        if input_shape[a] is None:
            raise ValueError(f"{who}: the size of axis {a} of the input must be known to create the weights, "
                             f"got shape {_shape_str(input_shape)}")
    return tuple(sorted(out))


class _Normalization(Layer):
    """Shared parts: dtype handling, input checks, config of the affine parameters."""

    supports_masking = True

    def _init_affine(self, center, scale, beta_initializer, gamma_initializer, beta_regularizer,
                     gamma_regularizer, beta_constraint, gamma_constraint):
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.gamma = None
        self.beta = None

    def _build_affine(self, shape) -> None:
        # Keras's order: gamma, then beta
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer, self.gamma_regularizer,
                                         constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer, self.beta_regularizer,
                                        constraint=self.beta_constraint)

    def _affine_config(self) -> dict:
        return {"center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": constraints.serialize(self.beta_constraint),
                "gamma_constraint": constraints.serialize(self.gamma_constraint)}

    def _check_input_shape(self, shape) -> None:
        if len(shape) != self._rank or any(shape[a] != self._sizes[a] for a in self._sizes):
            expected = tuple(self._sizes.get(i) for i in range(self._rank))
            raise ValueError(f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible with the "
                             f"layer: expected an input of rank {self._rank} with shape {_shape_str(expected)} "
                             f"(None: any size), got shape {_shape_str(tuple(shape))}")

    def _check_input(self, inputs) -> None:
        self._check_input_shape_once(tuple(inputs.shape))

    def _compute_input(self, inputs):
        """(input to normalize, dtype to cast the output back to or None). Float16/bfloat16 inputs are
        normalized in float32 (their statistics overflow easily), as Keras; integer inputs become the
        layer's float type."""
        if str(inputs.dtype) in _LOW_PRECISION:
            return ops.cast(inputs, "float32"), inputs.dtype
        if inputs.dtype.kind != "f":
            return ops.cast(inputs, self.dtype or B.floatx()), None
        return inputs, None

    def compute_output_shape(self, input_shape):
        return input_shape


# ----------------------------------------------------------------- BatchNormalization


class BatchNormalization(_Normalization):
    """Normalize each channel with the batch's statistics (training) or the moving ones (inference).

    ``y = gamma · (x − mean) / sqrt(var + epsilon) + beta`` per channel, the channel axis being
    ``axis`` (-1: channels last; 1 for channels-first images), the statistics taken over all the
    other axes.

    - ``training=True`` (and the layer trainable): batch mean and biased batch variance; the
      moving statistics are updated in place, ``moving = momentum·moving + (1 − momentum)·batch``.
    - ``training`` False / None, or a frozen layer (``trainable=False``): the moving statistics.

    Weights, in ``get_weights`` order: ``gamma`` (if ``scale``), ``beta`` (if ``center``), then the
    non-trainable ``moving_mean`` and ``moving_variance`` (2·C non-trainable parameters).
    ``synchronized`` (statistics across devices) is accepted; with one device it changes nothing.
    Keras 1 spellings: ``mode=0`` (the only mode with today's meaning), ``beta_init``, ``gamma_init``.
    See the module notes for the differences from PyTorch.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized=False, **kwargs):
        mode = kwargs.pop("mode", 0)
        legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS1_BN}
        if legacy:
            legacy = rename_legacy_kwargs(legacy, _KERAS1_BN, "BatchNormalization")
            beta_initializer = legacy.get("beta_initializer", beta_initializer)
            gamma_initializer = legacy.get("gamma_initializer", gamma_initializer)
        super().__init__(**kwargs)
        who = f"BatchNormalization {self.name!r}"
        if mode != 0:
            raise ValueError(
                f"{who}: Keras 1 mode={mode!r} is not supported; only mode=0 (feature-wise normalization with "
                f"moving statistics at inference) has a modern equivalent, which is this layer. For sample-wise "
                f"normalization (mode=1) use LayerNormalization")
        self.axis = _check_axis_arg(axis, who)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError(f"{who}: momentum must be a number in [0, 1], got {momentum!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"{who}: epsilon must be a positive number, got {epsilon!r}")
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.synchronized = bool(synchronized)
        self._init_affine(center, scale, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                          beta_constraint, gamma_constraint)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape) -> None:
        input_shape = tuple(input_shape)
        who = f"BatchNormalization {self.name!r}"
        if len(input_shape) < 2:
            raise ValueError(f"{who}: expected an input of rank >= 2 (batch, ..., channels), got shape "
                             f"{_shape_str(input_shape)}")
        channel_axes = _resolve_axes(self.axis, input_shape, who)
        shape = tuple(input_shape[a] for a in channel_axes)
        self._build_affine(shape)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, self.moving_variance_initializer,
                                               trainable=False)
        self._rank = len(input_shape)
        self._sizes = {a: input_shape[a] for a in channel_axes}
        self._channel_axes = channel_axes
        self._reduction_axes = tuple(i for i in range(self._rank) if i not in channel_axes)
        self.built = True

    def call(self, inputs, training=None):
        x, restore = self._compute_input(inputs)
        if training and self.trainable:
            out, mean, var = norm.batch_norm_train(x, self.gamma, self.beta, self._reduction_axes, self.epsilon)
            self._update_moving(mean, var)
        else:
            out = norm.batch_norm_infer(x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                                        self.epsilon, axes=self._reduction_axes)
        return ops.cast(out, restore) if restore is not None else out

    def _update_moving(self, mean, var) -> None:
        """moving = momentum·moving + (1 − momentum)·batch, in place (the arrays keep their identity)."""
        m = self.momentum
        for variable, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
            data = variable.data
            data[...] = data * m + batch.astype(data.dtype, copy=False) * (1.0 - m)

    def get_config(self) -> dict:
        return dict(super().get_config(), axis=_axis_config(self.axis), momentum=self.momentum,
                    epsilon=self.epsilon, **self._affine_config(),
                    moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
                    moving_variance_initializer=initializers.serialize(self.moving_variance_initializer),
                    synchronized=self.synchronized)


# ----------------------------------------------------------------- LayerNormalization


class LayerNormalization(_Normalization):
    """Normalize each sample over ``axis`` (default -1, the features; a list for several axes),
    then scale by ``gamma`` and shift by ``beta`` (both shaped like the normalized axes).

    ``y = gamma · (x − mean) / sqrt(var + epsilon) + beta``, mean and (biased) variance taken per
    sample over ``axis``. The same in training and inference. ``rms_scaling=True`` (Keras 3)
    divides by the root mean square instead, ``y = gamma · x / sqrt(mean(x²) + epsilon)``, with no
    centering and no ``beta`` (RMSNorm, as Keras documents it; note that Keras 3's code up to 2025
    divides by sqrt(var(x) + epsilon) instead, keras-team/keras#21234). Keras's default ``epsilon``
    is 1e-3 (PyTorch's ``LayerNorm``: 1e-5).
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = f"LayerNormalization {self.name!r}"
        self.axis = _check_axis_arg(axis, who)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon > 0:
            raise ValueError(f"{who}: epsilon must be a positive number, got {epsilon!r}")
        self.epsilon = float(epsilon)
        self.rms_scaling = bool(rms_scaling)
        if self.rms_scaling:
            center, scale = False, True
        self._init_affine(center, scale, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                          beta_constraint, gamma_constraint)

    def build(self, input_shape) -> None:
        input_shape = tuple(input_shape)
        who = f"LayerNormalization {self.name!r}"
        if len(input_shape) < 1:
            raise ValueError(f"{who}: expected an input of rank >= 1, got a scalar")
        axes = _resolve_axes(self.axis, input_shape, who)
        shape = tuple(input_shape[a] for a in axes)
        self._build_affine(shape)
        self._rank = len(input_shape)
        self._sizes = {a: input_shape[a] for a in axes}
        self._axes = axes
        self.built = True

    def call(self, inputs):
        x, restore = self._compute_input(inputs)
        if self.rms_scaling:
            mean_square = ops.mean(ops.square(x), axis=self._axes, keepdims=True)
            out = x * ops.pow(ops.add(mean_square, self.epsilon), -0.5)
            if self.gamma is not None:
                broadcast = tuple(x.shape[i] if i in self._axes else 1 for i in range(x.ndim))
                out = out * ops.reshape(self.gamma, broadcast)
        else:
            out = norm.layer_norm(x, self.gamma, self.beta, self._axes, self.epsilon)
        return ops.cast(out, restore) if restore is not None else out

    def get_config(self) -> dict:
        return dict(super().get_config(), axis=_axis_config(self.axis), epsilon=self.epsilon,
                    rms_scaling=self.rms_scaling, **self._affine_config())
