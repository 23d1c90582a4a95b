import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenjing.utils.numerical import normalize, to_categorical

# ------------------------------------------------------------------ to_categorical


def test_to_categorical_basic():
    out = to_categorical([0, 2, 1, 2])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.eye(3, dtype=np.float32)[[0, 2, 1, 2]])


def test_to_categorical_num_classes_and_dtype():
    out = to_categorical(np.array([1, 0]), num_classes=4, dtype="int64")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [1, 0, 0, 0]])


def test_to_categorical_squeezes_a_trailing_axis_of_one():
    y = np.array([[0], [3], [1]])
    out = to_categorical(y, 4)
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out.argmax(-1), [0, 3, 1])


def test_to_categorical_keeps_other_shapes():
    y = np.array([[0, 1, 2], [2, 1, 0]])
    out = to_categorical(y)
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out.argmax(-1), y)
    assert to_categorical(2, 3).tolist() == [0.0, 0.0, 1.0]  # a scalar label
    assert to_categorical([1]).shape == (1, 2)  # a 1-D array of length 1 is not squeezed
    assert to_categorical(np.zeros((0,), dtype=int), 3).shape == (0, 3)


def test_to_categorical_accepts_integer_valued_floats():
    np.testing.assert_array_equal(to_categorical(np.array([0.0, 2.0]), 3), [[1, 0, 0], [0, 0, 1]])


def test_to_categorical_errors_name_the_value():
    with pytest.raises(ValueError, match="negative label -1"):
        to_categorical([0, -1, 2])
    with pytest.raises(ValueError, match="non-integer label 1.5"):
        to_categorical([0, 1.5])
    with pytest.raises(ValueError, match="non-integer label nan"):
        to_categorical([0, float("nan")])
    with pytest.raises(ValueError, match=r"label 5 is out of range for num_classes=3"):
        to_categorical([0, 5, 1], num_classes=3)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        to_categorical([0], num_classes=0)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        to_categorical([0], num_classes=2.5)
    with pytest.raises(ValueError, match="integer class labels"):
        to_categorical(["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        to_categorical([])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=1, max_size=20))
def test_to_categorical_roundtrip(labels):
    out = to_categorical(labels, 10)
    assert out.shape == (len(labels), 10)
    np.testing.assert_array_equal(out.argmax(-1), labels)
    np.testing.assert_array_equal(out.sum(-1), 1)


# ------------------------------------------------------------------ normalize


def test_normalize_l2_rows_and_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    out = normalize(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-6)
    assert not np.isnan(out).any()


def test_normalize_axis_and_order():
    x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    np.testing.assert_allclose(normalize(x, order=1), x / 6.0)
    col = normalize(x, axis=0)
    np.testing.assert_allclose(np.linalg.norm(col, axis=0), 1.0)
    np.testing.assert_allclose(col, x / np.linalg.norm(x, axis=0, keepdims=True))
    np.testing.assert_allclose(normalize(x, order=np.inf), x / 3.0)


def test_normalize_integer_input_and_1d():
    out = normalize(np.array([3, 4]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.6, 0.8])
    with pytest.raises(ValueError, match="scalar"):
        normalize(3.0)


def test_normalize_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(5, 4, 3))
    x[1, :, 2] = 0.0
    for axis in (-1, 1, 0):
        for order in (1, 2):
            expected = torch.nn.functional.normalize(torch.from_numpy(x), p=order, dim=axis).numpy()
            np.testing.assert_allclose(normalize(x, axis=axis, order=order), expected, rtol=1e-12, atol=1e-12)
