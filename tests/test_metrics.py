"""shenjing.metrics: streaming equals one-shot, Keras's accuracy resolution and names,
Precision / Recall / AUC against hand-computed values, top-k, thresholds, reset_state."""

import math

import numpy as np
import pytest

from shenjing import losses, metrics
from shenjing.autodiff import Tensor


def batches(n, sizes):
    """Index slices of uneven batch sizes covering range(n)."""
    start = 0
    for size in sizes:
        yield slice(start, min(start + size, n))
        start += size


# ------------------------------------------------------------------ streaming


@pytest.mark.parametrize("make,data", [
    (lambda: metrics.BinaryAccuracy(), "binary"),
    (lambda: metrics.CategoricalAccuracy(), "categorical"),
    (lambda: metrics.SparseCategoricalAccuracy(), "sparse"),
    (lambda: metrics.TopKCategoricalAccuracy(k=2), "categorical"),
    (lambda: metrics.SparseTopKCategoricalAccuracy(k=2), "sparse"),
    (lambda: metrics.MeanSquaredError(), "regression"),
    (lambda: metrics.MeanAbsoluteError(), "regression"),
    (lambda: metrics.Precision(), "binary"),
    (lambda: metrics.Recall(thresholds=[0.3, 0.5, 0.7]), "binary"),
    (lambda: metrics.AUC(), "binary"),
    (lambda: metrics.AUC(curve="PR"), "binary"),
    (lambda: metrics.get("crossentropy", loss="sparse_categorical_crossentropy"), "sparse"),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_equals_one_shot(make, data, weighted, rng):
    n = 37
    if data == "binary":
        y, p = rng.integers(0, 2, (n, 1)), rng.uniform(0, 1, (n, 1)).astype("float32")
    elif data == "categorical":
        p = rng.uniform(0, 1, (n, 5)).astype("float32")
        y = np.eye(5, dtype="float32")[rng.integers(0, 5, n)]
    elif data == "sparse":
        p = rng.uniform(0.1, 1, (n, 5)).astype("float32")
        p /= p.sum(-1, keepdims=True)
        y = rng.integers(0, 5, n)
    else:
        y, p = rng.normal(size=(n, 2)), rng.normal(size=(n, 2)).astype("float32")
    w = rng.uniform(0, 2, n) if weighted else None
    one = make()
    one.update_state(y, p, sample_weight=w)
    streamed = make()
    for s in batches(n, [10, 3, 16, 8]):
        streamed.update_state(y[s], p[s], sample_weight=None if w is None else w[s])
    np.testing.assert_allclose(streamed.result(), one.result(), rtol=1e-9, atol=1e-12)
    streamed.reset_state()
    streamed.update_state(y[:5], p[:5], sample_weight=None if w is None else w[:5])
    fresh = make()
    fresh.update_state(y[:5], p[:5], sample_weight=None if w is None else w[:5])
    np.testing.assert_allclose(streamed.result(), fresh.result())


def test_mean_weighted_and_per_sample():
    m = metrics.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state([[4.0, 6.0]])  # one sample with two values: counts once, as their mean 5
    assert m.result() == pytest.approx((1 + 2 + 3 + 5) / 4)
    m.reset_state()
    assert m.result() == 0.0
    m.update_state([1.0, 3.0], sample_weight=[3.0, 1.0])
    assert m.result() == pytest.approx(1.5)
    # the training loop's form: a batch-mean loss weighted by the batch size
    m.reset_state()
    m.update_state(2.0, sample_weight=10)
    m.update_state(5.0, sample_weight=30)
    assert m.result() == pytest.approx((20 + 150) / 40)
    assert m.total == pytest.approx(170.0) and isinstance(m.total, float)


def test_mean_metric_wrapper_on_rank_one_inputs():
    """(n,) targets and predictions count one value per sample, so uneven batches stream exactly."""
    y, p = np.arange(10.0), np.arange(10.0)[::-1].copy()
    one = metrics.MeanSquaredError()
    one.update_state(y, p)
    streamed = metrics.MeanSquaredError()
    streamed.update_state(y[:7], p[:7])
    streamed.update_state(y[7:], p[7:])
    assert streamed.result() == pytest.approx(np.mean((y - p) ** 2))
    assert one.result() == pytest.approx(streamed.result())


def test_metric_call_and_tensor_inputs():
    m = metrics.BinaryAccuracy()
    assert m(np.array([[1], [0]]), Tensor(np.array([[0.9], [0.8]], dtype="float32"))) == pytest.approx(0.5)
    assert isinstance(m.result(), float)


# ------------------------------------------------------------------ accuracies


def test_accuracy_functions():
    y = np.array([[1.0], [0.0], [1.0], [0.0]])
    p = np.array([[0.7], [0.4], [0.2], [0.6]])
    np.testing.assert_array_equal(metrics.binary_accuracy(y, p).ravel(), [1, 1, 0, 0])
    np.testing.assert_array_equal(metrics.binary_accuracy(y, p, threshold=0.1).ravel(), [1, 0, 1, 0])
    yc = np.eye(3)[[0, 1, 2]]
    pc = np.array([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    np.testing.assert_array_equal(metrics.categorical_accuracy(yc, pc), [1, 0, 1])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(np.array([[0], [1], [2]]), pc), [1, 0, 1])
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(np.array([0.0, 1.0, 2.0]), pc), [1, 0, 1])
    acc = metrics.Accuracy()
    acc.update_state([1, 2, 3, 4], [1, 2, 0, 4])
    assert acc.result() == pytest.approx(0.75)


def test_binary_accuracy_threshold_class():
    m = metrics.BinaryAccuracy(threshold=0.8)
    m.update_state([[1], [1], [0]], [[0.9], [0.7], [0.1]])
    assert m.result() == pytest.approx(2 / 3)
    assert m.get_config() == {"name": "binary_accuracy", "dtype": None, "threshold": 0.8}


def test_top_k():
    y = np.eye(4)[[0, 1, 2, 3]]
    p = np.array([[0.1, 0.2, 0.3, 0.4],   # class 0 is last  -> out of the top 2
                  [0.1, 0.4, 0.3, 0.2],   # class 1 is first -> in
                  [0.4, 0.1, 0.3, 0.2],   # class 2 is second -> in
                  [0.3, 0.3, 0.2, 0.3]])  # class 3 ties for first -> in
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(y, p, k=2), [0, 1, 1, 1])
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(y, p, k=1), [0, 1, 0, 1])
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy([0, 1, 2, 3], p, k=2), [0, 1, 1, 1])
    np.testing.assert_array_equal(metrics.sparse_top_k_categorical_accuracy([0, 1, 2, 3], p, k=10), [1, 1, 1, 1])
    m = metrics.SparseTopKCategoricalAccuracy(k=3)
    m.update_state(np.array([[0], [1]]), p[:2])  # class 0 is 4th of row 0; class 1 is 1st of row 1
    assert m.result() == pytest.approx(0.5)
    assert metrics.TopKCategoricalAccuracy().name == "top_k_categorical_accuracy"
    assert metrics.TopKCategoricalAccuracy().fn_kwargs == {"k": 5}


