"""Loss functions and ``Loss`` objects with Keras semantics, built on the autodiff ops.

A loss *function* ``fn(y_true, y_pred)`` returns a Tensor of per-sample losses:
it reduces the last axis, so its shape is ``y_pred.shape[:-1]``. ``y_pred`` is a
Tensor (arrays are wrapped), ``y_true`` an array or Tensor; ``y_true`` is cast
to ``y_pred``'s dtype (nothing is upcast). When one of them has shape ``(n,)``
and the other ``(n, 1)``, the ``(n,)`` one gains the trailing axis (as in Keras).

A :class:`Loss` *object* adds ``sample_weight`` and the reduction to a scalar:
``loss(y_true, y_pred, sample_weight=None)``. The default reduction
``'sum_over_batch_size'`` divides the sum of the weighted per-sample losses by
their number of elements.

Probability-input cross-entropies clip to ``[epsilon, 1 - epsilon]``
(``epsilon = backend.epsilon()``), as Keras does. When the probabilities come
straight out of :func:`shenjing.autodiff.nn.softmax` / ``sigmoid`` (which tag
their output with the logits), the cross-entropy is computed from the logits
with the fused, stable op instead: exact, no clipping, and one node (a softmax's
probabilities, maximum and sum are reused, not computed again).
"""

from __future__ import annotations

import math

from . import backend as B
from .autodiff import nn, ops
from .autodiff.replay import recorded
from .autodiff.tensor import Tensor, make
from .utils.naming import to_snake_case
from .utils.registry import Registry

LOSSES = Registry("loss")

REDUCTIONS = ("sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight")

_L2_EPSILON = 1e-12  # floor of the squared norm in l2-normalisation (cosine similarity)

# --------------------------------------------------------------------------- helpers


def _pred_tensor(y_pred) -> Tensor:
    """``y_pred`` as a float Tensor (integer / boolean arrays become ``floatx``)."""
    t = y_pred if isinstance(y_pred, Tensor) else Tensor(y_pred)
    if t.data.dtype.kind != "f":
        t = ops.cast(t, B.floatx())
    return t


def _true_tensor(y_true, dtype) -> Tensor:
    """``y_true`` as a Tensor of ``dtype`` (the prediction's: targets never upcast the loss)."""
    if isinstance(y_true, Tensor):
        return y_true if y_true.dtype == dtype else ops.cast(y_true, dtype)
    data = y_true if type(y_true) is B.xp.ndarray else B.asarray(y_true)
    target = Tensor(data)
    return target if data.dtype == dtype else ops.cast(target, dtype)  # (an op: a recorded step replays it)


def _same_rank(a: Tensor, b: Tensor):
    """Make ranks equal when they differ by a trailing axis of size 1 (Keras's rule):
    an ``(n,)`` operand gains an axis next to ``(n, 1)``; otherwise the size-1 axis is dropped."""
    a_rank, b_rank = a.data.ndim, b.data.ndim
    if a_rank == b_rank:
        return a, b
    if a_rank == b_rank + 1 and a.shape[-1] == 1:
        if b_rank == 1:
            b = ops.expand_dims(b, -1)
        else:
            a = ops.squeeze(a, -1)
    elif b_rank == a_rank + 1 and b.shape[-1] == 1:
        if a.ndim == 1:
            a = ops.expand_dims(a, -1)
        else:
            b = ops.squeeze(b, -1)
    return a, b


def _prepare(name, y_true, y_pred):
    """Tensors of equal shape and y_pred's dtype; a clear ValueError when the shapes cannot match."""
    y_pred = _pred_tensor(y_pred)
    y_true = _true_tensor(y_true, y_pred.dtype)
    y_true, y_pred = _same_rank(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: y_true of shape {y_true.shape} and y_pred of shape {y_pred.shape} do not match; "
            f"{name} compares them elementwise and needs equal shapes")
    return y_true, y_pred


def _fused_logits(y_pred, kind: str, from_logits: bool, axis: int = -1):
    """The logits to use with a fused cross-entropy, or None for the probability path.

    ``from_logits=True``: ``y_pred`` itself. Otherwise the logits recorded by
    ``nn.softmax`` / ``nn.sigmoid`` on their output, when ``kind`` matches.
    """
    if from_logits:
        return _pred_tensor(y_pred)
    tag = getattr(y_pred, "_made_by", None) if isinstance(y_pred, Tensor) else None
    if tag is None or tag[0] != kind:
        return None
    if kind == "softmax" and axis not in (-1, y_pred.ndim - 1):
        return None
    z = tag[1]
    return z if z.data.dtype.kind == "f" else None


