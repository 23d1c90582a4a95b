"""shenjing.losses: values vs NumPy formulas, gradients vs central differences, torch parity,
the fused logits path, sample weights and reductions, target validation, get/serialize."""

import math

import numpy as np
import pytest

from shenjing import backend as B
from shenjing import losses
from shenjing.autodiff import Tensor, check_gradients, nn

EPS = 1e-7

# ------------------------------------------------------------------ NumPy references


def np_bce(y, p, ls=0.0):
    y = y * (1 - ls) + 0.5 * ls
    p = np.clip(p, EPS, 1 - EPS)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p), axis=-1)


def np_cce(y, p, ls=0.0):
    y = y * (1 - ls) + ls / y.shape[-1]
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(y * np.log(p), axis=-1)


def np_scce(labels, p):
    return np_cce(np.eye(p.shape[-1])[labels], p)


def np_hinge_labels(y):
    return 2 * y - 1 if np.all((y == 0) | (y == 1)) else y


REFERENCES = {
    "mean_squared_error": lambda y, p: np.mean((y - p) ** 2, -1),
    "mean_absolute_error": lambda y, p: np.mean(np.abs(y - p), -1),
    "mean_absolute_percentage_error": lambda y, p: 100 * np.mean(np.abs(y - p) / np.maximum(np.abs(y), EPS), -1),
    "mean_squared_logarithmic_error": lambda y, p: np.mean(
        (np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(y, EPS) + 1)) ** 2, -1),
    "huber": lambda y, p: np.mean(np.where(np.abs(p - y) <= 1.0, 0.5 * (p - y) ** 2, np.abs(p - y) - 0.5), -1),
    "log_cosh": lambda y, p: np.mean(np.log(np.cosh(p - y)), -1),
    "hinge": lambda y, p: np.mean(np.maximum(1 - np_hinge_labels(y) * p, 0), -1),
    "squared_hinge": lambda y, p: np.mean(np.maximum(1 - np_hinge_labels(y) * p, 0) ** 2, -1),
    "categorical_hinge": lambda y, p: np.maximum(
        np.max((1 - y) * p, -1) - np.sum(y * p, -1) + 1, 0),
    "kl_divergence": lambda y, p: np.sum(
        np.clip(y, EPS, 1) * np.log(np.clip(y, EPS, 1) / np.clip(p, EPS, 1)), -1),
    "poisson": lambda y, p: np.mean(p - y * np.log(p + EPS), -1),
    "cosine_similarity": lambda y, p: -np.sum(
        y / np.linalg.norm(y, axis=-1, keepdims=True) * p / np.linalg.norm(p, axis=-1, keepdims=True), -1),
    "binary_crossentropy": np_bce,
    "categorical_crossentropy": np_cce,
}


def make_inputs(name, rng, shape=(5, 4)):
    """Moderate float64 inputs away from clipping and kinks for each loss."""
    if name in ("binary_crossentropy",):
        return rng.uniform(0, 1, shape).round(1), rng.uniform(0.1, 0.9, shape)
    if name in ("categorical_crossentropy", "kl_divergence", "categorical_hinge"):
        p = rng.uniform(0.2, 1.0, shape)
        p /= p.sum(-1, keepdims=True)
        y = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
        if name == "kl_divergence":
            y = rng.uniform(0.2, 1.0, shape)
            y /= y.sum(-1, keepdims=True)
        return y, p
    if name in ("hinge", "squared_hinge"):
        y = rng.choice([-1.0, 1.0], shape)
        # keep |1 - y p| >= 0.1: away from the kink of max(., 0)
        m = rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
        return y, (1 - m) / y
    if name in ("mean_absolute_percentage_error", "mean_absolute_error"):
        y = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
        return y, y + rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)
    if name == "huber":
        y = rng.normal(size=shape)
        e = rng.uniform(0.1, 0.8, shape) * rng.choice([-1.0, 1.0], shape)
        e[0] *= 3.0  # some errors beyond delta=1 (|e| in [0.3, 2.4], none within 0.1 of 1 after the check below)
        e = np.where(np.abs(np.abs(e) - 1) < 0.1, e * 1.3, e)
        return y, y + e
    if name in ("poisson", "mean_squared_logarithmic_error"):
        return rng.uniform(0.1, 3.0, shape), rng.uniform(0.2, 3.0, shape)
    return rng.normal(size=shape), rng.normal(size=shape)