# ------------------------------------------------------------ resolution rules


@pytest.mark.parametrize("loss,shape,expected", [
    ("binary_crossentropy", (None, 1), metrics.BinaryAccuracy),
    ("binary_crossentropy", (None, 4), metrics.BinaryAccuracy),  # multi-label
    (losses.BinaryCrossentropy(), (None, 3), metrics.BinaryAccuracy),
    (losses.binary_crossentropy, None, metrics.BinaryAccuracy),
    ("BinaryCrossentropy", None, metrics.BinaryAccuracy),
    ("mse", (None, 1), metrics.BinaryAccuracy),
    ("sparse_categorical_crossentropy", (None, 10), metrics.SparseCategoricalAccuracy),
    (losses.SparseCategoricalCrossentropy(from_logits=True), (None, 10), metrics.SparseCategoricalAccuracy),
    ("categorical_crossentropy", (None, 10), metrics.CategoricalAccuracy),
    (None, (None, 10), metrics.CategoricalAccuracy),
    ("hinge", (None, 3), metrics.CategoricalAccuracy),
])
@pytest.mark.parametrize("spelling", ["accuracy", "acc"])
def test_accuracy_resolution(loss, shape, expected, spelling):
    m = metrics.get(spelling, loss=loss, output_shape=shape)
    assert type(m) is expected
    assert m.name == spelling


