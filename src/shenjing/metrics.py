"""Streaming metrics with Keras semantics, computed on plain arrays (no autodiff graph).

A :class:`Metric` accumulates over batches with ``update_state(y_true, y_pred,
sample_weight=None)``, reports with ``result()`` (a Python float, or a list of
floats for several thresholds) and starts over with ``reset_state()``. Sums and
counts are kept as float64 scalars, so long epochs accumulate stably.

``get(identifier, loss=None, output_shape=None)`` resolves names as Keras's
``compile`` does: ``'accuracy'`` / ``'acc'`` becomes binary, sparse categorical
or categorical accuracy according to the loss and the output shape, and the
metric is named by the string the user wrote (so logs read ``accuracy``,
``val_accuracy``, ``mse``…).
"""

from __future__ import annotations

import math

from . import backend as B
from . import losses as losses_module
from .autodiff.tensor import Tensor, no_grad
from .utils.naming import to_snake_case
from .utils.registry import Registry

METRICS = Registry("metric")

# --------------------------------------------------------------------------- helpers


def _array(x):
    """The array behind ``x`` (a Tensor's data, or anything array-like)."""
    if isinstance(x, Tensor):
        return x.data
    return B.asarray(x)


def _same_rank(a, b):
    """Keras's rank alignment on arrays: an ``(n,)`` operand gains an axis next to ``(n, 1)``,
    otherwise a trailing axis of size 1 is dropped."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        if b.ndim == 1:
            b = b[..., None]
        else:
            a = a.reshape(a.shape[:-1])
    elif b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        if a.ndim == 1:
            a = a[..., None]
        else:
            b = b.reshape(b.shape[:-1])
    return a, b


def _result_dtype(y_pred):
    return y_pred.dtype if B.is_float_dtype(y_pred.dtype) else B.floatx()


def _sigmoid(x):
    xp = B.xp
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _in_top_k(targets, predictions, k: int):
    """Whether each target class scores at least the k-th largest prediction of its row
    (ties at the boundary count as inside, as Keras's ``in_top_k``)."""
    xp = B.xp
    n = predictions.shape[-1]
    targets = targets.astype("int64")
    if k >= n:
        return xp.ones(targets.shape, dtype=bool)
    target_values = xp.take_along_axis(predictions, targets[..., None], axis=-1)[..., 0]
    kth_largest = -xp.partition(-predictions, k - 1, axis=-1)[..., k - 1]
    return target_values >= kth_largest


# ------------------------------------------------------------------ function forms


def accuracy(y_true, y_pred):
    """1 where ``y_true == y_pred`` elementwise, else 0."""
    y_true, y_pred = _same_rank(_array(y_true), _array(y_pred))
    return (y_true == y_pred).astype(_result_dtype(y_pred))


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where ``(y_pred > threshold)`` equals the 0/1 label, elementwise, else 0."""
    y_true, y_pred = _same_rank(_array(y_true), _array(y_pred))
    predicted = (y_pred > threshold).astype(y_true.dtype)
    return (y_true == predicted).astype(_result_dtype(y_pred))


def categorical_accuracy(y_true, y_pred):
    """Per sample: 1 where argmax of the one-hot target equals argmax of the prediction."""
    xp = B.xp
    y_true, y_pred = _array(y_true), _array(y_pred)
    hit = xp.argmax(y_true, axis=-1) == xp.argmax(y_pred, axis=-1)
    return hit.astype(_result_dtype(y_pred))


def _sparse_targets(y_true, y_pred):
    if y_true.ndim == y_pred.ndim and y_true.ndim > 0 and y_true.shape[-1] == 1:
        y_true = y_true.reshape(y_true.shape[:-1])
    return y_true


def sparse_categorical_accuracy(y_true, y_pred):
    """Per sample: 1 where the integer label equals argmax of the prediction."""
    xp = B.xp
    y_pred = _array(y_pred)
    y_true = _sparse_targets(_array(y_true), y_pred)
    hit = y_true == xp.argmax(y_pred, axis=-1)
    return hit.astype(_result_dtype(y_pred))


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per sample: 1 where the one-hot target's class is among the ``k`` highest predictions."""
    y_pred = _array(y_pred)
    targets = B.xp.argmax(_array(y_true), axis=-1)
    return _in_top_k(targets, y_pred, k).astype(_result_dtype(y_pred))


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per sample: 1 where the integer label is among the ``k`` highest predictions."""
    y_pred = _array(y_pred)
    targets = _sparse_targets(_array(y_true), y_pred)
    return _in_top_k(targets, y_pred, k).astype(_result_dtype(y_pred))


def _loss_as_metric(fn, sign=1.0):
    """The array form of a loss function: evaluated without a graph, returning per-sample values."""

    def metric_fn(y_true, y_pred, **kwargs):
        with no_grad():
            y_pred = _array(y_pred)
            if not B.is_float_dtype(y_pred.dtype):
                y_pred = y_pred.astype(B.floatx())
            values = fn(y_true, Tensor(y_pred), **kwargs).data
        return values if sign == 1.0 else -values

    metric_fn.__name__ = fn.__name__
    metric_fn.__doc__ = f"The per-sample {fn.__name__} of arrays (see shenjing.losses.{fn.__name__})."
    return metric_fn


mean_squared_error = mse = MSE = _loss_as_metric(losses_module.mean_squared_error)
mean_absolute_error = mae = MAE = _loss_as_metric(losses_module.mean_absolute_error)
mean_absolute_percentage_error = mape = MAPE = _loss_as_metric(losses_module.mean_absolute_percentage_error)
mean_squared_logarithmic_error = msle = MSLE = _loss_as_metric(losses_module.mean_squared_logarithmic_error)
binary_crossentropy = _loss_as_metric(losses_module.binary_crossentropy)
categorical_crossentropy = _loss_as_metric(losses_module.categorical_crossentropy)
sparse_categorical_crossentropy = _loss_as_metric(losses_module.sparse_categorical_crossentropy)
kl_divergence = kld = KLD = _loss_as_metric(losses_module.kl_divergence)
poisson = _loss_as_metric(losses_module.poisson)
hinge = _loss_as_metric(losses_module.hinge)
squared_hinge = _loss_as_metric(losses_module.squared_hinge)
categorical_hinge = _loss_as_metric(losses_module.categorical_hinge)
log_cosh = logcosh = _loss_as_metric(losses_module.log_cosh)
cosine_similarity = _loss_as_metric(losses_module.cosine_similarity, sign=-1.0)
cosine_similarity.__doc__ = "The per-sample cosine similarity of arrays (+1 for the same direction)."

# ------------------------------------------------------------------------- base


class Metric:
    """Base of streaming metrics.

    Subclasses set their parameters, call ``super().__init__(name, dtype)`` (which
    calls ``reset_state()``) and implement ``update_state`` / ``result`` /
    ``reset_state``.
    """

    def __init__(self, name: str | None = None, dtype=None):
        self.name = name or to_snake_case(type(self).__name__)
        self.dtype = dtype
        self.reset_state()

    def reset_state(self) -> None:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """Update with one batch and return the running result (Keras's ``metric(y_true, y_pred)``)."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"


def _samplewise(values, sample_weight):
    """Keras's reduction of ``values`` (and weights) to one value per sample, in float64.

    Weights are aligned to the values' rank, the values averaged over the axes the
    weights lack, then weighted; any trailing axes left are averaged away.
    """
    xp = B.xp
    values = _array(values).astype("float64")
    weights = None
    if sample_weight is not None:
        weights = _array(sample_weight).astype("float64")
        values, weights = _same_rank(values, weights)
        if values.ndim > weights.ndim:
            values = values.mean(axis=tuple(range(weights.ndim, values.ndim)))
        try:
            weights = xp.broadcast_to(weights, values.shape)
        except ValueError:
            raise ValueError(
                f"sample_weight of shape {tuple(_array(sample_weight).shape)} does not broadcast to the "
                f"metric values of shape {tuple(values.shape)}") from None
        values = values * weights
        if weights.ndim > 1:
            weights = weights.mean(axis=tuple(range(1, weights.ndim)))
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, weights


class Mean(Metric):
    """The (weighted) mean of the values given to ``update_state(values, sample_weight=None)``.

    Values of rank > 1 count one per sample (averaged over the trailing axes).
    """

    def __init__(self, name: str = "mean", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def reset_state(self) -> None:
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None) -> None:
        if type(values) is float and (sample_weight is None or type(sample_weight) in (int, float)):
            # one number (the loss of a batch): what _samplewise computes, in float64, without arrays
            if sample_weight is None:
                self.total += values
                self.count += 1.0
            else:
                weight = float(sample_weight)
                self.total += values * weight
                self.count += weight
            return
        values, weights = _samplewise(values, sample_weight)
        self.total += float(values.sum())
        if weights is not None:
            self.count += float(weights.sum())
        else:
            self.count += float(values.shape[0]) if values.ndim else 1.0

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    """The (weighted) sum of the values given to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name: str = "sum", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def reset_state(self) -> None:
        self.total = 0.0

    def update_state(self, values, sample_weight=None) -> None:
        values, _ = _samplewise(values, sample_weight)
        self.total += float(values.sum())

    def result(self) -> float:
        return self.total


class MeanMetricWrapper(Mean):
    """The streaming mean of a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, name: str | None = None, dtype=None, **kwargs):
        if not callable(fn):
            raise ValueError(f"MeanMetricWrapper: fn must be callable, got {fn!r}")
        self.fn = fn
        self.fn_kwargs = kwargs
        super().__init__(name=name or getattr(fn, "__name__", "mean_metric_wrapper"), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_true, y_pred = _array(y_true), _array(y_pred)
        if y_pred.ndim == 1:  # one value per sample: keep it per-sample, not one scalar per batch
            y_pred = y_pred[:, None]
            if y_true.ndim == 1:
                y_true = y_true[:, None]
        with no_grad():
            values = self.fn(y_true, y_pred, **self.fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self) -> dict:
        config = super().get_config()
        if type(self) is MeanMetricWrapper:
            name = getattr(self.fn, "__name__", None)
            if name is None or name == "<lambda>":
                raise ValueError(f"MeanMetricWrapper.get_config: cannot serialize the function {self.fn!r}")
            config["fn"] = name
        config.update(self.fn_kwargs)
        return config

    @classmethod
    def from_config(cls, config: dict):
        if cls is MeanMetricWrapper:
            config = dict(config)
            fn = config.pop("fn")
            if isinstance(fn, str):
                fn = METRICS.lookup(fn, argument="fn")
                if isinstance(fn, type):  # a wrapper class registered under the function's name
                    fn = fn().fn
            return cls(fn, **config)
        return cls(**config)


def _wrapper(class_name, fn, default_name, doc, **params):
    """Define a MeanMetricWrapper subclass around ``fn`` whose constructor takes ``params``."""

    def __init__(self, name=default_name, dtype=None, **kwargs):
        unknown = set(kwargs) - set(params)
        if unknown:
            raise TypeError(f"{class_name}: unexpected argument(s) {', '.join(sorted(unknown))}")
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **{**params, **kwargs})

    cls = type(class_name, (MeanMetricWrapper,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})
    return cls


Accuracy = _wrapper("Accuracy", accuracy, "accuracy", "How often y_pred equals y_true exactly.")
BinaryAccuracy = _wrapper("BinaryAccuracy", binary_accuracy, "binary_accuracy",
                          "How often (y_pred > threshold) matches the 0/1 label.", threshold=0.5)
CategoricalAccuracy = _wrapper("CategoricalAccuracy", categorical_accuracy, "categorical_accuracy",
                               "How often the argmax of y_pred is the one-hot target's class.")
SparseCategoricalAccuracy = _wrapper("SparseCategoricalAccuracy", sparse_categorical_accuracy,
                                     "sparse_categorical_accuracy",
                                     "How often the argmax of y_pred is the integer label.")
TopKCategoricalAccuracy = _wrapper("TopKCategoricalAccuracy", top_k_categorical_accuracy,
                                   "top_k_categorical_accuracy",
                                   "How often the one-hot target's class is in the top k predictions.", k=5)
SparseTopKCategoricalAccuracy = _wrapper("SparseTopKCategoricalAccuracy", sparse_top_k_categorical_accuracy,
                                         "sparse_top_k_categorical_accuracy",
                                         "How often the integer label is in the top k predictions.", k=5)
MeanSquaredError = _wrapper("MeanSquaredError", mean_squared_error, "mean_squared_error",
                            "The mean of (y_true − y_pred)².")
MeanAbsoluteError = _wrapper("MeanAbsoluteError", mean_absolute_error, "mean_absolute_error",
                             "The mean of |y_true − y_pred|.")
MeanAbsolutePercentageError = _wrapper("MeanAbsolutePercentageError", mean_absolute_percentage_error,
                                       "mean_absolute_percentage_error",
                                       "The mean absolute percentage error.")
MeanSquaredLogarithmicError = _wrapper("MeanSquaredLogarithmicError", mean_squared_logarithmic_error,
                                       "mean_squared_logarithmic_error",
                                       "The mean squared logarithmic error.")
BinaryCrossentropy = _wrapper("BinaryCrossentropy", binary_crossentropy, "binary_crossentropy",
                              "The mean binary cross-entropy.", from_logits=False, label_smoothing=0.0)
CategoricalCrossentropy = _wrapper("CategoricalCrossentropy", categorical_crossentropy, "categorical_crossentropy",
                                   "The mean categorical cross-entropy.", from_logits=False, label_smoothing=0.0)
SparseCategoricalCrossentropy = _wrapper("SparseCategoricalCrossentropy", sparse_categorical_crossentropy,
                                         "sparse_categorical_crossentropy",
                                         "The mean sparse categorical cross-entropy.", from_logits=False)
KLDivergence = _wrapper("KLDivergence", kl_divergence, "kl_divergence", "The mean Kullback-Leibler divergence.")
Poisson = _wrapper("Poisson", poisson, "poisson", "The mean Poisson loss.")
Hinge = _wrapper("Hinge", hinge, "hinge", "The mean hinge loss.")
SquaredHinge = _wrapper("SquaredHinge", squared_hinge, "squared_hinge", "The mean squared hinge loss.")
CategoricalHinge = _wrapper("CategoricalHinge", categorical_hinge, "categorical_hinge",
                            "The mean categorical hinge loss.")
LogCoshError = _wrapper("LogCoshError", log_cosh, "logcosh", "The mean log-cosh error.")
CosineSimilarity = _wrapper("CosineSimilarity", cosine_similarity, "cosine_similarity",
                            "The mean cosine similarity (+1 for the same direction).", axis=-1)

# ------------------------------------------------------------ confusion-matrix metrics


def _weighted_counts_above(pred, weights, thresholds):
    """For each threshold t: the summed weight of the predictions strictly greater than t.

    One pass: bucket each prediction by how many (sorted) thresholds lie below it.
    """
    xp = B.xp
    order = xp.argsort(thresholds)
    ts = thresholds[order]
    idx = xp.searchsorted(ts, pred, side="left")  # number of thresholds strictly below pred
    idx = xp.where(xp.isnan(pred), 0, idx)
    hist = xp.bincount(idx, weights=weights, minlength=ts.shape[0] + 1)
    above_sorted = xp.cumsum(hist[::-1])[::-1][1:]
    out = xp.empty_like(above_sorted)
    out[order] = above_sorted
    return out


def _filter_top_k(x, k):
    """Keep the ``k`` largest entries of each row (the first ones at ties), the rest set to −inf."""
    xp = B.xp
    idx = xp.argsort(-x, axis=-1, kind="stable")[..., :k]
    keep = xp.zeros(x.shape, dtype=bool)
    xp.put_along_axis(keep, idx, True, axis=-1)
    return xp.where(keep, x, -xp.inf)


def _confusion_counts(y_true, y_pred, thresholds, sample_weight=None, top_k=None, class_id=None, name="metric"):
    """Weighted (tp, fp, tn, fn) per threshold, with Keras's rule: predicted positive iff y_pred > threshold."""
    xp = B.xp
    y_pred = _array(y_pred).astype("float64")
    y_true = _array(y_true)
    if y_true.shape != y_pred.shape:
        y_true, y_pred = _same_rank(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{name}: y_true of shape {tuple(y_true.shape)} and y_pred of shape "
                         f"{tuple(y_pred.shape)} do not match")
    weights = None
    if sample_weight is not None:
        weights = _array(sample_weight).astype("float64")
        if weights.ndim == y_pred.ndim + 1 and weights.shape[-1] == 1:
            weights = weights.reshape(weights.shape[:-1])
        while weights.ndim < y_pred.ndim:
            weights = weights[..., None]
        weights = xp.broadcast_to(weights, y_pred.shape)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim < 2:
            raise ValueError(f"{name}: class_id={class_id} needs y_pred with a class axis, got shape "
                             f"{tuple(y_pred.shape)}")
        y_pred, y_true = y_pred[..., class_id], y_true[..., class_id]
        if weights is not None:
            weights = weights[..., class_id]
    pred = y_pred.reshape(-1)
    positive = (y_true.reshape(-1) != 0).astype("float64")
    w = xp.ones_like(pred) if weights is None else weights.reshape(-1)
    pos_w, neg_w = w * positive, w * (1.0 - positive)
    tp = _weighted_counts_above(pred, pos_w, thresholds)
    fp = _weighted_counts_above(pred, neg_w, thresholds)
    fn = pos_w.sum() - tp
    tn = neg_w.sum() - fp
    return tp, fp, tn, fn


def _divide_no_nan(a, b):
    xp = B.xp
    safe = xp.where(b == 0, 1.0, b)
    return xp.where(b == 0, 0.0, a / safe)


class _ThresholdMetric(Metric):
    """Shared state of Precision / Recall: weighted true/false positives/negatives per threshold."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default = 0.5 if top_k is None else -math.inf
        if thresholds is None:
            values = [default]
        elif isinstance(thresholds, (list, tuple)):
            values = [float(t) for t in thresholds]
        else:
            values = [float(thresholds)]
        if thresholds is not None and any(not 0.0 <= t <= 1.0 for t in values):
            raise ValueError(f"{type(self).__name__}: thresholds must lie in [0, 1], got {thresholds!r}")
        if top_k is not None and (int(top_k) != top_k or top_k < 1):
            raise ValueError(f"{type(self).__name__}: top_k must be a positive integer, got {top_k!r}")
        self._multiple = isinstance(thresholds, (list, tuple))
        self.thresholds = B.xp.asarray(values, dtype="float64")
        super().__init__(name=name, dtype=dtype)

    def reset_state(self) -> None:
        xp = B.xp
        n = self.thresholds.shape[0]
        self.true_positives = xp.zeros(n, dtype="float64")
        self.false_positives = xp.zeros(n, dtype="float64")
        self.true_negatives = xp.zeros(n, dtype="float64")
        self.false_negatives = xp.zeros(n, dtype="float64")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        tp, fp, tn, fn = _confusion_counts(y_true, y_pred, self.thresholds, sample_weight, self.top_k,
                                           self.class_id, self.name)
        self.true_positives += tp
        self.false_positives += fp
        self.true_negatives += tn
        self.false_negatives += fn

    def _report(self, values):
        values = [float(v) for v in B.to_host(values)]
        return values if self._multiple else values[0]

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(thresholds=self.init_thresholds, top_k=self.top_k, class_id=self.class_id)
        return config


class Precision(_ThresholdMetric):
    """tp / (tp + fp): of the samples predicted positive (``y_pred > threshold``), the fraction that are.

    ``thresholds``: one float (default 0.5) or a list (``result()`` is then a list).
    ``top_k``: only the k highest predictions of each row count as predicted positive.
    ``class_id``: evaluate one column (one class) only.
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._report(_divide_no_nan(self.true_positives, self.true_positives + self.false_positives))


class Recall(_ThresholdMetric):
    """tp / (tp + fn): of the positive samples, the fraction predicted positive (``y_pred > threshold``).

    Arguments as for :class:`Precision`.
    """

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._report(_divide_no_nan(self.true_positives, self.true_positives + self.false_negatives))


class AUC(Metric):
    """Area under the ROC or precision-recall curve, approximated on a grid of thresholds (Keras's).

    ``num_thresholds`` thresholds: −ε, 1/(n−1), …, (n−2)/(n−1), 1 + ε (or the given
    ``thresholds`` between −ε and 1 + ε). ``curve``: ``'ROC'`` or ``'PR'``.
    ``summation_method``: ``'interpolation'`` (trapezoids for ROC; for PR, the
    Davis & Goadrich interpolation of the positives), ``'minoring'`` or ``'majoring'``.
    ``from_logits``: apply the sigmoid to ``y_pred`` first. Multi-column inputs are flattened.
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc", dtype=None,
                 thresholds=None, from_logits=False):
        curve_key = str(curve).upper()
        if curve_key not in ("ROC", "PR"):
            raise ValueError(f"AUC: invalid curve {curve!r}; expected 'ROC' or 'PR'")
        method = str(summation_method).lower()
        if method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(f"AUC: invalid summation_method {summation_method!r}; expected 'interpolation', "
                             "'minoring' or 'majoring'")
        eps = B.epsilon()
        if thresholds is not None:
            inner = sorted(float(t) for t in thresholds)
            if any(not 0.0 <= t <= 1.0 for t in inner):
                raise ValueError(f"AUC: thresholds must lie in [0, 1], got {thresholds!r}")
            self.num_thresholds = len(inner) + 2
        else:
            if int(num_thresholds) != num_thresholds or num_thresholds <= 1:
                raise ValueError(f"AUC: num_thresholds must be an integer > 1, got {num_thresholds!r}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        self._init_thresholds = thresholds
        self.thresholds = B.xp.asarray([0.0 - eps] + inner + [1.0 + eps], dtype="float64")
        self.curve = curve_key
        self.summation_method = method
        self.from_logits = bool(from_logits)
        super().__init__(name=name, dtype=dtype)

    def reset_state(self) -> None:
        xp = B.xp
        n = self.num_thresholds
        self.true_positives = xp.zeros(n, dtype="float64")
        self.false_positives = xp.zeros(n, dtype="float64")
        self.true_negatives = xp.zeros(n, dtype="float64")
        self.false_negatives = xp.zeros(n, dtype="float64")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        y_pred = _array(y_pred).astype("float64")
        if self.from_logits:
            y_pred = _sigmoid(y_pred)
        tp, fp, tn, fn = _confusion_counts(y_true, y_pred, self.thresholds, sample_weight, name=self.name)
        self.true_positives += tp
        self.false_positives += fp
        self.true_negatives += tn
        self.false_negatives += fn

    def _interpolate_pr_auc(self):
        """Davis & Goadrich (2006): tp and the predicted positives p vary linearly between thresholds,
        so precision = tp/p integrates in closed form over each interval."""
        xp = B.xp
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        d_tp = tp[:-1] - tp[1:]
        p = tp + fp
        d_p = p[:-1] - p[1:]
        slope = _divide_no_nan(d_tp, xp.maximum(d_p, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = xp.where(both, _divide_no_nan(p[:-1], xp.maximum(p[1:], 0)), 1.0)
        ratio = xp.where(ratio > 0, ratio, 1.0)
        increments = _divide_no_nan(slope * (d_tp + intercept * xp.log(ratio)), xp.maximum(tp[1:] + fn[1:], 0))
        return float(increments.sum())

    def result(self) -> float:
        xp = B.xp
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = xp.minimum(y[:-1], y[1:])
        else:
            heights = xp.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(num_thresholds=self.num_thresholds, curve=self.curve, summation_method=self.summation_method,
                      thresholds=self._init_thresholds, from_logits=self.from_logits)
        return config


# ------------------------------------------------------------------------ registry

_CLASSES = (Mean, Sum, MeanMetricWrapper, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
            TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
            MeanAbsolutePercentageError, MeanSquaredLogarithmicError, BinaryCrossentropy, CategoricalCrossentropy,
            SparseCategoricalCrossentropy, KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge,
            LogCoshError, CosineSimilarity, Precision, Recall, AUC)
for _cls in _CLASSES:
    METRICS.add(_cls.__name__, _cls)

_NAMES = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
    "MAPE": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "msle": MeanSquaredLogarithmicError,
    "MSLE": MeanSquaredLogarithmicError,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "KLD": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson, "hinge": Hinge, "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "logcosh": LogCoshError, "log_cosh": LogCoshError, "cosine_similarity": CosineSimilarity,
    "precision": Precision, "recall": Recall, "auc": AUC,
}
for _name, _cls in _NAMES.items():
    METRICS.add(_name, _cls)
METRICS.add("accuracy", Accuracy)  # placeholder: get() resolves 'accuracy' / 'acc' by the loss
METRICS.add("acc", Accuracy)
METRICS.add("crossentropy", CategoricalCrossentropy)
METRICS.add("ce", CategoricalCrossentropy)

# ----------------------------------------------------------------- get / serialize


def _loss_kind(loss):
    """('binary' | 'categorical' | 'sparse' | None, from_logits) for a loss given in any form."""
    if loss is None:
        return None, False
    if isinstance(loss, (str, dict)):
        try:
            loss = losses_module.get(loss)
        except ValueError:
            return None, False
    fn = getattr(loss, "fn", loss)
    kwargs = getattr(loss, "fn_kwargs", {}) or {}
    kinds = {losses_module.binary_crossentropy: "binary",
             losses_module.categorical_crossentropy: "categorical",
             losses_module.sparse_categorical_crossentropy: "sparse"}
    return kinds.get(fn), bool(kwargs.get("from_logits", False))


def _resolve_by_loss(kind_of_metric, loss, output_shape, name):
    loss_kind, from_logits = _loss_kind(loss)
    last = output_shape[-1] if output_shape is not None and len(output_shape) else None
    if loss_kind == "binary" or (loss_kind is None and last == 1):
        target = "binary"
    elif loss_kind == "sparse":
        target = "sparse"
    elif loss_kind == "categorical":
        target = "categorical"
    else:
        target = "categorical"
    if kind_of_metric == "accuracy":
        if target == "binary":  # on logits, a probability of 0.5 is the logit 0
            return BinaryAccuracy(name=name, threshold=0.0 if from_logits else 0.5)
        if target == "sparse":
            return SparseCategoricalAccuracy(name=name)
        return CategoricalAccuracy(name=name)
    if target == "binary":
        return BinaryCrossentropy(name=name, from_logits=from_logits)
    if target == "sparse":
        return SparseCategoricalCrossentropy(name=name, from_logits=from_logits)
    return CategoricalCrossentropy(name=name, from_logits=from_logits)


def _as_metric(obj, name=None):
    if isinstance(obj, Metric):
        return obj
    if isinstance(obj, type) and issubclass(obj, Metric):
        if obj in (Metric, MeanMetricWrapper):
            raise ValueError(f"metrics.get: {obj.__name__} is a base class; name a concrete metric")
        return obj() if name is None else obj(name=name)
    if callable(obj):
        return MeanMetricWrapper(obj, name=name or getattr(obj, "__name__", None))
    raise ValueError(f"metrics.get: {obj!r} is not a metric (expected a Metric class or object, or a function)")


def serialize(metric):
    """``{'class_name': ..., 'config': {...}}`` for a Metric; a name for a string or named function."""
    if metric is None or isinstance(metric, str):
        return metric
    if isinstance(metric, Metric):
        return {"class_name": type(metric).__name__, "config": metric.get_config()}
    name = getattr(metric, "__name__", None)
    if callable(metric) and name and name != "<lambda>":
        return name
    raise ValueError(f"metrics.serialize: cannot serialize {metric!r}")


def deserialize(config, custom_objects: dict | None = None):
    """The Metric described by a name or a ``{'class_name', 'config'}`` dict."""
    if isinstance(config, str):
        return get(config, custom_objects=custom_objects)
    if isinstance(config, dict):
        if "class_name" not in config:
            raise ValueError(f"metrics.deserialize: a config dict needs a 'class_name' key, got {config!r}")
        obj = METRICS.lookup(config["class_name"], argument="metrics", custom_objects=custom_objects)
        inner = config.get("config") or {}
        if isinstance(obj, type) and issubclass(obj, Metric):
            return obj.from_config(inner)
        return _as_metric(obj, name=inner.get("name"))
    raise ValueError(f"metrics.deserialize: expected a name or a {{'class_name', 'config'}} dict, got {config!r}")


def get(identifier, loss=None, output_shape=None, custom_objects: dict | None = None):
    """Resolve a metric for ``compile``.

    ``'accuracy'`` / ``'acc'``: binary accuracy when ``loss`` is binary
    cross-entropy (any spelling or object) or the output's last dimension is 1;
    sparse categorical accuracy for sparse categorical cross-entropy; categorical
    accuracy otherwise. ``'crossentropy'`` / ``'ce'`` alike. A string's metric is
    named by that string. Metric objects are returned as they are; Metric classes
    are instantiated; functions ``fn(y_true, y_pred)`` are wrapped in a
    :class:`MeanMetricWrapper`. Unknown names raise a ValueError.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            return _resolve_by_loss("accuracy", loss, output_shape, identifier)
        if key in ("crossentropy", "ce"):
            return _resolve_by_loss("crossentropy", loss, output_shape, identifier)
        obj = METRICS.lookup(identifier, argument="metrics", custom_objects=custom_objects)
        metric = _as_metric(obj, name=identifier if isinstance(obj, type) or not isinstance(obj, Metric) else None)
        return metric
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects=custom_objects)
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return _as_metric(identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(
        f"Could not interpret metric identifier {identifier!r} (type {type(identifier).__name__}): expected a "
        "name such as 'accuracy', a Metric object, a function fn(y_true, y_pred) or a config dict")


__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "Precision", "Recall",
    "AUC", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
    "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence", "Poisson",
    "Hinge", "SquaredHinge", "CategoricalHinge", "LogCoshError", "CosineSimilarity",
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "mse", "mae", "mape", "msle", "MSE", "MAE",
    "MAPE", "MSLE", "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "kl_divergence", "kld", "KLD", "poisson", "hinge", "squared_hinge", "categorical_hinge", "log_cosh", "logcosh",
    "cosine_similarity", "get", "serialize", "deserialize", "METRICS",
]