ALL_NAMES = sorted(REFERENCES)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_values_match_numpy(name, rng, float64):
    y, p = make_inputs(name, rng)
    fn = losses.get(name).fn
    out = fn(y, Tensor(p))
    assert out.shape == (5,)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, REFERENCES[name](y, p), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_gradients_match_central_differences(name, rng, float64):
    y, p = make_inputs(name, rng, shape=(3, 4))
    fn = losses.get(name).fn
    assert check_gradients(lambda t: fn(y, t), p) < 1e-6


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error", "huber", "log_cosh",
                                  "cosine_similarity", "kl_divergence", "poisson", "binary_crossentropy"])
def test_gradients_wrt_targets(name, rng, float64):
    y, p = make_inputs(name, rng, shape=(3, 4))
    if name == "binary_crossentropy":
        y = rng.uniform(0.1, 0.9, y.shape)
    fn = losses.get(name).fn
    assert check_gradients(lambda t: fn(t, p), y) < 1e-6


def test_sparse_values_and_gradients(rng, float64):
    p = rng.uniform(0.2, 1.0, (6, 4))
    p /= p.sum(-1, keepdims=True)
    labels = rng.integers(0, 4, 6)
    out = losses.sparse_categorical_crossentropy(labels, Tensor(p))
    np.testing.assert_allclose(out.data, np_scce(labels, p), rtol=1e-12)
    # (n, 1) labels and float labels are accepted
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels[:, None].astype(float), Tensor(p)).data,
                               out.data)
    assert check_gradients(lambda t: losses.sparse_categorical_crossentropy(labels[:3], t), p[:3]) < 1e-6
    z = rng.normal(size=(3, 4))
    assert check_gradients(lambda t: losses.sparse_categorical_crossentropy(labels[:3], nn.softmax(t)), z) < 1e-6
    assert check_gradients(
        lambda t: losses.sparse_categorical_crossentropy(labels[:3], t, from_logits=True), z) < 1e-6


def test_label_smoothing(rng, float64):
    y, p = make_inputs("categorical_crossentropy", rng)
    out = losses.categorical_crossentropy(y, Tensor(p), label_smoothing=0.2)
    np.testing.assert_allclose(out.data, np_cce(y, p, 0.2), rtol=1e-12)
    yb, pb = make_inputs("binary_crossentropy", rng)
    out = losses.binary_crossentropy(yb, Tensor(pb), label_smoothing=0.1)
    np.testing.assert_allclose(out.data, np_bce(yb, pb, 0.1), rtol=1e-12)


def test_categorical_crossentropy_renormalises(rng, float64):
    y, p = make_inputs("categorical_crossentropy", rng)
    out = losses.categorical_crossentropy(y, Tensor(p * 3.0))
    np.testing.assert_allclose(out.data, np_cce(y, p), rtol=1e-12)


def test_hinge_keeps_signed_labels(float64):
    y = np.array([[-1.0, 1.0, 1.0]])
    p = np.array([[0.3, 0.2, -0.5]])
    np.testing.assert_allclose(losses.hinge(y, Tensor(p)).data, [np.mean([1.3, 0.8, 1.5])])
    y01 = (y + 1) / 2  # the same labels as 0/1 give the same loss
    np.testing.assert_allclose(losses.hinge(y01, Tensor(p)).data, losses.hinge(y, Tensor(p)).data)


def test_huber_delta(rng, float64):
    y = np.array([[0.0, 0.0, 0.0]])
    p = np.array([[0.5, 2.0, -3.0]])
    expected = np.mean([0.125, 2 * 2 - 2, 2 * 3 - 2])  # delta = 2: 0.5e^2 inside, 2|e| - 0.5*4 outside
    np.testing.assert_allclose(losses.huber(y, Tensor(p), delta=2.0).data, [expected])
    np.testing.assert_allclose(losses.Huber(delta=2.0)(y, Tensor(p)).data, expected)