def test_crossentropy_resolution():
    m = metrics.get("crossentropy", loss="binary_crossentropy", output_shape=(None, 1))
    assert type(m) is metrics.BinaryCrossentropy and m.name == "crossentropy"
    m = metrics.get("ce", loss=losses.SparseCategoricalCrossentropy(from_logits=True), output_shape=(None, 3))
    assert type(m) is metrics.SparseCategoricalCrossentropy and m.name == "ce"
    assert m.fn_kwargs["from_logits"] is True
    z = np.array([[2.0, 0.0, -1.0]], dtype="float32")
    m.update_state([0], z)
    expected = -(2.0 - math.log(math.exp(2) + 1 + math.exp(-1)))
    assert m.result() == pytest.approx(expected, rel=1e-6)
    m = metrics.get("crossentropy", loss="categorical_crossentropy", output_shape=(None, 3))
    assert type(m) is metrics.CategoricalCrossentropy


def test_binary_accuracy_from_logits_loss_thresholds_at_zero():
    m = metrics.get("accuracy", loss=losses.BinaryCrossentropy(from_logits=True), output_shape=(None, 1))
    m.update_state([[1], [0], [1]], [[0.3], [-0.2], [-1.0]])  # logits: 0.3 > 0 is positive
    assert m.result() == pytest.approx(2 / 3)


@pytest.mark.parametrize("name,cls", [
    ("mse", metrics.MeanSquaredError), ("MSE", metrics.MeanSquaredError), ("mae", metrics.MeanAbsoluteError),
    ("mean_squared_error", metrics.MeanSquaredError), ("mape", metrics.MeanAbsolutePercentageError),
    ("binary_accuracy", metrics.BinaryAccuracy), ("categorical_accuracy", metrics.CategoricalAccuracy),
    ("sparse_categorical_accuracy", metrics.SparseCategoricalAccuracy),
    ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy), ("precision", metrics.Precision),
    ("recall", metrics.Recall), ("auc", metrics.AUC), ("AUC", metrics.AUC), ("Precision", metrics.Precision),
])
def test_names_are_the_strings_written(name, cls):
    m = metrics.get(name)
    assert type(m) is cls
    assert m.name == name


def test_get_objects_callables_and_errors():
    obj = metrics.AUC(name="my_auc")
    assert metrics.get(obj) is obj
    assert type(metrics.get(metrics.Recall)) is metrics.Recall

    def double_error(y_true, y_pred):
        return 2 * np.abs(np.asarray(y_true) - np.asarray(y_pred)).mean(-1)

    m = metrics.get(double_error)
    assert isinstance(m, metrics.MeanMetricWrapper) and m.name == "double_error"
    m.update_state(np.ones((4, 1)), np.zeros((4, 1)))
    assert m.result() == pytest.approx(2.0)
    assert metrics.get(None) is None
    with pytest.raises(ValueError, match=r"Unknown metric 'acuracy'.*Did you mean"):
        metrics.get("acuracy")
    with pytest.raises(ValueError, match="Could not interpret metric identifier"):
        metrics.get(3.5)


def test_serialize_roundtrip():
    for m in (metrics.AUC(num_thresholds=50, curve="PR", name="pr"), metrics.Precision(thresholds=[0.2, 0.7]),
              metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=3, name="top3"),
              metrics.MeanMetricWrapper(metrics.mae, name="m")):
        again = metrics.deserialize(metrics.serialize(m))
        assert type(again) is type(m)
        assert again.get_config() == m.get_config()


