import json
import math

import numpy as np
import pytest

from shenjing import backend, initializers
from shenjing.initializers import compute_fans

TRUNC = 0.87962566103423978  # std of a standard normal truncated to ±2

RANDOM_CLASSES = [
    initializers.RandomNormal, initializers.RandomUniform, initializers.TruncatedNormal,
    initializers.VarianceScaling, initializers.GlorotUniform, initializers.GlorotNormal,
    initializers.HeUniform, initializers.HeNormal, initializers.LecunUniform, initializers.LecunNormal,
    initializers.Orthogonal,
]
ALL_CLASSES = RANDOM_CLASSES + [initializers.Zeros, initializers.Ones, initializers.Constant, initializers.Identity]


# ------------------------------------------------------------------ shapes, dtypes


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_shape_and_default_dtype(cls):
    out = cls()((5, 4))
    assert isinstance(out, backend.xp.ndarray)
    assert out.shape == (5, 4)
    assert out.dtype == np.float32


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_float64_dtype_and_floatx(cls, float64):
    assert cls()((3, 3)).dtype == np.float64  # floatx is float64 here
    assert cls()((3, 3), dtype="float32").dtype == np.float32


@pytest.mark.parametrize("cls", [c for c in RANDOM_CLASSES if c is not initializers.Orthogonal],
                         ids=lambda c: c.__name__)
def test_conv_and_vector_shapes(cls):
    assert cls()((3, 3, 2, 8)).shape == (3, 3, 2, 8)
    assert cls()((7,)).shape == (7,)
    assert cls()(6).shape == (6,)


@pytest.mark.parametrize("cls", RANDOM_CLASSES, ids=lambda c: c.__name__)
def test_random_initializers_reject_integer_dtypes(cls):
    with pytest.raises(ValueError, match="floating dtype"):
        cls()((2, 2), dtype="int32")


def test_constant_initializers_allow_integer_dtypes():
    assert initializers.Zeros()((2, 2), dtype="int32").dtype == np.int32
    np.testing.assert_array_equal(initializers.Constant(3)((2,), dtype="int64"), [3, 3])


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        initializers.Zeros()((2, -1))
    with pytest.raises(ValueError, match="shape"):
        initializers.RandomNormal()("abc")


# --------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("cls", RANDOM_CLASSES, ids=lambda c: c.__name__)
def test_same_seed_same_values_every_call(cls):
    a = cls(seed=7)((6, 5))
    b = cls(seed=7)((6, 5))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, cls(seed=7)((6, 5)))
    init = cls(seed=7)
    np.testing.assert_array_equal(init((6, 5)), init((6, 5)))  # a seeded initializer repeats itself
    assert not np.array_equal(a, cls(seed=8)((6, 5)))


@pytest.mark.parametrize("cls", RANDOM_CLASSES, ids=lambda c: c.__name__)
def test_unseeded_uses_global_generator(cls):
    init = cls()
    backend.set_random_seed(42)
    a1, a2 = init((6, 5)), init((6, 5))
    assert not np.array_equal(a1, a2)  # successive calls differ
    backend.set_random_seed(42)
    b1, b2 = init((6, 5)), init((6, 5))
    np.testing.assert_array_equal(a1, b1)  # set_random_seed reproduces the run
    np.testing.assert_array_equal(a2, b2)


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        initializers.RandomNormal(seed="x")
    with pytest.raises(ValueError, match="seed"):
        initializers.GlorotUniform(seed=-1)


# ------------------------------------------------------------------------ constants