def test_log_cosh_is_stable_for_large_errors(float64):
    out = losses.log_cosh(np.zeros((1, 2)), Tensor(np.array([[800.0, -900.0]])))
    np.testing.assert_allclose(out.data, [np.mean([800 - math.log(2), 900 - math.log(2)])])


# --------------------------------------------------------------------------- torch


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_binary_crossentropy(torch, rng, float64):
    F = torch.nn.functional
    y, p = make_inputs("binary_crossentropy", rng)
    t_p = torch.tensor(p, requires_grad=True)
    ref = F.binary_cross_entropy(t_p, torch.tensor(y), reduction="mean")
    ref.backward()
    ours_p = Tensor(p, requires_grad=True)
    ours = losses.BinaryCrossentropy()(y, ours_p)
    ours.backward()
    np.testing.assert_allclose(ours.data, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(ours_p.grad, t_p.grad.numpy(), rtol=1e-10)
    z = rng.normal(size=y.shape) * 3
    ref = F.binary_cross_entropy_with_logits(torch.tensor(z), torch.tensor(y), reduction="none").numpy().mean(-1)
    np.testing.assert_allclose(losses.binary_crossentropy(y, Tensor(z), from_logits=True).data, ref, rtol=1e-12)
    np.testing.assert_allclose(losses.binary_crossentropy(y, nn.sigmoid(Tensor(z))).data, ref, rtol=1e-12)


def test_torch_cross_entropy(torch, rng, float64):
    F = torch.nn.functional
    z = rng.normal(size=(6, 5)) * 2
    labels = rng.integers(0, 5, 6)
    t_z = torch.tensor(z, requires_grad=True)
    ref = F.cross_entropy(t_z, torch.tensor(labels))
    ref.backward()
    ours_z = Tensor(z, requires_grad=True)
    ours = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, ours_z)
    ours.backward()
    np.testing.assert_allclose(ours.data, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(ours_z.grad, t_z.grad.numpy(), rtol=1e-10, atol=1e-15)
    # probability targets with label smoothing: torch smooths as y(1 - s) + s/K, like Keras
    onehot = np.eye(5)[labels]
    ref = F.cross_entropy(torch.tensor(z), torch.tensor(labels), label_smoothing=0.1, reduction="none").numpy()
    ours = losses.categorical_crossentropy(onehot, Tensor(z), from_logits=True, label_smoothing=0.1)
    np.testing.assert_allclose(ours.data, ref, rtol=1e-12)
    ours = losses.categorical_crossentropy(onehot, nn.softmax(Tensor(z)), label_smoothing=0.1)
    np.testing.assert_allclose(ours.data, ref, rtol=1e-12)


def test_torch_nll(torch, rng, float64):
    p = rng.uniform(0.2, 1.0, (6, 5))
    p /= p.sum(-1, keepdims=True)
    labels = rng.integers(0, 5, 6)
    ref = torch.nn.functional.nll_loss(torch.log(torch.tensor(p)), torch.tensor(labels), reduction="none").numpy()
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(labels, Tensor(p)).data, ref, rtol=1e-12)


@pytest.mark.parametrize("name,torch_fn", [
    ("mean_squared_error", lambda F, p, y: F.mse_loss(p, y)),
    ("mean_absolute_error", lambda F, p, y: F.l1_loss(p, y)),
    ("huber", lambda F, p, y: F.huber_loss(p, y, delta=1.0)),
    ("huber", lambda F, p, y: F.smooth_l1_loss(p, y, beta=1.0)),
    ("poisson", lambda F, p, y: F.poisson_nll_loss(p, y, log_input=False, eps=1e-7)),
    ("kl_divergence", lambda F, p, y: F.kl_div(p.log(), y, reduction="sum") / p.shape[0]),
    ("cosine_similarity", lambda F, p, y: -F.cosine_similarity(p, y, dim=-1).mean()),
    ("hinge", lambda F, p, y: (1 - y * p).clamp(min=0).mean()),
    ("squared_hinge", lambda F, p, y: ((1 - y * p).clamp(min=0) ** 2).mean()),
])
def test_torch_elementwise_losses(torch, rng, float64, name, torch_fn):
    y, p = make_inputs(name, rng, shape=(6, 3))
    t_p = torch.tensor(p, requires_grad=True)
    ref = torch_fn(torch.nn.functional, t_p, torch.tensor(y))
    ref.backward()
    ours_p = Tensor(p, requires_grad=True)
    ours = losses.get(name)(y, ours_p)
    ours.backward()
    np.testing.assert_allclose(ours.data, ref.item(), rtol=1e-10)
    np.testing.assert_allclose(ours_p.grad, t_p.grad.numpy(), rtol=1e-8, atol=1e-14)