# -------------------------------------------------------- precision and recall


Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
P = np.array([0.9, 0.8, 0.6, 0.4, 0.3, 0.55, 0.2, 0.1])


def test_precision_recall_hand_computed():
    # threshold 0.5: predicted positive = {0.9, 0.8, 0.6, 0.55} -> tp 2 (0.9, 0.6), fp 2 (0.8, 0.55), fn 2
    p, r = metrics.Precision(), metrics.Recall()
    p.update_state(Y, P)
    r.update_state(Y, P)
    assert p.result() == pytest.approx(0.5)
    assert r.result() == pytest.approx(0.5)
    # weights: tp 1*1 + 3*1 = ... per element
    w = np.array([2, 1, 1, 1, 1, 3, 1, 1], dtype=float)
    p, r = metrics.Precision(), metrics.Recall()
    p.update_state(Y, P, sample_weight=w)
    r.update_state(Y, P, sample_weight=w)
    assert p.result() == pytest.approx(3 / (3 + 4))  # tp = 2 + 1, fp = 1 + 3
    assert r.result() == pytest.approx(3 / (3 + 2))  # fn = 0.4 (w 1) + 0.2 (w 1)


def test_precision_thresholds_list_and_strictness():
    p = metrics.Precision(thresholds=[0.0, 0.55, 0.9])
    p.update_state(Y, P)
    # > 0.0: all 8 -> 4/8; > 0.55: {0.9, 0.8, 0.6} -> 2/3; > 0.9: none -> 0 (no division by zero)
    assert p.result() == pytest.approx([0.5, 2 / 3, 0.0])
    r = metrics.Recall(thresholds=[0.0, 0.55, 0.9])
    r.update_state(Y, P)
    assert r.result() == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match=r"thresholds must lie in \[0, 1\]"):
        metrics.Precision(thresholds=1.5)


def test_precision_top_k_and_class_id():
    y = np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 1, 1]])
    p = np.array([[0.1, 0.9, 0.3, 0.8], [0.7, 0.6, 0.2, 0.1], [0.2, 0.9, 0.4, 0.3]])
    pr = metrics.Precision(top_k=2)  # top 2 of each row are predicted positive
    pr.update_state(y, p)
    # row 0: {1, 3} -> tp 1; row 1: {0, 1} -> tp 1; row 2: {1, 2} -> tp 1   => 3 / 6
    assert pr.result() == pytest.approx(0.5)
    rc = metrics.Recall(top_k=1)
    rc.update_state(y, p)
    # top 1: row0 col1 (pos), row1 col0 (pos), row2 col1 (neg); positives 5 -> recall 2/5
    assert rc.result() == pytest.approx(0.4)
    pc = metrics.Precision(class_id=2)
    pc.update_state(y, p)  # column 2: preds [0.3, 0.2, 0.4] > 0.5 -> none predicted
    assert pc.result() == 0.0
    rc = metrics.Recall(class_id=1, thresholds=0.5)
    rc.update_state(y, p)  # column 1: labels [1, 0, 0], preds [0.9, 0.6, 0.9] -> recall 1
    assert rc.result() == pytest.approx(1.0)


# ------------------------------------------------------------------------- AUC


def test_auc_small_examples():
    m = metrics.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(1.0)
    # PR, Davis & Goadrich interpolation, by hand: tp = [2, 1, 0], fp = [2, 0, 0], p = tp + fp = [4, 1, 0]
    # interval 1: slope dtp/dp = 1/3, intercept 1 - 1/3, area = slope (dtp + intercept log(4/1)) / (tp + fn)
    # interval 2: slope 1, intercept 0, area = 1 * 1 / 2
    pr = metrics.AUC(num_thresholds=3, curve="PR")
    pr.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert pr.result() == pytest.approx((1 / 3) * (1 + (2 / 3) * math.log(4)) / 2 + 0.5)
    # minoring / majoring: left and right Riemann sums of the same ROC points (tpr [1, .5, 0], fpr [1, 0, 0])
    lo = metrics.AUC(num_thresholds=3, summation_method="minoring")
    hi = metrics.AUC(num_thresholds=3, summation_method="majoring")
    for x in (lo, hi):
        x.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert lo.result() == pytest.approx(0.5)
    assert hi.result() == pytest.approx(1.0)