def test_zeros_ones_constant():
    np.testing.assert_array_equal(initializers.Zeros()((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.Ones()((2, 3)), np.ones((2, 3)))
    np.testing.assert_array_equal(initializers.Constant(2.5)((2, 3)), np.full((2, 3), 2.5))
    np.testing.assert_array_equal(initializers.Constant([1, 2, 3])((2, 3)), [[1, 2, 3], [1, 2, 3]])
    out = initializers.Constant(np.array([1.0, 2.0]))((3, 2))
    assert out.dtype == np.float32 and out.flags.writeable
    with pytest.raises(ValueError, match="broadcast"):
        initializers.Constant([1, 2, 3])((2, 2))


def test_identity():
    np.testing.assert_array_equal(initializers.Identity()((3, 3)), np.eye(3))
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((2, 4)), 2 * np.eye(2, 4))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((3, 3, 3))
    with pytest.raises(ValueError, match="2-D"):
        initializers.Identity()((3,))


# ------------------------------------------------------------------------ statistics

BIG = (400, 500)  # 200 000 draws: the sample mean is within ~0.01 std of the truth


def _draw(init, shape=BIG):
    return np.asarray(init(shape, dtype="float64"))


def test_random_normal_statistics():
    w = _draw(initializers.RandomNormal(mean=0.3, stddev=2.0, seed=1))
    assert abs(w.mean() - 0.3) < 0.02
    assert abs(w.std() / 2.0 - 1) < 0.01


def test_keras1_normal_and_uniform_aliases():
    assert initializers.get("normal") == initializers.RandomNormal(stddev=0.05)
    assert initializers.get("uniform") == initializers.RandomUniform(-0.05, 0.05)
    w = _draw(initializers.get("normal"))
    assert abs(w.std() / 0.05 - 1) < 0.01


def test_random_uniform_statistics():
    w = _draw(initializers.RandomUniform(minval=-1.0, maxval=3.0, seed=2))
    assert w.min() >= -1.0 and w.max() < 3.0
    assert w.min() < -0.99 and w.max() > 2.99
    assert abs(w.mean() - 1.0) < 0.01
    assert abs(w.std() / (4 / math.sqrt(12)) - 1) < 0.01
    d = _draw(initializers.RandomUniform(seed=2), (1000,))
    assert d.min() >= -0.05 and d.max() < 0.05


def test_truncated_normal_bounds_and_statistics():
    w = _draw(initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=3))
    assert w.min() >= 1.0 - 2 * 0.5 and w.max() <= 1.0 + 2 * 0.5
    assert w.min() < 0.01 and w.max() > 1.99  # the whole ±2σ range is used
    assert abs(w.mean() - 1.0) < 0.005
    assert abs(w.std() / (0.5 * TRUNC) - 1) < 0.01


@pytest.mark.parametrize("shape, fans", [
    ((), (1, 1)),
    ((7,), (7, 7)),
    ((20, 30), (20, 30)),
    ((3, 3, 16, 32), (9 * 16, 9 * 32)),
    ((5, 4, 8), (5 * 4, 5 * 8)),
    ((2, 3, 3, 4, 6), (18 * 4, 18 * 6)),
])
def test_compute_fans(shape, fans):
    assert compute_fans(shape) == fans


def _expected_std(scale, mode, shape):
    fan_in, fan_out = compute_fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return math.sqrt(scale / max(1.0, n))


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
@pytest.mark.parametrize("shape", [(300, 700), (5, 5, 40, 160)])
def test_variance_scaling_statistics(mode, distribution, shape):
    scale = 1.7
    w = _draw(initializers.VarianceScaling(scale=scale, mode=mode, distribution=distribution, seed=4), shape)
    std = _expected_std(scale, mode, shape)
    assert abs(w.mean()) < 0.02 * std
    assert abs(w.std() / std - 1) < 0.01  # the truncated draws keep the intended variance
    if distribution == "uniform":
        limit = math.sqrt(3) * std
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    elif distribution == "truncated_normal":
        limit = 2 * std / TRUNC
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    else:
        assert np.abs(w).max() > 4 * std  # not truncated


