"""Noise and regularization layers: ``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout``,
``SpatialDropout1D/2D/3D`` and ``ActivityRegularization``.

The noise layers are active only in training (``training=True``) and return their input unchanged
in inference. Their random numbers come from the global generator (``backend.rng()``, reseeded by
``set_random_seed``), or, with ``seed=``, from the layer's own generator (the same seed gives the
same sequence of masks, whatever else draws random numbers). Spatial dropout is ``ops.dropout``
with a noise shape; the other masks and multiplicative noise are applied with
``ops.dropout_mask_apply`` (one node; the gradient is the mask times the upstream one).
"""

from __future__ import annotations

import math

from .. import backend as B
from .. import regularizers
from ..autodiff import nn, ops
from .base import Layer, _shape_str, add_activity_loss

_FORMATS = ("channels_last", "channels_first")
_KERAS1_ORDERING = {"tf": "channels_last", "th": "channels_first", "default": None}


def _generator(seed, who: str):
    """A generator of its own for a seeded layer (same kind as ``backend.rng()``), else None."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not hasattr(seed, "__index__") or int(seed) < 0:
        raise ValueError(f"{who}: seed must be a non-negative integer or None, got {seed!r}")
    return B.generator(int(seed))


def _check_rate(rate, who: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"{who}: rate must be a number in [0, 1), got {rate!r}")
    return float(rate)


def _float_input(inputs):
    """Integer inputs become ``floatx`` before noise is added (noise on integers makes no sense)."""
    return inputs if inputs.dtype.kind == "f" else ops.cast(inputs, B.floatx())


class _RandomLayer(Layer):
    """Shape-preserving layer with a (possibly seeded) random source."""

    supports_masking = True

    def _init_random(self, seed) -> None:
        self.seed = seed
        self._generator = _generator(seed, f"{type(self).__name__} {self.name!r}")

    def _rng(self):
        return self._generator or B.rng()

    def _normal(self, shape, dtype):
        """Standard normal values of ``dtype`` (drawn in float64 for float64, else float32)."""
        draw = "float64" if str(dtype) == "float64" else "float32"
        values = B.asarray(self._rng().standard_normal(tuple(shape), dtype=draw))
        return values if str(values.dtype) == str(dtype) else values.astype(dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


# --------------------------------------------------------------------- Gaussian noise


class GaussianNoise(_RandomLayer):
    """Add zero-mean Gaussian noise of standard deviation ``stddev`` (training only).

    A regularizer (and a form of data augmentation for real-valued inputs). Keras 1: ``sigma``.
    """

    def __init__(self, stddev=None, seed=None, **kwargs):
        if "sigma" in kwargs:  # Keras 1
            stddev = kwargs.pop("sigma")
        super().__init__(**kwargs)
        who = f"GaussianNoise {self.name!r}"
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or not math.isfinite(stddev) \
                or stddev < 0:
            raise ValueError(f"{who}: stddev must be a finite non-negative number, got {stddev!r}")
        self.stddev = float(stddev)
        self._init_random(seed)

    def call(self, inputs, training=None):
        if not training or self.stddev == 0:
            return inputs
        inputs = _float_input(inputs)
        noise = self._normal(inputs.shape, inputs.dtype) * self.stddev
        return ops.add(inputs, noise.astype(inputs.dtype, copy=False))

    def get_config(self) -> dict:
        return dict(super().get_config(), stddev=self.stddev, seed=self.seed)


class GaussianDropout(_RandomLayer):
    """Multiply by Gaussian noise of mean 1 and standard deviation ``sqrt(rate / (1 − rate))``
    (training only): the same mean and variance as dropout's 0 or 1/(1 − rate) mask. Keras 1: ``p``.
    """

    def __init__(self, rate=None, seed=None, **kwargs):
        if "p" in kwargs:  # Keras 1
            rate = kwargs.pop("p")
        super().__init__(**kwargs)
        self.rate = _check_rate(rate, f"GaussianDropout {self.name!r}")
        self._init_random(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        inputs = _float_input(inputs)
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        noise = self._normal(inputs.shape, inputs.dtype) * stddev + 1.0
        return ops.dropout_mask_apply(inputs, noise)

    def get_config(self) -> dict:
        return dict(super().get_config(), rate=self.rate, seed=self.seed)


class AlphaDropout(_RandomLayer):
    """Dropout for self-normalizing (SELU) networks (Klambauer et al., 2017; training only).

    Dropped units are set to SELU's negative saturation value α' = −scale·alpha instead of 0, then
    an affine correction ``a·x + b`` restores zero mean and unit variance:
    ``a = ((1 − rate)(1 + rate·α'²))^(−1/2)``, ``b = −a·α'·rate``. ``noise_shape`` as in Dropout.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate(rate, f"AlphaDropout {self.name!r}")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self._init_random(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        inputs = _float_input(inputs)
        shape = tuple(inputs.shape)
        if self.noise_shape is not None:
            if len(self.noise_shape) != len(shape):
                raise ValueError(f"AlphaDropout {self.name!r}: noise_shape {self.noise_shape} must have one entry "
                                 f"per input axis, got an input of shape {_shape_str(shape)}")
            shape = tuple(s if n is None else n for s, n in zip(shape, self.noise_shape))
        rate = self.rate
        alpha_p = -nn.SELU_ALPHA * nn.SELU_SCALE
        a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * rate
        kept = B.asarray(B.keep_mask(self._rng(), shape, rate)).astype(inputs.dtype)
        scaled = ops.dropout_mask_apply(inputs, kept * a)
        return ops.add(scaled, ((1 - kept) * (a * alpha_p) + b).astype(inputs.dtype, copy=False))

    def get_config(self) -> dict:
        return dict(super().get_config(), rate=self.rate, noise_shape=self.noise_shape, seed=self.seed)


# -------------------------------------------------------------------- spatial dropout


class _SpatialDropout(_RandomLayer):
    """Drop whole channels (feature maps): one keep/drop draw per sample and channel, kept
    channels scaled by 1/(1 − rate). Training only."""

    _rank = 3  # input rank, batch included
    _inherits_format = True

    def __init__(self, rate=None, data_format=None, seed=None, **kwargs):
        if "p" in kwargs:  # Keras 1
            rate = kwargs.pop("p")
        if "dim_ordering" in kwargs:  # Keras 1
            ordering = kwargs.pop("dim_ordering")
            if ordering not in _KERAS1_ORDERING:
                raise ValueError(f"{type(self).__name__}: dim_ordering must be 'tf', 'th' or 'default', "
                                 f"got {ordering!r}")
            data_format = data_format or _KERAS1_ORDERING[ordering]
        super().__init__(**kwargs)
        who = f"{type(self).__name__} {self.name!r}"
        self.rate = _check_rate(rate, who)
        if data_format is not None and data_format not in _FORMATS:
            raise ValueError(f"{who}: data_format must be 'channels_last' or 'channels_first' (or None), "
                             f"got {data_format!r}")
        if data_format is None and not self._inherits_format:
            data_format = "channels_last"
        self.data_format = data_format
        self._inherit_data_format = data_format is None
        self._init_random(seed)

    def _check_input_shape(self, input_shape) -> None:
        if len(input_shape) != self._rank:
            raise ValueError(f"{type(self).__name__} {self.name!r}: expected an input of rank {self._rank} "
                             f"(batch, {self._rank - 2} spatial axes and channels), got shape "
                             f"{_shape_str(tuple(input_shape))}")

    def _check_input(self, inputs) -> None:
        self._check_input_shape_once(tuple(inputs.shape))

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        inputs = _float_input(inputs)
        shape = tuple(inputs.shape)
        ones = (1,) * (len(shape) - 2)
        if self.data_format == "channels_first":
            noise_shape = (shape[0], shape[1]) + ones
        else:
            noise_shape = (shape[0],) + ones + (shape[-1],)
        return ops.dropout(inputs, self.rate, self._rng(), noise_shape)

    def get_config(self) -> dict:
        return dict(super().get_config(), rate=self.rate, data_format=self.data_format, seed=self.seed)


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole 1-D feature maps: input (batch, steps, channels), one draw per sample and
    channel. ``data_format=None`` means ``'channels_last'`` (as Keras, whose SpatialDropout1D is
    always channels last); ``'channels_first'`` takes (batch, channels, steps)."""

    _rank = 3
    _inherits_format = False


class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole 2-D feature maps: (batch, rows, cols, channels) for ``'channels_last'``,
    (batch, channels, rows, cols) for ``'channels_first'``. ``data_format=None`` takes the format
    of the layer feeding it in a model, else ``backend.image_data_format()``."""

    _rank = 4


class SpatialDropout3D(_SpatialDropout):
    """Dropout of whole 3-D feature maps (rank-5 input); ``data_format`` as SpatialDropout2D."""

    _rank = 5


# ------------------------------------------------------------------ ActivityRegularization


class ActivityRegularization(Layer):
    """Pass the input through unchanged and add ``l1·Σ|x| + l2·Σx²`` (divided by the batch size, as
    every activity regularizer in shenjing) to the model's losses."""

    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        try:
            self._regularizer = regularizers.L1L2(l1=l1, l2=l2)
        except ValueError as err:
            raise ValueError(f"ActivityRegularization {self.name!r}: {err}") from None
        self.l1 = self._regularizer.l1
        self.l2 = self._regularizer.l2

    def call(self, inputs):
        add_activity_loss(self, self._regularizer, inputs)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return dict(super().get_config(), l1=self.l1, l2=self.l2)