def trapezoid_roc_auc(y, p, thresholds, w=None):
    """An independent ROC-AUC: explicit rates at each threshold, then numpy's trapezoid rule."""
    w = np.ones_like(p) if w is None else w
    pos = y == 1
    above = p[None, :] > thresholds[:, None]
    tpr = (above & pos).astype(float) @ w / w[pos].sum()
    fpr = (above & ~pos).astype(float) @ w / w[~pos].sum()
    return -np.trapezoid(tpr, fpr)  # fpr decreases with the threshold


def exact_roc_auc(y, p):
    """Probability that a random positive outranks a random negative (ties count half)."""
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size


@pytest.mark.parametrize("weighted", [False, True])
def test_auc_vs_trapezoid_on_a_fine_grid(rng, weighted):
    n = 400
    y = rng.integers(0, 2, n)
    p = np.clip(rng.normal(0.4 + 0.25 * y, 0.2), 0, 1)
    w = rng.uniform(0.2, 2, n) if weighted else None
    m = metrics.AUC(num_thresholds=1001)
    for s in batches(n, [100, 150, 150]):
        m.update_state(y[s], p[s], sample_weight=None if w is None else w[s])
    eps = 1e-7
    grid = np.array([-eps] + [(i + 1) / 1000 for i in range(999)] + [1 + eps])
    assert m.result() == pytest.approx(trapezoid_roc_auc(y, p, grid, w), abs=1e-12)
    if not weighted:
        assert m.result() == pytest.approx(exact_roc_auc(y, p), abs=2e-3)


def test_auc_pr_bounds_and_perfect_classifier(rng):
    y = rng.integers(0, 2, 300)
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    values = {}
    for method in ("minoring", "interpolation", "majoring"):
        m = metrics.AUC(curve="PR", summation_method=method, num_thresholds=500)
        m.update_state(y, p)
        values[method] = m.result()
    assert values["minoring"] <= values["interpolation"] <= values["majoring"]
    for curve in ("ROC", "PR"):
        m = metrics.AUC(curve=curve)
        m.update_state([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
        assert m.result() == pytest.approx(1.0)


def test_auc_from_logits_and_thresholds_argument():
    z = np.array([-2.0, 0.5, -0.3, 3.0])
    a = metrics.AUC(from_logits=True, num_thresholds=3)
    a.update_state([0, 0, 1, 1], z)
    b = metrics.AUC(num_thresholds=3)
    b.update_state([0, 0, 1, 1], 1 / (1 + np.exp(-z)))
    assert a.result() == pytest.approx(b.result())
    c = metrics.AUC(thresholds=[0.5])
    assert c.num_thresholds == 3
    c.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert c.result() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="curve"):
        metrics.AUC(curve="XYZ")
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)


# ------------------------------------------------------------- loss-like metrics


def test_regression_metric_values(rng):
    y, p = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
    checks = {
        "mse": np.mean((y - p) ** 2), "mae": np.mean(np.abs(y - p)),
        "cosine_similarity": np.mean(np.sum(y * p, -1) / np.linalg.norm(y, axis=-1) / np.linalg.norm(p, axis=-1)),
    }
    for name, expected in checks.items():
        m = metrics.get(name)
        m.update_state(y, p)
        assert m.result() == pytest.approx(expected, rel=1e-6), name
    np.testing.assert_allclose(metrics.mse(y, p), np.mean((y - p) ** 2, -1), rtol=1e-6)
    np.testing.assert_allclose(metrics.mae(y, p), np.mean(np.abs(y - p), -1), rtol=1e-6)


def test_metrics_build_no_graph():
    p = Tensor(np.array([[0.2, 0.8]], dtype="float32"), requires_grad=True)
    values = metrics.categorical_crossentropy(np.array([[0.0, 1.0]]), p)
    assert not isinstance(values, Tensor)
    assert values.dtype == np.float32