def test_variance_scaling_normal_is_truncated_normal():
    assert initializers.VarianceScaling(distribution="normal").distribution == "truncated_normal"
    a = initializers.VarianceScaling(distribution="normal", seed=1)((40, 40))
    b = initializers.VarianceScaling(distribution="truncated_normal", seed=1)((40, 40))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    (dict(scale=0.0), "scale"),
    (dict(scale=-1.0), "scale"),
    (dict(mode="fan_sum"), "mode"),
    (dict(distribution="laplace"), "distribution"),
])
def test_variance_scaling_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        initializers.VarianceScaling(**kwargs)


NAMED = [
    # class, scale, mode, distribution
    (initializers.GlorotUniform, 1.0, "fan_avg", "uniform"),
    (initializers.GlorotNormal, 1.0, "fan_avg", "truncated_normal"),
    (initializers.HeUniform, 2.0, "fan_in", "uniform"),
    (initializers.HeNormal, 2.0, "fan_in", "truncated_normal"),
    (initializers.LecunUniform, 1.0, "fan_in", "uniform"),
    (initializers.LecunNormal, 1.0, "fan_in", "truncated_normal"),
]


@pytest.mark.parametrize("cls, scale, mode, distribution", NAMED, ids=[c[0].__name__ for c in NAMED])
@pytest.mark.parametrize("shape", [(256, 800), (3, 3, 64, 128)])
def test_named_variance_scalings(cls, scale, mode, distribution, shape):
    init = cls(seed=5)
    assert (init.scale, init.mode, init.distribution) == (scale, mode, distribution)
    w = _draw(init, shape)
    std = _expected_std(scale, mode, shape)
    assert abs(w.std() / std - 1) < 0.01
    if distribution == "uniform":
        assert np.abs(w).max() <= math.sqrt(3) * std
    else:
        assert np.abs(w).max() <= 2 * std / TRUNC
    # same values as the general VarianceScaling with the same seed
    np.testing.assert_array_equal(
        init(shape), initializers.VarianceScaling(scale, mode, distribution, seed=5)(shape))


def test_glorot_uniform_limit_for_dense_kernel():
    w = _draw(initializers.GlorotUniform(seed=0), (100, 300))
    limit = math.sqrt(6 / (100 + 300))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit


def test_he_normal_for_conv_kernel_uses_receptive_field():
    w = _draw(initializers.HeNormal(seed=0), (5, 5, 32, 64))
    assert abs(w.std() / math.sqrt(2 / (25 * 32)) - 1) < 0.02


# ------------------------------------------------------------------------ orthogonal