def _gather_last(t: Tensor, index) -> Tensor:
    """``t[..., index[...]]``: pick one entry of the last axis per position (differentiable)."""
    n = t.shape[-1]
    flat = ops.reshape(t, (-1, n))
    rows = B.xp.arange(flat.shape[0])
    picked = ops.getitem(flat, (rows, index.reshape(-1)))
    return ops.reshape(picked, index.shape)


def _mean_axis(t: Tensor, axis) -> Tensor:
    """``ops.mean(t, axis=axis)``. Over an axis of size 1 (one unit per sample) the mean is the value
    itself, bit for bit, and so is its gradient: a reshape, which costs less, does it."""
    if isinstance(axis, int) and t.ndim and -t.ndim <= axis < t.ndim and t.shape[axis] == 1:
        axis %= t.ndim
        return ops.reshape(t, t.shape[:axis] + t.shape[axis + 1:])
    return ops.mean(t, axis=axis)


def _clip_probs(p: Tensor) -> Tensor:
    eps = B.epsilon()
    return ops.clip(p, eps, 1.0 - eps)


def _sparse_labels(name, y_true, y_pred_shape):
    """Integer class labels of shape ``y_pred_shape[:-1]`` (a trailing size-1 axis is dropped)."""
    xp = B.xp
    labels = y_true.data if isinstance(y_true, Tensor) else B.asarray(y_true)
    if labels.ndim == len(y_pred_shape) and labels.ndim > 0 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if tuple(labels.shape) != tuple(y_pred_shape[:-1]):
        raise ValueError(
            f"{name}: y_true of shape {tuple(labels.shape)} does not fit y_pred of shape {tuple(y_pred_shape)}; "
            f"expected integer class labels of shape {tuple(y_pred_shape[:-1])}")
    if labels.dtype.kind == "f":
        if labels.size and not bool(xp.all(labels == xp.floor(labels))):
            bad = labels[labels != xp.floor(labels)].reshape(-1)[0].item()
            raise ValueError(f"{name}: y_true must hold integer class labels, got the non-integer label {bad!r}")
        labels = labels.astype("int64")
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"{name}: y_true must hold integer class labels, got an array of dtype {labels.dtype}")
    n = y_pred_shape[-1]
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{name}: y_true holds the class label {bad}, outside the range [0, {n}) of y_pred's {n} classes")
    return labels


# ----------------------------------------------------------------- loss functions


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1) -> Tensor:
    """Mean over ``axis`` of −[y·log p + (1 − y)·log(1 − p)].

    ``label_smoothing`` s moves the targets towards 1/2: y ← y(1 − s) + s/2.
    Probabilities are clipped to [ε, 1 − ε] unless they come from ``nn.sigmoid``
    (then the logits are used, exactly and stably) or ``from_logits=True``.
    """
    z = _fused_logits(y_pred, "sigmoid", from_logits)
    if z is not None:
        y_true, z = _prepare("binary_crossentropy", y_true, z)
    else:
        y_true, y_pred = _prepare("binary_crossentropy", y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if z is not None:
        losses = nn.sigmoid_binary_cross_entropy(z, y_true)
    else:
        p = _clip_probs(y_pred)
        losses = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return _mean_axis(losses, axis)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1) -> Tensor:
    """−Σ y·log p over ``axis`` for one-hot (or probability) targets of y_pred's shape.

    Probabilities are renormalised to sum 1 and clipped to [ε, 1 − ε] (Keras),
    unless they come from ``nn.softmax`` or ``from_logits=True``: then the fused
    log-softmax cross-entropy is used. ``label_smoothing`` s: y ← y(1 − s) + s/k.
    """
    z = _fused_logits(y_pred, "softmax", from_logits, axis)
    ref = z if z is not None else _pred_tensor(y_pred)
    y_true = _true_tensor(y_true, ref.dtype)
    if y_true.shape != ref.shape:
        raise ValueError(
            f"categorical_crossentropy: y_true of shape {y_true.shape} does not match y_pred of shape {ref.shape}; "
            "expected one-hot targets of the same shape (for integer class labels use "
            "sparse_categorical_crossentropy)")
    if label_smoothing:
        k = ref.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / k
    if z is not None:
        return nn.softmax_cross_entropy(z, y_true, axis=axis, probs=None if from_logits else y_pred)
    p = ref / ops.sum(ref, axis=axis, keepdims=True)
    return -ops.sum(y_true * ops.log(_clip_probs(p)), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1) -> Tensor:
    """−log p[label]: categorical cross-entropy with integer class labels.

    ``y_true``: labels of shape ``y_pred.shape[:-1]`` (or with a trailing axis of 1),
    integers in ``[0, classes)``. Fused from the logits when ``y_pred`` comes from
    ``nn.softmax`` or ``from_logits=True``; otherwise renormalised and clipped (Keras).
    """
    if axis not in (-1, None):
        ndim = y_pred.ndim if hasattr(y_pred, "ndim") else B.asarray(y_pred).ndim
        if axis != ndim - 1:
            raise ValueError(f"sparse_categorical_crossentropy: only the last axis is supported, got axis={axis}")
    z = _fused_logits(y_pred, "softmax", from_logits)
    ref = z if z is not None else _pred_tensor(y_pred)
    labels = _sparse_labels("sparse_categorical_crossentropy", y_true, ref.shape)
    if z is not None:
        return nn.softmax_cross_entropy(z, labels, probs=None if from_logits else y_pred)
    p = ref / ops.sum(ref, axis=-1, keepdims=True)
    return -_gather_last(ops.log(_clip_probs(p)), labels)