# ------------------------------------------------------------------- fused path


def _moderate_logits(rng, shape):
    return rng.normal(size=shape)


def test_fused_categorical_equals_clipped(rng, float64):
    z = _moderate_logits(rng, (6, 5))
    y = np.eye(5)[rng.integers(0, 5, 6)]
    fused = losses.categorical_crossentropy(y, nn.softmax(Tensor(z)))
    clipped = losses.categorical_crossentropy(y, Tensor(nn.softmax(Tensor(z)).data))  # no logits tag
    np.testing.assert_allclose(fused.data, clipped.data, rtol=1e-6)
    labels = y.argmax(-1)
    fused = losses.sparse_categorical_crossentropy(labels, nn.softmax(Tensor(z)))
    clipped = losses.sparse_categorical_crossentropy(labels, Tensor(nn.softmax(Tensor(z)).data))
    np.testing.assert_allclose(fused.data, clipped.data, rtol=1e-6)


def test_fused_binary_equals_clipped(rng, float64):
    z = _moderate_logits(rng, (6, 3))
    y = rng.integers(0, 2, (6, 3)).astype(float)
    fused = losses.binary_crossentropy(y, nn.sigmoid(Tensor(z)))
    clipped = losses.binary_crossentropy(y, Tensor(nn.sigmoid(Tensor(z)).data))
    np.testing.assert_allclose(fused.data, clipped.data, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_path_survives_large_logits(dtype):
    z = np.array([[200.0, -200.0, 0.0], [-150.0, 150.0, 10.0]], dtype=dtype)
    y = np.eye(3, dtype=dtype)[[1, 0]]  # the true class has a logit far below the best one
    zt = Tensor(z, requires_grad=True)
    out = losses.categorical_crossentropy(y, nn.softmax(zt))
    exact = np.array([400.0, 300.0])
    np.testing.assert_allclose(out.data, exact, rtol=1e-6)  # the clipped path would give -log(1e-7) ~ 16.1
    clipped = losses.categorical_crossentropy(y, Tensor(nn.softmax(Tensor(z)).data))
    assert np.all(clipped.data < 20)
    out.sum().backward()
    assert np.all(np.isfinite(zt.grad)) and zt.grad.dtype == np.dtype(dtype)
    np.testing.assert_allclose(zt.grad, nn.softmax(Tensor(z)).data - y, atol=1e-6)

    sparse = losses.sparse_categorical_crossentropy(np.array([1, 0]), nn.softmax(Tensor(z)))
    np.testing.assert_allclose(sparse.data, exact, rtol=1e-6)

    zb = Tensor(np.array([[300.0, -300.0]], dtype=dtype), requires_grad=True)
    yb = np.array([[0.0, 1.0]], dtype=dtype)
    bce = losses.binary_crossentropy(yb, nn.sigmoid(zb))
    np.testing.assert_allclose(bce.data, [300.0], rtol=1e-6)
    bce.sum().backward()
    assert np.all(np.isfinite(zb.grad))


def test_fused_path_gradients(rng, float64):
    z = _moderate_logits(rng, (3, 4))
    y = np.eye(4)[rng.integers(0, 4, 3)]
    assert check_gradients(lambda t: losses.categorical_crossentropy(y, nn.softmax(t)), z) < 1e-6
    assert check_gradients(lambda t: losses.categorical_crossentropy(y, t, from_logits=True), z) < 1e-6
    yb = rng.integers(0, 2, (3, 4)).astype(float)
    assert check_gradients(lambda t: losses.binary_crossentropy(yb, nn.sigmoid(t)), z) < 1e-6
    assert check_gradients(lambda t: losses.binary_crossentropy(yb, t, from_logits=True), z) < 1e-6


def test_sigmoid_output_not_fused_for_categorical(rng, float64):
    """A sigmoid output given to categorical CE takes the probability path (the tag must match)."""
    z = _moderate_logits(rng, (4, 3))
    y = np.eye(3)[[0, 1, 2, 0]]
    p = nn.sigmoid(Tensor(z))
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p).data, np_cce(y, p.data), rtol=1e-12)