@pytest.mark.parametrize("shape", [(8, 8), (20, 6), (6, 20), (3, 3, 4, 5), (2, 3, 30)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = np.asarray(initializers.Orthogonal(gain=gain, seed=0)(shape, dtype="float64"))
    assert w.shape == shape
    m = w.reshape(-1, shape[-1])
    rows, cols = m.shape
    if rows >= cols:
        np.testing.assert_allclose(m.T @ m, gain**2 * np.eye(cols), atol=1e-12)
    else:
        np.testing.assert_allclose(m @ m.T, gain**2 * np.eye(rows), atol=1e-12)


def test_orthogonal_is_not_always_the_same_sign_pattern():
    # the sign fix makes Q's distribution uniform: the diagonal of Q has both signs across draws
    diag = np.concatenate([np.diag(initializers.Orthogonal(seed=s)((6, 6))) for s in range(20)])
    assert (diag > 0).any() and (diag < 0).any()


def test_orthogonal_float32():
    w = initializers.Orthogonal(seed=1)((16, 16))
    assert w.dtype == np.float32
    np.testing.assert_allclose(w.T @ w, np.eye(16), atol=1e-5)


def test_orthogonal_needs_two_dims():
    with pytest.raises(ValueError, match="at least 2 dims"):
        initializers.Orthogonal()((5,))


# ---------------------------------------------------------------- config and names

CONFIGURED = [
    initializers.Zeros(), initializers.Ones(), initializers.Constant(0.7), initializers.Constant([1.0, 2.0]),
    initializers.RandomNormal(mean=1.0, stddev=0.2, seed=3), initializers.RandomUniform(-2.0, 1.0, seed=4),
    initializers.TruncatedNormal(0.5, 0.1), initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=9),
    initializers.GlorotUniform(seed=1), initializers.GlorotNormal(), initializers.HeUniform(seed=2),
    initializers.HeNormal(), initializers.LecunUniform(), initializers.LecunNormal(seed=11),
    initializers.Orthogonal(gain=1.5, seed=2), initializers.Identity(gain=0.5),
]


@pytest.mark.parametrize("init", CONFIGURED, ids=lambda i: type(i).__name__)
def test_config_round_trip(init):
    config = initializers.serialize(init)
    assert config["class_name"] == type(init).__name__
    config = json.loads(json.dumps(config))  # JSON-able
    back = initializers.deserialize(config)
    assert type(back) is type(init)
    assert back.get_config() == init.get_config()
    assert initializers.get(config) == init
    assert type(init).from_config(init.get_config()) == init
    assert init.clone() == init


def test_constant_from_array_is_json_able():
    init = initializers.Constant(np.float32(1.5))
    assert json.dumps(init.get_config()) == '{"value": 1.5}'


@pytest.mark.parametrize("name, cls", [
    ("zeros", initializers.Zeros), ("ones", initializers.Ones), ("constant", initializers.Constant),
    ("random_normal", initializers.RandomNormal), ("normal", initializers.RandomNormal),
    ("random_uniform", initializers.RandomUniform), ("uniform", initializers.RandomUniform),
    ("truncated_normal", initializers.TruncatedNormal), ("glorot_uniform", initializers.GlorotUniform),
    ("glorot_normal", initializers.GlorotNormal), ("he_uniform", initializers.HeUniform),
    ("he_normal", initializers.HeNormal), ("lecun_uniform", initializers.LecunUniform),
    ("lecun_normal", initializers.LecunNormal), ("orthogonal", initializers.Orthogonal),
    ("identity", initializers.Identity), ("variance_scaling", initializers.VarianceScaling),
    ("GlorotUniform", initializers.GlorotUniform), ("HeNormal", initializers.HeNormal),
    ("RandomNormal", initializers.RandomNormal), ("Orthogonal", initializers.Orthogonal),
])
def test_string_ids(name, cls):
    init = initializers.get(name)
    assert type(init) is cls
    assert init == cls()


def test_function_style_names_and_get_forms():
    assert initializers.glorot_uniform is initializers.GlorotUniform
    assert isinstance(initializers.he_normal(seed=1), initializers.HeNormal)
    assert isinstance(initializers.get(initializers.GlorotUniform), initializers.GlorotUniform)
    inst = initializers.LecunNormal()
    assert initializers.get(inst) is inst
    assert initializers.get(None) is None

    def my_init(shape, dtype=None):
        return backend.xp.full(shape, 3.0, dtype=dtype or backend.floatx())

    assert initializers.get(my_init) is my_init
    assert initializers.get("my_init", custom_objects={"my_init": my_init}) is my_init
    assert initializers.serialize(my_init) == "my_init"


def test_unknown_name_error():
    with pytest.raises(ValueError) as info:
        initializers.get("glorot_unifrom")
    message = str(info.value)
    assert "Unknown initializer 'glorot_unifrom'" in message
    assert "Did you mean 'glorot_uniform'" in message


def test_bad_identifier_and_config():
    with pytest.raises(ValueError, match="initializer"):
        initializers.get(3.5)
    with pytest.raises(ValueError, match="class_name"):
        initializers.get({"config": {}})
    with pytest.raises(TypeError):
        initializers.get({"class_name": "RandomNormal", "config": {"bogus": 1}})


def test_invalid_arguments():
    with pytest.raises(ValueError, match="stddev"):
        initializers.RandomNormal(stddev=-1.0)
    with pytest.raises(ValueError, match="minval"):
        initializers.RandomUniform(minval=1.0, maxval=0.0)