def mean_squared_error(y_true, y_pred) -> Tensor:
    """mean((y_true − y_pred)²) over the last axis."""
    y_true, y_pred = _prepare("mean_squared_error", y_true, y_pred)
    return _mean_axis(ops.square(y_true - y_pred), -1)


def mean_absolute_error(y_true, y_pred) -> Tensor:
    """mean(|y_true − y_pred|) over the last axis."""
    y_true, y_pred = _prepare("mean_absolute_error", y_true, y_pred)
    return _mean_axis(ops.abs(y_true - y_pred), -1)


def mean_absolute_percentage_error(y_true, y_pred) -> Tensor:
    """100 · mean(|y_true − y_pred| / max(|y_true|, ε)) over the last axis."""
    y_true, y_pred = _prepare("mean_absolute_percentage_error", y_true, y_pred)
    denom = ops.clip(ops.abs(y_true), B.epsilon(), None)
    return 100.0 * _mean_axis(ops.abs((y_true - y_pred) / denom), -1)


def mean_squared_logarithmic_error(y_true, y_pred) -> Tensor:
    """mean((log(1 + max(y_pred, ε)) − log(1 + max(y_true, ε)))²) over the last axis."""
    y_true, y_pred = _prepare("mean_squared_logarithmic_error", y_true, y_pred)
    eps = B.epsilon()
    diff = ops.log1p(ops.clip(y_pred, eps, None)) - ops.log1p(ops.clip(y_true, eps, None))
    return _mean_axis(ops.square(diff), -1)


def huber(y_true, y_pred, delta=1.0) -> Tensor:
    """Mean over the last axis of ½e² where |e| <= delta, else delta·(|e| − ½delta); e = y_pred − y_true."""
    y_true, y_pred = _prepare("huber", y_true, y_pred)
    error = y_pred - y_true
    abs_error = ops.abs(error)
    quadratic = 0.5 * ops.square(error)
    linear = delta * abs_error - 0.5 * delta * delta
    return _mean_axis(ops.where(abs_error.data <= delta, quadratic, linear), -1)


def log_cosh(y_true, y_pred) -> Tensor:
    """mean(log cosh(y_pred − y_true)) over the last axis, computed stably as x + softplus(−2x) − log 2."""
    y_true, y_pred = _prepare("log_cosh", y_true, y_pred)
    x = y_pred - y_true
    return _mean_axis(x + nn.softplus(-2.0 * x) - math.log(2.0), -1)


def _hinge_labels(y_true: Tensor) -> Tensor:
    """Keras's conversion: labels that are all 0 or 1 become −1 / +1; other labels are kept."""
    d = y_true.data
    if d.size and bool(B.xp.all((d == 0) | (d == 1))):
        return 2.0 * y_true - 1.0
    return y_true


def hinge(y_true, y_pred) -> Tensor:
    """mean(max(1 − y·ŷ, 0)) over the last axis; labels in {−1, 1} (or {0, 1}, converted)."""
    y_true, y_pred = _prepare("hinge", y_true, y_pred)
    return _mean_axis(nn.relu(1.0 - _hinge_labels(y_true) * y_pred), -1)