# --------------------------------------------------------------- dtype / shapes


def test_float32_is_kept(rng):
    y = rng.normal(size=(4, 3))  # float64 targets do not upcast a float32 prediction
    p = Tensor(rng.normal(size=(4, 3)).astype("float32"), requires_grad=True)
    for name in ALL_NAMES + ["sparse_categorical_crossentropy"]:
        p.grad = None
        target = rng.integers(0, 3, 4) if name == "sparse_categorical_crossentropy" else y
        categorical = name in ("categorical_crossentropy", "sparse_categorical_crossentropy", "kl_divergence")
        pred = nn.softmax(p) if categorical else nn.sigmoid(p) if name != "hinge" else p
        out = losses.get(name)(target, pred)
        assert out.dtype == np.float32, name
        out.backward()
        assert p.grad.dtype == np.float32, name


def test_rank_one_targets_against_column_outputs(rng, float64):
    y = rng.normal(size=6)
    p = rng.normal(size=(6, 1))
    out = losses.mean_squared_error(y, Tensor(p))
    assert out.shape == (6,)
    np.testing.assert_allclose(out.data, (y - p[:, 0]) ** 2)
    out = losses.mean_squared_error(y[:, None], Tensor(p[:, 0]))
    assert out.shape == (6,)


def test_shape_mismatch_is_a_clear_error(float64):
    with pytest.raises(ValueError, match=r"mean_squared_error.*\(4, 3\).*\(4, 2\)"):
        losses.mean_squared_error(np.zeros((4, 3)), Tensor(np.zeros((4, 2))))
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.categorical_crossentropy(np.zeros(4), Tensor(np.ones((4, 3)) / 3))


def test_sparse_labels_out_of_range_raise(float64):
    p = Tensor(np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"class label 3.*\[0, 3\)"):
        losses.sparse_categorical_crossentropy(np.array([0, 3]), p)
    with pytest.raises(ValueError, match=r"class label -1"):
        losses.sparse_categorical_crossentropy(np.array([-1, 0]), nn.softmax(Tensor(np.zeros((2, 3)))))
    with pytest.raises(ValueError, match="non-integer"):
        losses.sparse_categorical_crossentropy(np.array([0.5, 1.0]), p)


# --------------------------------------------------------- weights and reductions


def test_reductions_and_sample_weight(rng, float64):
    y, p = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    per = np.mean((y - p) ** 2, -1)
    w = rng.uniform(0, 2, 5)
    cases = {
        "sum_over_batch_size": (per * w).sum() / 5,
        "mean": (per * w).sum() / 5,
        "sum": (per * w).sum(),
        "none": per * w,
        "mean_with_sample_weight": (per * w).sum() / w.sum(),
    }
    for reduction, expected in cases.items():
        loss = losses.MeanSquaredError(reduction=reduction)
        np.testing.assert_allclose(loss(y, Tensor(p), sample_weight=w).data, expected, rtol=1e-12)
        np.testing.assert_allclose(loss(y, Tensor(p), sample_weight=w[:, None]).data, expected, rtol=1e-12)
    np.testing.assert_allclose(losses.MeanSquaredError()(y, Tensor(p)).data, per.mean(), rtol=1e-12)
    np.testing.assert_allclose(losses.MeanSquaredError(reduction=None)(y, Tensor(p)).data, per, rtol=1e-12)


