"""Sequence inputs and their masks: ``Embedding`` (integer ids -> dense vectors) and ``Masking``."""

from __future__ import annotations

from .. import backend as B
from .. import constraints, initializers, regularizers
from ..autodiff import ops
from .base import Layer, _shape_str, add_activity_loss
from .core import rename_legacy_kwargs

_KERAS1_EMBEDDING = {"init": "embeddings_initializer", "W_regularizer": "embeddings_regularizer",
                     "W_constraint": "embeddings_constraint"}


class Embedding(Layer):
    """Turns ids in [0, input_dim) into vectors: output[..., :] = embeddings[id].

    Input: integer ids of any shape (batch, …) (float ids are cast); output (batch, …, output_dim).
    ``mask_zero=True``: id 0 is padding — the output carries the mask ``ids != 0`` (so input_dim
    should count the padding id). ``input_length``: the fixed sequence length (Keras 1/2), which sets the
    input shape. Keras 1's ``dropout`` (training only) drops whole ids: every occurrence of a dropped id
    in the batch gets a zero vector, the rest are scaled by 1/(1 − dropout).
    The gradient of repeated ids accumulates.
    """

    _accepts_integer_input = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 activity_regularizer=None, embeddings_constraint=None, mask_zero=False, input_length=None,
                 dropout=0.0, **kwargs):
        legacy = {k: kwargs.pop(k) for k in list(kwargs) if k in _KERAS1_EMBEDDING}
        if legacy:
            legacy = rename_legacy_kwargs(legacy, _KERAS1_EMBEDDING, "Embedding")
            embeddings_initializer = legacy.get("embeddings_initializer", embeddings_initializer)
            embeddings_regularizer = legacy.get("embeddings_regularizer", embeddings_regularizer)
            embeddings_constraint = legacy.get("embeddings_constraint", embeddings_constraint)
        has_shape = any(kwargs.get(k) is not None for k in ("input_shape", "batch_input_shape", "batch_shape"))
        if input_length is not None and not has_shape:
            length = tuple(input_length) if isinstance(input_length, (list, tuple)) else (input_length,)
            kwargs["batch_input_shape"] = (kwargs.pop("batch_size", None),) + length
        super().__init__(**kwargs)
        who = f"Embedding {self.name!r}"
        for label, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if value is None or int(value) != value or value <= 0:
                raise ValueError(f"{who}: {label} must be a positive integer, got {value!r}")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = self._resolve(initializers, embeddings_initializer, "embeddings_initializer")
        self.embeddings_regularizer = self._resolve(regularizers, embeddings_regularizer, "embeddings_regularizer")
        self.activity_regularizer = self._resolve(regularizers, activity_regularizer, "activity_regularizer")
        self.embeddings_constraint = self._resolve(constraints, embeddings_constraint, "embeddings_constraint")
        self.mask_zero = bool(mask_zero)
        self.input_length = input_length
        if not 0 <= float(dropout) < 1:
            raise ValueError(f"{who}: dropout must be in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    def build(self, input_shape) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True

    def _ids(self, inputs):
        ids = inputs.data
        if ids.dtype.kind not in "iu":
            if ids.dtype.kind not in "fb":
                raise TypeError(f"Embedding {self.name!r}: expected integer ids, got an array of dtype {ids.dtype}")
            ids = ids.astype("int64")
        if ids.size:
            low, high = int(ids.min()), int(ids.max())
            bad = low if low < 0 else high if high >= self.input_dim else None
            if bad is not None:
                raise ValueError(f"Embedding {self.name!r}: index {bad} is out of range; the ids must lie in "
                                 f"[0, {self.input_dim}) (input_dim={self.input_dim})")
        return ids

    def call(self, inputs, training=None):
        ids = self._ids(inputs)
        out = ops.take(self.embeddings, ids, axis=0)
        if training and self.dropout > 0:
            scale = B.dropout_mask(B.rng(), (self.input_dim,), self.dropout, out.dtype)
            out = ops.dropout_mask_apply(out, scale[ids][..., None])
        add_activity_loss(self, self.activity_regularizer, out)
        return out

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        data = inputs.data if hasattr(inputs, "data") else B.asarray(inputs)
        return data != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self) -> dict:
        return dict(super().get_config(), input_dim=self.input_dim, output_dim=self.output_dim,
                    embeddings_initializer=initializers.serialize(self.embeddings_initializer),
                    embeddings_regularizer=regularizers.serialize(self.embeddings_regularizer),
                    activity_regularizer=regularizers.serialize(self.activity_regularizer),
                    embeddings_constraint=constraints.serialize(self.embeddings_constraint),
                    mask_zero=self.mask_zero, input_length=self.input_length, dropout=self.dropout)


class Masking(Layer):
    """Marks the time steps whose features all equal ``mask_value`` as padding.

    Output: the input with those steps zeroed; mask (batch, timesteps) = any(x != mask_value, axis=-1),
    which the layers after it (LSTM, TimeDistributed, the loss) honour.
    """

    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _keep(self, inputs):
        return (inputs.data != self.mask_value).any(axis=-1)

    def call(self, inputs):
        if inputs.ndim < 2:
            raise ValueError(f"Masking {self.name!r}: expected an input of rank >= 2 (batch, …, features), got "
                             f"shape {_shape_str(inputs.shape)}")
        return ops.dropout_mask_apply(inputs, self._keep(inputs)[..., None])

    def compute_mask(self, inputs, mask=None):
        return self._keep(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return dict(super().get_config(), mask_value=self.mask_value)


__all__ = ["Embedding", "Masking"]