def squared_hinge(y_true, y_pred) -> Tensor:
    """mean(max(1 − y·ŷ, 0)²) over the last axis; labels in {−1, 1} (or {0, 1}, converted)."""
    y_true, y_pred = _prepare("squared_hinge", y_true, y_pred)
    return _mean_axis(ops.square(nn.relu(1.0 - _hinge_labels(y_true) * y_pred)), -1)


def categorical_hinge(y_true, y_pred) -> Tensor:
    """max(neg − pos + 1, 0) with pos = Σ y·ŷ and neg = max((1 − y)·ŷ) over the last axis."""
    y_true, y_pred = _prepare("categorical_hinge", y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    others = (1.0 - y_true) * y_pred
    neg = _gather_last(others, B.xp.argmax(others.data, axis=-1))
    return nn.relu(neg - pos + 1.0)


def kl_divergence(y_true, y_pred) -> Tensor:
    """Σ y·log(y / ŷ) over the last axis, both clipped to [ε, 1]."""
    y_true, y_pred = _prepare("kl_divergence", y_true, y_pred)
    eps = B.epsilon()
    t = ops.clip(y_true, eps, 1.0)
    p = ops.clip(y_pred, eps, 1.0)
    return ops.sum(t * ops.log(t / p), axis=-1)


def poisson(y_true, y_pred) -> Tensor:
    """mean(ŷ − y·log(ŷ + ε)) over the last axis."""
    y_true, y_pred = _prepare("poisson", y_true, y_pred)
    return _mean_axis(y_pred - y_true * ops.log(y_pred + B.epsilon()), -1)


def _l2_normalize(x: Tensor, axis) -> Tensor:
    squared = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return x / ops.sqrt(ops.clip(squared, _L2_EPSILON, None))


def cosine_similarity(y_true, y_pred, axis=-1) -> Tensor:
    """−Σ ŷ_n·y_n over ``axis`` with both l2-normalised: −1 for the same direction (Keras's sign)."""
    y_true, y_pred = _prepare("cosine_similarity", y_true, y_pred)
    return -ops.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


# Keras's aliases
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
huber_loss = huber

_FUNCTIONS = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error, "mse": mse, "MSE": MSE,
    "mean_absolute_error": mean_absolute_error, "mae": mae, "MAE": MAE,
    "mean_absolute_percentage_error": mean_absolute_percentage_error, "mape": mape, "MAPE": MAPE,
    "mean_squared_logarithmic_error": mean_squared_logarithmic_error, "msle": msle, "MSLE": MSLE,
    "huber": huber, "huber_loss": huber_loss,
    "log_cosh": log_cosh, "logcosh": logcosh,
    "hinge": hinge, "squared_hinge": squared_hinge, "categorical_hinge": categorical_hinge,
    "kl_divergence": kl_divergence, "kld": kld, "KLD": KLD, "kullback_leibler_divergence": kl_divergence,
    "poisson": poisson,
    "cosine_similarity": cosine_similarity,
}
for _name, _fn in _FUNCTIONS.items():
    LOSSES.add(_name, _fn)

# which target check validate_targets applies for each function
_TARGET_KIND = {
    binary_crossentropy: "binary",
    categorical_crossentropy: "categorical",
    sparse_categorical_crossentropy: "sparse",
}
for _fn in (mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
            mean_squared_logarithmic_error, huber, log_cosh, hinge, squared_hinge, categorical_hinge,
            kl_divergence, poisson, cosine_similarity):
    _TARGET_KIND[_fn] = "same_shape"

# ----------------------------------------------------------------- target checks


def _dims_match(a, b) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is not None and y is not None and x != y:
            return False
    return True


def _shapes_compatible(t, p) -> bool:
    """Equal shapes, up to ``(n,)`` against ``(n, 1)`` (either way), ``None`` matching any size."""
    if _dims_match(t, p):
        return True
    if len(t) == len(p) + 1 and t[-1] == 1:
        return _dims_match(t[:-1], p)
    if len(p) == len(t) + 1 and p[-1] == 1:
        return _dims_match(t, p[:-1])
    return False


def _fmt_shape(shape) -> str:
    dims = ["n" if i == 0 and d is None else ("?" if d is None else str(d)) for i, d in enumerate(shape)]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _expected(pred_shape, batch):
    """``pred_shape`` with its batch dimension filled in from the data, for messages."""
    shape = list(pred_shape)
    if shape and shape[0] is None:
        shape[0] = batch
    return tuple(shape)