def test_sample_weight_per_timestep(rng, float64):
    y, p = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 3))
    per = np.mean((y - p) ** 2, -1)  # (4, 6)
    w_batch = rng.uniform(0, 1, 4)
    w_steps = rng.uniform(0, 1, (4, 6))
    loss = losses.MeanSquaredError()
    np.testing.assert_allclose(loss(y, Tensor(p), sample_weight=w_batch).data,
                               (per * w_batch[:, None]).sum() / per.size, rtol=1e-12)
    np.testing.assert_allclose(loss(y, Tensor(p), sample_weight=w_steps).data,
                               (per * w_steps).sum() / per.size, rtol=1e-12)
    with pytest.raises(ValueError, match="sample_weight of shape"):
        loss(y, Tensor(p), sample_weight=np.ones(3))


def test_weighted_gradient(rng, float64):
    y, p = make_inputs("binary_crossentropy", rng, (4, 3))
    w = rng.uniform(0.5, 2, 4)
    assert check_gradients(lambda t: losses.BinaryCrossentropy(reduction="sum")(y, t, sample_weight=w), p) < 1e-6


def test_invalid_reduction():
    with pytest.raises(ValueError, match="reduction 'avg'"):
        losses.MeanSquaredError(reduction="avg")


def test_empty_batch_gives_zero(float64):
    out = losses.MeanSquaredError()(np.zeros((0, 2)), Tensor(np.zeros((0, 2))))
    assert float(out.data) == 0.0


# -------------------------------------------------------------- validate_targets


def test_validate_integer_labels_for_categorical():
    loss = losses.get("categorical_crossentropy")
    for y in (np.arange(100) % 10, (np.arange(100) % 10)[:, None]):
        with pytest.raises(ValueError) as err:
            loss.validate_targets(y, (None, 10))
        msg = str(err.value)
        for part in ("categorical_crossentropy", "`y`", "integer class labels", "(100, 10)",
                     "sparse_categorical_crossentropy", "to_categorical", "10 units"):
            assert part in msg, (part, msg)
    loss.validate_targets(np.eye(10)[np.arange(100) % 10], (None, 10))  # one-hot: fine


def test_validate_one_hot_width():
    with pytest.raises(ValueError, match=r"categorical_crossentropy: argument `y` has one-hot width 5.*10 units"):
        losses.CategoricalCrossentropy().validate_targets(np.eye(5)[[0, 1, 2]], (None, 10))


def test_validate_sparse_labels():
    loss = losses.SparseCategoricalCrossentropy()
    loss.validate_targets(np.array([0, 9, 3]), (None, 10))
    loss.validate_targets(np.array([[0], [9], [3]]), (None, 10))
    loss.validate_targets(np.array([0.0, 9.0]), (None, 10))
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy: argument `y` holds the class label 10, "
                                         r"outside the range \[0, 10\)"):
        loss.validate_targets(np.array([0, 10, 3]), (None, 10))
    with pytest.raises(ValueError, match=r"class label -2, outside the range \[0, 10\)"):
        loss.validate_targets(np.array([0, -2]), (None, 10))
    with pytest.raises(ValueError, match=r"`y` must hold integer class labels.*2\.5"):
        loss.validate_targets(np.array([0.0, 2.5]), (None, 10))
    with pytest.raises(ValueError, match=r"looks one-hot encoded.*categorical_crossentropy"):
        loss.validate_targets(np.eye(10)[[1, 2]], (None, 10))
    with pytest.raises(ValueError, match=r"`y` has shape \(4, 2\).*integer class labels of shape \(4,\)"):
        loss.validate_targets(np.zeros((4, 2), int), (None, 10))


def test_validate_binary_labels():
    loss = losses.get("binary_crossentropy")
    loss.validate_targets(np.array([0, 1, 1]), (None, 1))
    loss.validate_targets(np.array([[0.2], [1.0]]), (None, 1))
    with pytest.raises(ValueError, match=r"binary_crossentropy: argument `y` must hold labels in \[0, 1\].*\b2\b"):
        loss.validate_targets(np.array([0, 2, 1]), (None, 1))
    with pytest.raises(ValueError, match=r"binary_crossentropy: argument `y` has shape \(3, 2\)"):
        loss.validate_targets(np.zeros((3, 2)), (None, 1))