def _is_integral(y) -> bool:
    xp = B.xp
    if y.dtype.kind in "iub":
        return True
    return y.dtype.kind == "f" and bool(xp.all(xp.isfinite(y) & (y == xp.floor(y))))


def _validate(kind: str, name: str, y, p_shape) -> None:
    xp = B.xp
    t_shape = tuple(y.shape)
    batch = t_shape[0] if t_shape else None
    units = p_shape[-1] if p_shape else None
    where = f"{name}: argument `y`"
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{where} must hold numbers, got an array of dtype {y.dtype}")
    bounds = None
    if y.dtype.kind == "f" and y.size:
        if kind == "binary":
            # the range is needed below anyway; min and max are NaN/inf exactly when a value is
            bounds = float(y.min()), float(y.max())
            finite = math.isfinite(bounds[0]) and math.isfinite(bounds[1])
        else:
            finite = B.all_finite(y)
        if not finite:
            raise ValueError(f"{where} contains NaN or infinite values; targets must be finite")

    if kind == "categorical":
        if _dims_match(t_shape, p_shape):
            return
        expected = _fmt_shape(_expected(p_shape, batch))
        label_like = len(t_shape) == len(p_shape) - 1 or (
            len(t_shape) == len(p_shape) and t_shape and t_shape[-1] == 1 and units not in (1, None))
        if label_like and y.size and _is_integral(y):
            lo, hi = int(y.min()), int(y.max())
            n = units if units is not None else hi + 1
            raise ValueError(
                f"{where} holds integer class labels of shape {_fmt_shape(t_shape)} (values {lo}..{hi}), "
                f"but {name} expects one-hot targets of shape {expected}, one column per output unit "
                f"(the model's output has {units} units). Use loss='sparse_categorical_crossentropy' for "
                f"integer labels, or one-hot encode them with shenjing.utils.to_categorical(y, {n}).")
        if len(t_shape) == len(p_shape) and _dims_match(t_shape[:-1], p_shape[:-1]):
            raise ValueError(
                f"{where} has one-hot width {t_shape[-1]} (shape {_fmt_shape(t_shape)}), but the model's "
                f"output has {units} units; expected targets of shape {expected}. Make the last layer's "
                f"units equal the number of classes ({t_shape[-1]}).")
        raise ValueError(
            f"{where} has shape {_fmt_shape(t_shape)}, but {name} expects one-hot targets of the "
            f"model's output shape {expected}.")

    if kind == "sparse":
        expected = _fmt_shape(_expected(p_shape[:-1], batch))
        if (len(t_shape) == len(p_shape) and units not in (1, None) and t_shape[-1] == units
                and _dims_match(t_shape, p_shape)):
            raise ValueError(
                f"{where} looks one-hot encoded (shape {_fmt_shape(t_shape)}), but {name} expects integer "
                f"class labels of shape {expected}. Use loss='categorical_crossentropy' for one-hot "
                f"targets, or convert them to labels with y.argmax(axis=-1).")
        if not (_dims_match(t_shape, p_shape[:-1]) or _dims_match(t_shape, tuple(p_shape[:-1]) + (1,))):
            raise ValueError(
                f"{where} has shape {_fmt_shape(t_shape)}, but {name} expects integer class labels of "
                f"shape {expected} (or with a trailing axis of 1) for the model's output of shape "
                f"{_fmt_shape(_expected(p_shape, batch))}.")
        if not y.size:
            return
        if not _is_integral(y):
            flat = y.reshape(-1)
            bad = flat[flat != xp.floor(flat)][0].item()
            raise ValueError(f"{where} must hold integer class labels, but it holds the non-integer value {bad!r}.")
        lo, hi = int(y.min()), int(y.max())
        if units is not None and (lo < 0 or hi >= units):
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{where} holds the class label {bad}, outside the range [0, {units}) of the model's "
                f"{units} output units; labels must be integers 0..{units - 1}. "
                f"Give the last layer as many units as there are classes.")
        return

    # binary and same-shape losses need y's shape to equal the output's (up to (n,) vs (n, 1))
    if not _shapes_compatible(t_shape, p_shape):
        raise ValueError(
            f"{where} has shape {_fmt_shape(t_shape)}, but {name} compares it elementwise with the model's "
            f"output of shape {_fmt_shape(_expected(p_shape, batch))}; the shapes must be equal "
            f"((n,) against (n, 1) is accepted).")
    if kind == "binary" and y.size:
        lo, hi = bounds if bounds is not None else (float(y.min()), float(y.max()))
        if lo < 0 or hi > 1:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{where} must hold labels in [0, 1], but it holds {bad:g}. For integer class labels "
                f"0..k-1 use loss='sparse_categorical_crossentropy' with k output units.")


# ------------------------------------------------------------------------- objects


class Loss:
    """Base of loss objects: ``loss(y_true, y_pred, sample_weight=None)`` -> scalar Tensor.

    Subclasses implement ``call(y_true, y_pred)`` returning per-sample losses.
    ``reduction``: ``'sum_over_batch_size'`` (default: sum / number of elements),
    ``'mean'`` (the same), ``'sum'``, ``'none'`` (the weighted per-sample losses)
    or ``'mean_with_sample_weight'`` (sum / sum of the weights).
    """

    def __init__(self, name: str | None = None, reduction: str = "sum_over_batch_size"):
        if reduction is None:
            reduction = "none"
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: invalid reduction {reduction!r}; expected one of "
                f"{', '.join(repr(r) for r in REDUCTIONS)}")
        self.name = name or to_snake_case(type(self).__name__)
        self.reduction = reduction

    def call(self, y_true, y_pred) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        losses = self.call(y_true, y_pred)
        if not isinstance(losses, Tensor):
            losses = Tensor(losses)
        return reduce_weighted_losses(losses, sample_weight, self.reduction, self.name)

    def validate_targets(self, y_true, y_pred_shape) -> None:
        """Check the whole target array ``y`` against the model's output shape before training.

        ``y_pred_shape`` may have ``None`` for unknown sizes (the batch). Raises a
        ValueError naming the loss and ``y``, what was expected and what came.
        Losses without a known target convention accept anything.
        """
        kind = _TARGET_KIND.get(getattr(self, "fn", None))
        if kind is None:
            return
        y = y_true.data if isinstance(y_true, Tensor) else B.asarray(y_true)
        _validate(kind, self.name, y, tuple(y_pred_shape))

    def target_values_pass(self, y, y_pred_shape) -> bool:
        """The checks of :meth:`validate_targets` that read ``y``'s values, for a target whose shape and dtype
        passed it before against the same output shape (a batch like an earlier one; ``y_pred_shape()``
        gives it, called only when validate_targets must run): False when ``y`` holds NaN or infinity (the
        caller reports it), else True once the values pass; raises validate_targets' errors. Binary targets
        need their range anyway: their min and max (NaN or infinite exactly when a value is) are the
        finiteness check too."""
        kind = _TARGET_KIND.get(getattr(self, "fn", None))
        if kind == "binary" and y.size:
            lo, hi = float(y.min()), float(y.max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                return False
            if lo < 0 or hi > 1:
                self.validate_targets(y, y_pred_shape())
            return True
        if y.dtype.kind == "f" and not bool(B.xp.isfinite(y).all()):
            return False
        if kind == "sparse":
            self.validate_targets(y, y_pred_shape())
        return True

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


def reduce_weighted_losses(losses: Tensor, sample_weight=None, reduction="sum_over_batch_size",
                           name="loss") -> Tensor:
    """Multiply per-sample ``losses`` by ``sample_weight`` (broadcast like Keras) and reduce."""
    weights = None
    if sample_weight is not None:
        weights = sample_weight.data if isinstance(sample_weight, Tensor) else B.asarray(sample_weight)
        weights = weights.astype(losses.dtype, copy=False)
        if weights.ndim == losses.ndim + 1 and weights.shape[-1] == 1:
            weights = weights.reshape(weights.shape[:-1])
        while weights.ndim < losses.ndim:  # (batch,) weights for (batch, steps) losses
            weights = weights[..., None]
        try:
            B.xp.broadcast_shapes(weights.shape, losses.shape)
        except ValueError:
            raise ValueError(
                f"{name}: sample_weight of shape {tuple(B.asarray(sample_weight).shape)} does not broadcast "
                f"to the per-sample losses of shape {losses.shape}") from None
        losses = losses * Tensor(weights)
    if reduction == "none" or losses.ndim == 0:
        return losses
    if weights is None and reduction != "sum" and losses.size:
        return _mean_of_elements(losses)
    total = ops.sum(losses)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weights is not None:
        divisor = float(B.xp.broadcast_to(weights, losses.shape).sum())
    else:
        divisor = losses.size
    if divisor == 0:
        return total * 0.0
    return total / divisor


@recorded
def _mean_of_elements(losses: Tensor) -> Tensor:
    """``ops.sum(losses) / losses.size`` as one node: the same arithmetic (a sum, then a division by the
    count in the losses' dtype) and the same gradient (``g / count`` everywhere), without the two nodes."""
    xp = B.xp
    data = losses.data
    shape = data.shape
    count = xp.asarray(data.size, dtype=data.dtype)
    out = data.sum() / count

    def backward(g):
        g = g / count
        grad = xp.empty(shape, dtype=g.dtype)
        grad.fill(g)
        return (grad,)

    return make(out, (losses,), backward)


class LossFunctionWrapper(Loss):
    """A Loss object around a per-sample loss function: ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name: str | None = None, reduction: str = "sum_over_batch_size", **kwargs):
        if not callable(fn):
            raise ValueError(f"LossFunctionWrapper: fn must be callable, got {fn!r}")
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true, y_pred) -> Tensor:
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            config["fn"] = _function_name(self.fn)
        config.update(self.fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict):
        if cls is LossFunctionWrapper:
            config = dict(config)
            fn = config.pop("fn")
            if isinstance(fn, str):
                fn = LOSSES.lookup(fn, argument="fn")
            return cls(fn, **config)
        return cls(**config)


def _function_name(fn) -> str:
    name = getattr(fn, "__name__", None)
    if name is None or name == "<lambda>":
        raise ValueError(f"losses.serialize: cannot serialize {fn!r}: give it a name (a def function)")
    return name


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary cross-entropy (see :func:`binary_crossentropy`)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy"):
        super().__init__(binary_crossentropy, name=name, reduction=reduction, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class CategoricalCrossentropy(LossFunctionWrapper):
    """Categorical cross-entropy with one-hot targets (see :func:`categorical_crossentropy`)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy"):
        super().__init__(categorical_crossentropy, name=name, reduction=reduction, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Categorical cross-entropy with integer labels (see :func:`sparse_categorical_crossentropy`)."""

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name="sparse_categorical_crossentropy"):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction, from_logits=from_logits)


class MeanSquaredError(LossFunctionWrapper):
    """mean((y_true − y_pred)²)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error"):
        super().__init__(mean_squared_error, name=name, reduction=reduction)


class MeanAbsoluteError(LossFunctionWrapper):
    """mean(|y_true − y_pred|)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error"):
        super().__init__(mean_absolute_error, name=name, reduction=reduction)


class MeanAbsolutePercentageError(LossFunctionWrapper):
    """100 · mean(|y_true − y_pred| / max(|y_true|, ε))."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error"):
        super().__init__(mean_absolute_percentage_error, name=name, reduction=reduction)


class MeanSquaredLogarithmicError(LossFunctionWrapper):
    """mean((log(1 + y_pred) − log(1 + y_true))²)."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error"):
        super().__init__(mean_squared_logarithmic_error, name=name, reduction=reduction)


class Huber(LossFunctionWrapper):
    """Quadratic for errors up to ``delta``, linear beyond."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss"):
        super().__init__(huber, name=name, reduction=reduction, delta=delta)