def test_validate_same_shape_losses():
    loss = losses.get("mse")
    loss.validate_targets(np.zeros(5), (None, 1))
    loss.validate_targets(np.zeros((5, 1)), (None,))
    loss.validate_targets(np.zeros((5, 3)), (None, 3))
    with pytest.raises(ValueError, match=r"mean_squared_error: argument `y` has shape \(5, 3\).*\(5, 2\)"):
        loss.validate_targets(np.zeros((5, 3)), (None, 2))
    with pytest.raises(ValueError, match="NaN"):
        loss.validate_targets(np.array([1.0, np.nan]), (None, 1))


def test_validate_custom_function_accepts_anything():
    losses.get(lambda y, p: (y - p) ** 2).validate_targets(np.zeros((3, 7)), (None, 2))


# ------------------------------------------------------------- get / serialize


@pytest.mark.parametrize("alias,canonical", [
    ("mse", "mean_squared_error"), ("MSE", "mean_squared_error"), ("mae", "mean_absolute_error"),
    ("MAE", "mean_absolute_error"), ("mape", "mean_absolute_percentage_error"),
    ("msle", "mean_squared_logarithmic_error"), ("MSLE", "mean_squared_logarithmic_error"),
    ("kld", "kl_divergence"), ("kullback_leibler_divergence", "kl_divergence"), ("logcosh", "log_cosh"),
    ("huber_loss", "huber"),
])
def test_aliases(alias, canonical):
    loss = losses.get(alias)
    assert isinstance(loss, losses.Loss)
    assert loss.fn is getattr(losses, canonical)


def test_get_forms():
    assert isinstance(losses.get("CategoricalCrossentropy"), losses.CategoricalCrossentropy)
    assert losses.get("categorical_crossentropy").name == "categorical_crossentropy"
    obj = losses.Huber(delta=0.5)
    assert losses.get(obj) is obj
    assert isinstance(losses.get(losses.Poisson), losses.Poisson)
    assert losses.get(None) is None

    def my_loss(y_true, y_pred):
        return losses.mean_squared_error(y_true, y_pred) * 2

    wrapped = losses.get(my_loss)
    assert isinstance(wrapped, losses.LossFunctionWrapper) and wrapped.name == "my_loss"
    np.testing.assert_allclose(wrapped(np.ones((2, 1)), Tensor(np.zeros((2, 1)))).data, 2.0)
    with pytest.raises(ValueError, match=r"Unknown loss 'mean_sqared_error'.*Did you mean 'mean_squared_error'"):
        losses.get("mean_sqared_error")
    with pytest.raises(ValueError, match="Could not interpret loss identifier"):
        losses.get(42)


def test_serialize_roundtrip(rng, float64):
    for loss in (losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, name="cce"),
                 losses.Huber(delta=2.0, reduction="sum"), losses.CosineSimilarity(axis=1),
                 losses.LossFunctionWrapper(losses.poisson, reduction="none"), losses.get("mse")):
        config = losses.serialize(loss)
        assert config["class_name"] == type(loss).__name__
        again = losses.deserialize(config)
        assert type(again) is type(loss)
        assert again.get_config() == loss.get_config()
    assert losses.deserialize({"class_name": "function", "config": "mse"}).fn is losses.mean_squared_error
    assert losses.serialize(losses.hinge) == "hinge"
    config = losses.Huber(delta=2.0).get_config()
    assert config == {"name": "huber_loss", "reduction": "sum_over_batch_size", "delta": 2.0}


def test_custom_loss_subclass(float64):
    class Scaled(losses.Loss):
        def __init__(self, factor=3.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, y_true, y_pred):
            return losses.mean_absolute_error(y_true, y_pred) * self.factor

    loss = Scaled(reduction="sum")
    assert loss.name == "scaled"
    np.testing.assert_allclose(loss(np.ones((2, 2)), Tensor(np.zeros((2, 2)))).data, 6.0)
    assert B.epsilon() == 1e-7