class LogCosh(LossFunctionWrapper):
    """mean(log cosh(y_pred − y_true))."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh"):
        super().__init__(log_cosh, name=name, reduction=reduction)


class Hinge(LossFunctionWrapper):
    """mean(max(1 − y·ŷ, 0))."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge"):
        super().__init__(hinge, name=name, reduction=reduction)


class SquaredHinge(LossFunctionWrapper):
    """mean(max(1 − y·ŷ, 0)²)."""

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge"):
        super().__init__(squared_hinge, name=name, reduction=reduction)


class CategoricalHinge(LossFunctionWrapper):
    """max(neg − pos + 1, 0) for one-hot targets."""

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge"):
        super().__init__(categorical_hinge, name=name, reduction=reduction)


class KLDivergence(LossFunctionWrapper):
    """Σ y·log(y / ŷ)."""

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence"):
        super().__init__(kl_divergence, name=name, reduction=reduction)


class Poisson(LossFunctionWrapper):
    """mean(ŷ − y·log(ŷ + ε))."""

    def __init__(self, reduction="sum_over_batch_size", name="poisson"):
        super().__init__(poisson, name=name, reduction=reduction)


class CosineSimilarity(LossFunctionWrapper):
    """−cosine similarity along ``axis`` (−1 is best)."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity"):
        super().__init__(cosine_similarity, name=name, reduction=reduction, axis=axis)


_CLASSES = (Loss, LossFunctionWrapper, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
            MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError,
            Huber, LogCosh, Hinge, SquaredHinge, CategoricalHinge, KLDivergence, Poisson, CosineSimilarity)
for _cls in _CLASSES:
    LOSSES.add(_cls.__name__, _cls)

# ----------------------------------------------------------------- get / serialize


def _as_loss(obj, name=None):
    """A Loss object from a registry entry: class -> instance, function -> wrapper, Loss -> itself."""
    if isinstance(obj, Loss):
        return obj
    if isinstance(obj, type) and issubclass(obj, Loss):
        if obj in (Loss, LossFunctionWrapper):
            raise ValueError(f"losses.get: {obj.__name__} is a base class; name a concrete loss")
        return obj()
    if callable(obj):
        return LossFunctionWrapper(obj, name=name or getattr(obj, "__name__", None))
    raise ValueError(f"losses.get: {obj!r} is not a loss (expected a Loss class or object, or a function)")


def serialize(loss):
    """A JSON-able description: ``{'class_name': ..., 'config': {...}}`` for a Loss, a name for a function."""
    if loss is None or isinstance(loss, str):
        return loss
    if isinstance(loss, Loss):
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    if callable(loss):
        return _function_name(loss)
    raise ValueError(f"losses.serialize: cannot serialize {loss!r}")


def deserialize(config, custom_objects: dict | None = None):
    """The Loss described by ``config`` (a name or a ``{'class_name', 'config'}`` dict)."""
    if isinstance(config, str):
        return _as_loss(LOSSES.lookup(config, argument="loss", custom_objects=custom_objects))
    if isinstance(config, dict):
        if "class_name" not in config:
            raise ValueError(f"losses.deserialize: a config dict needs a 'class_name' key, got {config!r}")
        name, inner = config["class_name"], config.get("config") or {}
        if name == "function" and isinstance(inner, str):  # Keras 3's form for plain functions
            return _as_loss(LOSSES.lookup(inner, argument="loss", custom_objects=custom_objects))
        obj = LOSSES.lookup(name, argument="loss", custom_objects=custom_objects)
        if not isinstance(inner, dict):
            raise ValueError(f"losses.deserialize: 'config' must be a dict, got {inner!r}")
        if isinstance(obj, type) and issubclass(obj, Loss):
            if obj is LossFunctionWrapper and isinstance(inner.get("fn"), str):
                inner = dict(inner)
                inner["fn"] = LOSSES.lookup(inner["fn"], argument="fn", custom_objects=custom_objects)
            return obj.from_config(inner)
        if callable(obj) and not isinstance(obj, Loss):
            inner = dict(inner)
            name = inner.pop("name", None)
            reduction = inner.pop("reduction", "sum_over_batch_size")
            return LossFunctionWrapper(obj, name=name, reduction=reduction, **inner)
        return _as_loss(obj)
    raise ValueError(f"losses.deserialize: expected a name or a {{'class_name', 'config'}} dict, got {config!r}")


def get(identifier, custom_objects: dict | None = None):
    """Resolve a loss to a :class:`Loss` object.

    Accepts a name (``'categorical_crossentropy'``, ``'mse'``, ``'Huber'``, …), a
    config dict, a Loss object (returned as is), a Loss class (instantiated) or
    a function ``fn(y_true, y_pred)`` (wrapped). ``None`` gives ``None``.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, (str, dict)):
        return deserialize(identifier, custom_objects=custom_objects)
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return _as_loss(identifier)
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise ValueError(
        f"Could not interpret loss identifier {identifier!r} (type {type(identifier).__name__}): expected a "
        "name such as 'mse', a Loss object, a function fn(y_true, y_pred) or a config dict")


__all__ = [
    "Loss", "LossFunctionWrapper", "BinaryCrossentropy", "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Huber", "LogCosh", "Hinge", "SquaredHinge", "CategoricalHinge",
    "KLDivergence", "Poisson", "CosineSimilarity",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "huber", "log_cosh", "hinge", "squared_hinge", "categorical_hinge",
    "kl_divergence", "poisson", "cosine_similarity",
    "mse", "mae", "mape", "msle", "MSE", "MAE", "MAPE", "MSLE", "kld", "KLD", "kullback_leibler_divergence",
    "logcosh", "huber_loss", "get", "serialize", "deserialize", "reduce_weighted_losses", "LOSSES", "REDUCTIONS",
]
