"""Convolution and pooling primitives: float64 finite-difference checks of every mode,
PyTorch as an independent oracle (float32 and float64), shapes and edge cases."""

import numpy as np
import pytest

from shenjing import backend
from shenjing.autodiff import Tensor, conv, no_grad

from .helpers import KERNEL_PATHS, assert_gradients, on_both_paths

R = np.random.default_rng(7)


@pytest.fixture(autouse=True, params=KERNEL_PATHS)
def kernel_path(request):
    """Every test here runs on the NumPy reference path and on the compiled (numba) kernels."""
    yield from on_both_paths(request)


def n(*shape):
    return R.standard_normal(shape)


def distinct(*shape):
    """Values in about [-2, 2], at least 0.005 apart (no ties, no kink of max pooling within the
    difference step, and small enough that f's rounding stays below the checks' tolerance)."""
    size = int(np.prod(shape))
    values = R.permutation(size).reshape(shape) * min(0.05, 4.0 / size)
    return values - values.mean()


def nchw(a):
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


# --------------------------------------------------------------------- gradient checks

CONV2D_CASES = [
    # (id, x shape NHWC, kernel shape, kwargs)
    ("valid-s1", (2, 5, 6, 3), (3, 3, 3, 4), {}),
    ("valid-s2", (2, 5, 6, 3), (3, 3, 3, 2), {"strides": 2}),
    ("same-s1", (2, 5, 6, 2), (3, 3, 2, 3), {"padding": "same"}),
    ("same-s2", (2, 5, 6, 2), (3, 3, 2, 3), {"padding": "same", "strides": (2, 2)}),
    ("same-unequal-strides", (2, 5, 6, 2), (3, 2, 2, 3), {"padding": "same", "strides": (2, 1)}),
    ("valid-unequal-strides", (2, 6, 5, 2), (2, 3, 2, 3), {"strides": (1, 2)}),
    ("explicit-int", (2, 4, 5, 2), (3, 3, 2, 2), {"padding": 1}),
    ("explicit-pairs", (2, 4, 5, 2), (3, 2, 2, 2), {"padding": ((1, 0), (2, 1)), "strides": (2, 1)}),
    ("dilation-2", (2, 6, 7, 2), (2, 3, 2, 3), {"dilation_rate": 2}),
    ("dilation-same", (2, 5, 6, 2), (3, 3, 2, 2), {"dilation_rate": (2, 1), "padding": "same"}),
    ("wide-same", (2, 5, 6, 6), (3, 3, 6, 3), {"padding": "same"}),
    ("wide-explicit-s2-dilated", (2, 7, 8, 5), (2, 3, 5, 2), {"padding": ((1, 0), (2, 1)), "strides": (1, 2),
                                                               "dilation_rate": (2, 1)}),
    ("one-channel", (2, 6, 7, 1), (3, 2, 1, 3), {}),
    ("one-channel-same-s2-dilated", (2, 7, 6, 1), (2, 3, 1, 2),
     {"padding": "same", "strides": 2, "dilation_rate": (1, 2)}),
    ("groups-2", (2, 5, 6, 4), (3, 3, 2, 4), {"groups": 2}),
    ("groups-2-same-s2", (2, 5, 6, 4), (3, 2, 2, 6), {"groups": 2, "padding": "same", "strides": 2}),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", CONV2D_CASES, ids=[c[0] for c in CONV2D_CASES])
def test_conv2d_gradients(case, data_format):
    _, xs, ks, kwargs = case
    x = n(*xs) if data_format == "channels_last" else nchw(n(*xs))
    assert_gradients(lambda x, k, b: conv.conv2d(x, k, b, data_format=data_format, **kwargs), x, n(*ks), n(ks[-1]))


@pytest.fixture
def small_blocks(monkeypatch):
    """Cache blocks of a few hundred bytes: the convolutions then work through many sample blocks,
    the last one partial."""
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 700)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", CONV2D_CASES, ids=[c[0] for c in CONV2D_CASES])
def test_conv2d_gradients_in_small_cache_blocks(case, data_format, small_blocks):
    _, xs, ks, kwargs = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5,) + xs[1:])
    x = x if data_format == "channels_last" else nchw(x)
    k, b = rng.standard_normal(ks), rng.standard_normal(ks[-1])
    assert_gradients(lambda x, k, b: conv.conv2d(x, k, b, data_format=data_format, **kwargs), x, k, b)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("case", CONV2D_CASES, ids=[c[0] for c in CONV2D_CASES])
def test_fused_conv2d_activation_equals_conv_then_activation(case, activation, monkeypatch):
    """conv2d(activation=) is one node with the value and gradients of conv2d followed by the activation,
    whether the batch is done in one block or in blocks of one sample."""
    from shenjing.autodiff import nn

    _, xs, ks, kwargs = case
    arrays = [n(3, *xs[1:]), n(*ks), n(ks[-1])]
    g = n(*conv.conv2d(*arrays, **kwargs).shape)

    def run(fused):
        x, k, b = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = conv.conv2d(x, k, b, activation=activation, **kwargs) if fused else \
            getattr(nn, activation)(conv.conv2d(x, k, b, **kwargs))
        (out * Tensor(g)).sum().backward()
        return [out.data, x.grad, k.grad, b.grad]

    reference = run(False)
    for block_bytes in (1 << 30, 1):
        monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", block_bytes)
        for got, want in zip(run(True), reference):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


POOLED_CASES = [  # (name, x shape, kernel shape, conv kwargs, pool kwargs): fused (compiled columns) and the rest
    ("fused", (3, 12, 12, 16), (3, 3, 16, 24), {"activation": "relu"}, {}),
    ("fused-tanh-strided", (2, 13, 11, 8), (3, 3, 8, 10), {"activation": "tanh", "strides": 2},
     {"pool_size": 3, "pool_strides": (2, 1)}),
    ("fused-same-linear", (2, 9, 10, 6), (2, 3, 6, 9), {"padding": "same", "dilation_rate": 2}, {"pool_size": (2, 3)}),
    ("narrow-input", (2, 10, 10, 2), (3, 3, 2, 16), {"activation": "relu"}, {}),
    ("direct-few-filters", (2, 10, 10, 16), (3, 3, 16, 4), {"activation": "relu"}, {}),
    ("direct-few-filters-same", (2, 10, 9, 16), (3, 3, 16, 4), {"activation": "relu", "padding": "same"}, {}),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (NaN and infinity in the input)
@pytest.mark.parametrize("blocks", [None, 700], ids=["blocks", "small-blocks"])
@pytest.mark.parametrize("case", POOLED_CASES, ids=[c[0] for c in POOLED_CASES])
def test_conv2d_max_pool2d_is_the_two_ops_bit_for_bit(case, blocks, kernel_path, monkeypatch):
    """Inference pools the convolution's output block by block where it can; the numbers are those of the
    two ops (NaN and infinity included), on every path; with a gradient it is the two ops."""
    name, xs, ks, kwargs, pool = case
    if blocks is not None:
        monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", blocks)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(xs).astype(np.float32)
    x[0, 1, 2, 0], x[-1, -1, -1, -1] = np.nan, np.inf
    k = rng.standard_normal(ks).astype(np.float32)
    b = rng.standard_normal(ks[-1]).astype(np.float32)
    pool_size, pool_strides = pool.get("pool_size", 2), pool.get("pool_strides")
    two_ops = conv.max_pool2d(conv.conv2d(x, k, b, **kwargs), pool_size, pool_strides).data
    pooling_op = conv.max_pool2d
    pooled_apart = []
    monkeypatch.setattr(conv, "max_pool2d", lambda *a: pooled_apart.append(1) or pooling_op(*a))
    with no_grad():
        fused = conv.conv2d_max_pool2d(x, k, b, **kwargs, pool_size=pool_size, pool_strides=pool_strides)
    monkeypatch.setattr(conv, "max_pool2d", pooling_op)
    assert bool(pooled_apart) != (name.startswith("fused") and kernel_path == "compiled")
    assert fused.dtype == np.float32 and not fused.requires_grad
    np.testing.assert_array_equal(fused.data, two_ops)
    kt = Tensor(k.astype(np.float64), requires_grad=True)
    bt = Tensor(b.astype(np.float64), requires_grad=True)
    x64 = distinct(*xs)
    out = conv.conv2d_max_pool2d(x64, kt, bt, **kwargs, pool_size=pool_size, pool_strides=pool_strides)
    out.sum().backward()
    kr, br = Tensor(kt.data, requires_grad=True), Tensor(bt.data, requires_grad=True)
    conv.max_pool2d(conv.conv2d(x64, kr, br, **kwargs), pool_size, pool_strides).sum().backward()
    np.testing.assert_array_equal(kt.grad, kr.grad)
    np.testing.assert_array_equal(bt.grad, br.grad)


def test_conv2d_max_pool2d_gradients():
    """With a gradient recorded the op is the two ops: central differences agree with its backward."""
    rng = np.random.default_rng(3)  # (its own values, whatever ran before: no near-tie in a pooling window)
    x, k, b = rng.standard_normal((2, 7, 7, 3)), rng.standard_normal((3, 3, 3, 4)) * 0.3, rng.standard_normal(4) * 0.1
    fn = lambda x, k, b: conv.conv2d_max_pool2d(x, k, b, activation="tanh", pool_size=2)  # noqa: E731
    assert_gradients(fn, x, k, b)


def test_normalize_tuple_answers_from_its_table_only_for_ints():
    """Seen arguments come from a table; values equal to seen ones but of other types still raise."""
    assert conv.normalize_tuple((2, 3), 2, "strides") == (2, 3)
    assert conv.normalize_tuple((2, 3), 2, "strides") == (2, 3)
    assert conv.normalize_tuple(2, 2, "strides") == (2, 2)
    assert conv.normalize_tuple([2, 3], 2, "strides") == (2, 3)  # a list: not hashable, not stored
    for bad in ((2 + 0j, 3), 2.0, (2.5, 3), (0, 1)):
        with pytest.raises(ValueError):
            conv.normalize_tuple(bad, 2, "strides")
    assert conv.normalize_tuple(True, 2, "strides") == (1, 1)  # as the function itself answers


def test_conv2d_rejects_an_activation_it_cannot_fuse():
    with pytest.raises(ValueError, match="cannot be fused"):
        conv.conv2d(n(1, 4, 4, 1), n(3, 3, 1, 1), activation="softmax")


def test_conv2d_without_bias_gradients():
    assert_gradients(lambda x, k: conv.conv2d(x, k, padding="same", strides=2), n(2, 5, 6, 3), n(3, 3, 3, 2))


CONV1D_CASES = [
    ("valid", (2, 7, 3), (3, 3, 4), {}),
    ("same-s2", (2, 7, 3), (3, 3, 2), {"padding": "same", "strides": 2}),
    ("causal", (2, 6, 2), (3, 2, 3), {"padding": "causal"}),
    ("causal-dilation-2", (2, 8, 2), (3, 2, 3), {"padding": "causal", "dilation_rate": 2}),
    ("explicit", (2, 6, 2), (2, 2, 3), {"padding": (2, 1)}),
    ("groups-2", (2, 6, 4), (3, 2, 4), {"groups": 2}),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", CONV1D_CASES, ids=[c[0] for c in CONV1D_CASES])
def test_conv1d_gradients(case, data_format):
    _, xs, ks, kwargs = case
    x = n(*xs) if data_format == "channels_last" else np.ascontiguousarray(n(*xs).transpose(0, 2, 1))
    assert_gradients(lambda x, k, b: conv.conv1d(x, k, b, data_format=data_format, **kwargs), x, n(*ks), n(ks[-1]))


TRANSPOSE_CASES = [
    ("valid-s1", (2, 3, 4, 2), (3, 3, 3, 2), {}),
    ("valid-s2", (2, 3, 4, 2), (3, 3, 3, 2), {"strides": 2}),
    ("same-s2", (2, 3, 4, 2), (3, 3, 2, 2), {"strides": 2, "padding": "same"}),
    ("same-unequal", (2, 3, 3, 2), (3, 2, 2, 2), {"strides": (2, 3), "padding": "same"}),
    ("kernel-smaller-than-stride", (2, 3, 3, 2), (2, 2, 2, 2), {"strides": 3}),
    ("output-padding-valid", (2, 3, 3, 2), (3, 3, 2, 2), {"strides": 2, "output_padding": (1, 0)}),
    ("output-padding-same", (2, 3, 3, 2), (3, 3, 2, 2), {"strides": 2, "padding": "same", "output_padding": 1}),
    ("dilation-2", (2, 3, 3, 2), (2, 2, 2, 2), {"dilation_rate": 2}),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=[c[0] for c in TRANSPOSE_CASES])
def test_conv2d_transpose_gradients(case, data_format):
    _, xs, ks, kwargs = case
    x = n(*xs) if data_format == "channels_last" else nchw(n(*xs))
    assert_gradients(lambda x, k, b: conv.conv2d_transpose(x, k, b, data_format=data_format, **kwargs),
                     x, n(*ks), n(ks[2]))


DEPTHWISE_CASES = [
    ("multiplier-2", (2, 5, 6, 3), (3, 3, 3, 2), {}),
    ("same-s2", (2, 5, 6, 2), (3, 3, 2, 2), {"padding": "same", "strides": 2}),
    ("dilation-2", (2, 6, 6, 2), (2, 2, 2, 1), {"dilation_rate": 2}),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=[c[0] for c in DEPTHWISE_CASES])
def test_depthwise_conv2d_gradients(case, data_format):
    _, xs, ks, kwargs = case
    x = n(*xs) if data_format == "channels_last" else nchw(n(*xs))
    assert_gradients(lambda x, k, b: conv.depthwise_conv2d(x, k, b, data_format=data_format, **kwargs),
                     x, n(*ks), n(ks[2] * ks[3]))


POOL_CASES = [
    ("2x2", (2, 4, 6, 2), {"pool_size": 2}),
    ("overlapping-3-s2", (2, 7, 6, 2), {"pool_size": 3, "strides": 2}),
    ("same-3-s2", (2, 6, 5, 2), {"pool_size": 3, "strides": 2, "padding": "same"}),
    ("same-2x3-s1", (2, 4, 5, 2), {"pool_size": (2, 3), "strides": 1, "padding": "same"}),
    ("unequal-strides", (2, 5, 6, 2), {"pool_size": (2, 2), "strides": (1, 2)}),
    ("disjoint-with-gaps", (2, 7, 6, 2), {"pool_size": 2, "strides": 3}),
    ("same-2-s2-odd-size", (2, 5, 5, 2), {"pool_size": 2, "padding": "same"}),
]


@pytest.mark.parametrize("channels", [2, 8, 16], ids=["2ch", "8ch", "16ch"])  # 8, 16: the compiled kernels' range
@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_pool2d_gradients(case, data_format, op, channels):
    _, xs, kwargs = case
    xs = xs[:3] + (channels,)
    x = distinct(*xs) if data_format == "channels_last" else nchw(distinct(*xs))
    fn = conv.max_pool2d if op == "max" else conv.avg_pool2d
    assert_gradients(lambda x: fn(x, data_format=data_format, **kwargs), x)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kwargs", [{"pool_size": 2}, {"pool_size": 3, "strides": 2},
                                    {"pool_size": 3, "strides": 2, "padding": "same"}])
def test_pool1d_gradients(kwargs, data_format, op):
    x = distinct(2, 7, 3)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 2, 1))
    fn = conv.max_pool1d if op == "max" else conv.avg_pool1d
    assert_gradients(lambda x: fn(x, data_format=data_format, **kwargs), x)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_upsample_pad_crop_gradients(data_format):
    x = n(2, 3, 4, 2) if data_format == "channels_last" else nchw(n(2, 3, 4, 2))
    assert_gradients(lambda x: conv.upsample2d(x, (2, 3), data_format), x)
    assert_gradients(lambda x: conv.zero_pad2d(x, ((1, 0), (2, 1)), data_format), x)
    assert_gradients(lambda x: conv.crop2d(x, ((1, 0), (1, 2)), data_format), x)


# ------------------------------------------------------------------------ values, edge cases


def reference_conv2d(x, k, b, strides, pads, dilation):
    """A direct loop over output pixels and taps (NHWC, groups 1): the definition itself."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw, _, f = k.shape
    ho = (xp.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    wo = (xp.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    out = np.zeros((x.shape[0], ho, wo, f)) + b
    for i in range(ho):
        for j in range(wo):
            for a in range(kh):
                for c in range(kw):
                    pixel = xp[:, i * strides[0] + a * dilation[0], j * strides[1] + c * dilation[1], :]
                    out[:, i, j, :] += pixel @ k[a, c]
    return out


def test_conv2d_matches_the_definition_with_tf_same_padding():
    x, k, b = n(2, 6, 7, 3), n(3, 2, 3, 4), n(4)
    out = conv.conv2d(x, k, b, strides=2, padding="same").numpy()
    # TF 'same': rows ceil(6/2)=3, total pad max(2*2+3-6, 0)=1 -> (0, 1); cols ceil(7/2)=4, pad max(6+2-7,0)=1
    np.testing.assert_allclose(out, reference_conv2d(x, k, b, (2, 2), ((0, 1), (0, 1)), (1, 1)), rtol=1e-12)
    assert out.shape == (2, 3, 4, 4)


def test_same_pads_put_the_odd_pixel_after():
    assert conv.same_pads(5, 3, 2) == (1, 1)
    assert conv.same_pads(6, 3, 2) == (0, 1)
    assert conv.same_pads(5, 4, 1) == (1, 2)
    assert conv.same_pads(4, 1, 3) == (0, 0)


def test_causal_conv1d_does_not_see_the_future():
    x = n(1, 6, 2)
    k = n(3, 2, 1)
    base = conv.conv1d(x, k, padding="causal", dilation_rate=2).numpy()
    changed = x.copy()
    changed[0, 4] += 10.0
    out = conv.conv1d(changed, k, padding="causal", dilation_rate=2).numpy()
    assert base.shape == (1, 6, 1)
    np.testing.assert_array_equal(out[0, :4], base[0, :4])
    assert not np.allclose(out[0, 4:], base[0, 4:])


def test_conv2d_transpose_is_the_adjoint_of_conv2d():
    """<conv(z), x> == <z, conv_transpose(x)> for every mode: the transpose really is the adjoint."""
    for strides, padding, dilation in [(2, "valid", 1), (2, "same", 1), ((2, 3), "same", 1), (1, "valid", 2)]:
        x, k = n(2, 3, 4, 3), n(3, 3, 2, 3)
        y = conv.conv2d_transpose(x, k, strides=strides, padding=padding, dilation_rate=dilation).numpy()
        z = n(*y.shape)
        forward = conv.conv2d(z, k, strides=strides, padding=padding, dilation_rate=dilation).numpy()
        assert forward.shape == x.shape
        np.testing.assert_allclose((forward * x).sum(), (z * y).sum(), rtol=1e-10)


def test_conv2d_transpose_output_lengths_follow_keras():
    x, k = n(1, 5, 5, 1), n(3, 3, 2, 1)
    assert conv.conv2d_transpose(x, k, strides=2).shape == (1, 11, 11, 2)
    assert conv.conv2d_transpose(x, k, strides=2, padding="same").shape == (1, 10, 10, 2)
    assert conv.conv2d_transpose(x, k, strides=2, output_padding=1).shape == (1, 12, 12, 2)
    assert conv.conv2d_transpose(x, k, strides=(2, 3), padding="same", output_padding=(1, 2)).shape == (1, 10, 15, 2)
    assert conv.conv2d_transpose(x, n(2, 2, 2, 1), strides=3).shape == (1, 15, 15, 2)


def test_max_pool_gives_one_winner_per_window_and_overlaps_accumulate():
    x = Tensor(np.array([[[[1.0], [1.0], [1.0]], [[1.0], [1.0], [1.0]], [[1.0], [1.0], [1.0]]]]),
               requires_grad=True)
    out = conv.max_pool2d(x, 2, strides=1)
    out.sum().backward()
    # all ties: each of the 4 windows routes its gradient to its first element only
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    y = Tensor(np.array([[[[0.0], [0.0], [0.0]], [[0.0], [9.0], [0.0]], [[0.0], [0.0], [0.0]]]]),
               requires_grad=True)
    conv.max_pool2d(y, 2, strides=1).sum().backward()
    assert y.grad[0, 1, 1, 0] == 4.0 and y.grad.sum() == 4.0


def test_avg_pool_same_divides_by_real_elements():
    x = np.ones((1, 5, 5, 1))
    out = conv.avg_pool2d(x, 3, strides=2, padding="same").numpy()
    np.testing.assert_allclose(out, 1.0)
    ramp = np.arange(4.0).reshape(1, 4, 1, 1)
    out = conv.avg_pool2d(ramp, (3, 1), strides=(2, 1), padding="same").numpy()
    # rows padded (0, 1): windows {0, 1, 2} and {2, 3} -> 1 and 2.5
    np.testing.assert_allclose(out[0, :, 0, 0], [1.0, 2.5])


def test_float32_stays_float32_and_no_grad_records_nothing():
    x = Tensor(n(2, 5, 5, 2).astype("float32"), requires_grad=True)
    k = Tensor(n(3, 3, 2, 3).astype("float32"), requires_grad=True)
    b = Tensor(np.zeros(3, "float32"), requires_grad=True)
    for out in [conv.conv2d(x, k, b, padding="same"), conv.conv2d_transpose(x, Tensor(n(3, 3, 3, 2).astype("float32"))),
                conv.max_pool2d(x), conv.avg_pool2d(x, padding="same"), conv.upsample2d(x)]:
        assert out.dtype == np.float32
        out.sum().backward()
    assert x.grad.dtype == k.grad.dtype == b.grad.dtype == np.float32
    with no_grad():
        out = conv.conv2d(x, k, b)
    assert not out.requires_grad and out.is_leaf
    # a constant float64 kernel/bias (plain arrays) takes the data's dtype: no silent upcast
    assert conv.conv2d(x, n(3, 3, 2, 3), n(3)).dtype == np.float32
    assert conv.depthwise_conv2d(x, n(3, 3, 2, 1), n(2)).dtype == np.float32
    assert conv.conv2d_transpose(x, n(3, 3, 1, 2)).dtype == np.float32


def test_only_needed_gradients_are_computed():
    x = Tensor(n(2, 5, 5, 2))  # data: no gradient wanted
    k = Tensor(n(3, 3, 2, 3), requires_grad=True)
    out = conv.conv2d(x, k)
    out.sum().backward()
    assert x.grad is None and k.grad.shape == (3, 3, 2, 3)


def test_primitives_reject_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        conv.conv2d(n(1, 4, 4, 1), n(3, 3, 1, 1), padding="full")
    with pytest.raises(ValueError, match="causal"):
        conv.conv2d(n(1, 4, 4, 1), n(3, 3, 1, 1), padding="causal")
    with pytest.raises(ValueError, match="data_format"):
        conv.conv2d(n(1, 4, 4, 1), n(3, 3, 1, 1), data_format="NHWC")
    with pytest.raises(ValueError, match="strides"):
        conv.conv2d(n(1, 4, 4, 1), n(3, 3, 1, 1), strides=0)
    with pytest.raises(ValueError, match="output_padding"):
        conv.conv2d_transpose(n(1, 3, 3, 1), n(4, 4, 1, 1), strides=2, padding="same", output_padding=0)


# ----------------------------------------------------------------------------- torch oracle

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10)}


def compare(sj_fn, torch_fn, arrays, dtype):
    """Outputs, then the gradients of the same random weighting, agree to a relative 1e-5 (float32)
    or 1e-10 (float64) of the largest value."""
    rtol, scale_tol = TOL[dtype]
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = sj_fn(*ours)
    ref = torch_fn(*theirs)
    assert out.shape == tuple(ref.shape)
    assert out.dtype == np.dtype(dtype)
    ref_np = ref.detach().numpy()
    np.testing.assert_allclose(out.data, ref_np, rtol=rtol, atol=scale_tol * np.abs(ref_np).max(), err_msg="forward")
    weights = np.random.default_rng(11).standard_normal(out.shape).astype(dtype)
    (out * Tensor(weights)).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        expected = b.grad.numpy()
        np.testing.assert_allclose(a.grad, expected, rtol=rtol, atol=scale_tol * np.abs(expected).max(),
                                   err_msg=f"gradient of input {i}")


def t_nhwc(x):
    return x.permute(0, 3, 1, 2)


def t_back(y):
    return y.permute(0, 2, 3, 1)


def t_weight(k):
    """Keras (kh, kw, in/groups, out) -> torch (out, in/groups, kh, kw)."""
    return k.permute(3, 2, 0, 1)


def tf_pads(size, k, s, d=1):
    """TensorFlow's 'same' padding, written out again independently of the code under test."""
    k_eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + k_eff - size, 0)
    return total // 2, total - total // 2


TORCH_CONV2D = [
    # (id, x NHWC, kernel, strides, padding, dilation, groups)
    ("valid", (2, 6, 7, 3), (3, 3, 3, 4), (1, 1), "valid", (1, 1), 1),
    ("same-s1", (2, 6, 7, 3), (3, 3, 3, 4), (1, 1), "same", (1, 1), 1),
    ("same-s1-dilated", (2, 7, 7, 2), (3, 3, 2, 3), (1, 1), "same", (2, 2), 1),
    ("same-s2", (2, 7, 6, 3), (3, 3, 3, 4), (2, 2), "same", (1, 1), 1),
    ("same-unequal-strides-even-kernel", (2, 7, 6, 3), (4, 2, 3, 2), (2, 3), "same", (1, 1), 1),
    ("valid-s2-dilation", (2, 9, 8, 2), (3, 2, 2, 3), (2, 1), "valid", (2, 3), 1),
    ("explicit", (2, 5, 6, 2), (3, 3, 2, 3), (1, 2), ((1, 2), (0, 1)), (1, 1), 1),
    ("groups-2", (2, 6, 6, 4), (3, 3, 2, 6), (1, 1), "valid", (1, 1), 2),
    ("groups-3-same-s2", (2, 6, 7, 6), (3, 3, 2, 3), (2, 2), "same", (1, 1), 3),
    ("groups-2-dilated", (2, 7, 7, 4), (2, 2, 2, 4), (1, 1), "valid", (2, 2), 2),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", TORCH_CONV2D, ids=[c[0] for c in TORCH_CONV2D])
def test_conv2d_matches_torch(case, data_format, dtype):
    _, xs, ks, strides, padding, dilation, groups = case
    x = n(*xs) if data_format == "channels_last" else nchw(n(*xs))
    k, b = n(*ks), n(ks[-1])

    def ours(x, k, b):
        return conv.conv2d(x, k, b, strides, padding, dilation, groups, data_format)

    def theirs(x, k, b):
        xt = t_nhwc(x) if data_format == "channels_last" else x
        if padding == "same" and strides == (1, 1):
            y = F.conv2d(xt, t_weight(k), b, 1, "same", dilation, groups)
        else:
            if padding == "same":
                (pt, pb), (pl, pr) = [tf_pads(size, kk, s, d) for size, kk, s, d in
                                      zip(xt.shape[2:], ks[:2], strides, dilation)]
            elif padding == "valid":
                pt = pb = pl = pr = 0
            else:
                (pt, pb), (pl, pr) = padding
            y = F.conv2d(F.pad(xt, (pl, pr, pt, pb)), t_weight(k), b, strides, 0, dilation, groups)
        return t_back(y) if data_format == "channels_last" else y

    compare(ours, theirs, [x, k, b], dtype)


TORCH_CONV1D = [
    ("valid", (2, 9, 3), (3, 3, 4), 1, "valid", 1, 1),
    ("same-s2", (2, 9, 3), (4, 3, 2), 2, "same", 1, 1),
    ("causal-dilated", (2, 9, 2), (3, 2, 3), 1, "causal", 2, 1),
    ("groups", (2, 8, 4), (3, 2, 4), 1, "valid", 1, 2),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", TORCH_CONV1D, ids=[c[0] for c in TORCH_CONV1D])
def test_conv1d_matches_torch(case, data_format, dtype):
    _, xs, ks, stride, padding, dilation, groups = case
    x = n(*xs) if data_format == "channels_last" else np.ascontiguousarray(n(*xs).transpose(0, 2, 1))
    k, b = n(*ks), n(ks[-1])

    def theirs(x, k, b):
        xt = x.permute(0, 2, 1) if data_format == "channels_last" else x
        length = xt.shape[2]
        if padding == "same":
            pads = tf_pads(length, ks[0], stride, dilation)
        elif padding == "causal":
            pads = ((ks[0] - 1) * dilation, 0)
        else:
            pads = (0, 0)
        y = F.conv1d(F.pad(xt, pads), k.permute(2, 1, 0), b, stride, 0, dilation, groups)
        return y.permute(0, 2, 1) if data_format == "channels_last" else y

    compare(lambda x, k, b: conv.conv1d(x, k, b, stride, padding, dilation, groups, data_format),
            theirs, [x, k, b], dtype)


TORCH_TRANSPOSE = [
    # (id, x NHWC, kernel (kh, kw, filters, in), strides, padding, output_padding, dilation)
    ("valid-s1", (2, 4, 5, 3), (3, 3, 2, 3), (1, 1), "valid", None, (1, 1)),
    ("valid-s2", (2, 4, 5, 3), (3, 3, 2, 3), (2, 2), "valid", None, (1, 1)),
    ("same-s2", (2, 4, 5, 3), (3, 3, 2, 3), (2, 2), "same", None, (1, 1)),
    ("same-s2-even-kernel", (2, 4, 5, 3), (4, 2, 2, 3), (2, 2), "same", None, (1, 1)),
    ("same-unequal", (2, 4, 3, 2), (3, 3, 3, 2), (2, 3), "same", None, (1, 1)),
    ("output-padding-valid", (2, 4, 3, 2), (3, 3, 3, 2), (2, 2), "valid", (1, 0), (1, 1)),
    ("output-padding-same", (2, 4, 3, 2), (3, 3, 3, 2), (3, 2), "same", (2, 1), (1, 1)),
    ("dilated", (2, 4, 3, 2), (2, 3, 3, 2), (1, 1), "valid", None, (2, 2)),
]


def keras_deconv_length(size, k, padding, op, s, d):
    k_eff = (k - 1) * d + 1
    if op is None:
        return size * s + max(k_eff - s, 0) if padding == "valid" else size * s
    pad = k_eff // 2 if padding == "same" else 0
    return (size - 1) * s + k_eff - 2 * pad + op


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", TORCH_TRANSPOSE, ids=[c[0] for c in TORCH_TRANSPOSE])
def test_conv2d_transpose_matches_torch(case, data_format, dtype):
    _, xs, ks, strides, padding, output_padding, dilation = case
    x = n(*xs) if data_format == "channels_last" else nchw(n(*xs))
    k, b = n(*ks), n(ks[2])
    ops_ = output_padding or (None, None)
    lengths = [keras_deconv_length(size, kk, padding, op, s, d)
               for size, kk, op, s, d in zip(xs[1:3], ks[:2], ops_, strides, dilation)]

    def theirs(x, k, b):
        xt = t_nhwc(x) if data_format == "channels_last" else x
        full = F.conv_transpose2d(xt, t_weight(k), None, strides, 0, 0, 1, dilation)  # no padding, then crop
        before = [tf_pads(length, kk, s, d)[0] if padding == "same" else 0
                  for length, kk, s, d in zip(lengths, ks[:2], strides, dilation)]
        # TF's output: pixels before[i] .. before[i] + length[i] of the full result, zero past its end
        extra = [max(0, bf + length - size) for bf, length, size in zip(before, lengths, full.shape[2:])]
        full = F.pad(full, (0, extra[1], 0, extra[0])) + b[None, :, None, None]
        y = full[:, :, before[0]:before[0] + lengths[0], before[1]:before[1] + lengths[1]]
        return t_back(y) if data_format == "channels_last" else y

    compare(lambda x, k, b: conv.conv2d_transpose(x, k, b, strides, padding, output_padding, dilation, data_format),
            theirs, [x, k, b], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("strides,padding,dilation", [((1, 1), "valid", (1, 1)), ((2, 2), "same", (1, 1)),
                                                      ((1, 2), "valid", (2, 1))])
def test_depthwise_matches_torch(strides, padding, dilation, data_format, dtype):
    c, mult = 3, 2
    x = n(2, 7, 6, c) if data_format == "channels_last" else nchw(n(2, 7, 6, c))
    k, b = n(3, 3, c, mult), n(c * mult)

    def theirs(x, k, b):
        xt = t_nhwc(x) if data_format == "channels_last" else x
        if padding == "same":
            (pt, pb), (pl, pr) = [tf_pads(size, 3, s, d) for size, s, d in zip(xt.shape[2:], strides, dilation)]
            xt = F.pad(xt, (pl, pr, pt, pb))
        weight = t_weight(k.reshape(3, 3, 1, c * mult))  # output channel c * mult + m
        y = F.conv2d(xt, weight, b, strides, 0, dilation, groups=c)
        return t_back(y) if data_format == "channels_last" else y

    compare(lambda x, k, b: conv.depthwise_conv2d(x, k, b, strides, padding, dilation, data_format),
            theirs, [x, k, b], dtype)


TORCH_POOL = [
    ("2x2", (2, 6, 8, 3), (2, 2), None, "valid"),
    ("overlapping-3-s2", (2, 7, 8, 3), (3, 3), (2, 2), "valid"),
    ("same-3-s2-symmetric", (2, 7, 5, 3), (3, 3), (2, 2), "same"),
    ("same-3-s2-asymmetric", (2, 6, 8, 3), (3, 3), (2, 2), "same"),
    ("same-2x3-s1", (2, 5, 6, 2), (2, 3), (1, 1), "same"),
    ("same-2-s2-odd-size", (2, 5, 7, 2), (2, 2), None, "same"),
    ("2x2-16ch", (2, 6, 8, 16), (2, 2), None, "valid"),
    ("overlapping-3-s2-16ch", (2, 7, 8, 16), (3, 3), (2, 2), "valid"),
    ("same-3-s2-asymmetric-16ch", (2, 6, 8, 16), (3, 3), (2, 2), "same"),
]


def torch_pool_pads(shape, pool, strides, padding):
    if padding == "valid":
        return (0, 0), (0, 0)
    return [tf_pads(size, k, s) for size, k, s in zip(shape, pool, strides)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", TORCH_POOL, ids=[c[0] for c in TORCH_POOL])
def test_max_pool2d_matches_torch(case, data_format, dtype):
    _, xs, pool, strides, padding = case
    x = distinct(*xs) if data_format == "channels_last" else nchw(distinct(*xs))
    s = strides or pool

    def theirs(x):
        xt = t_nhwc(x) if data_format == "channels_last" else x
        (pt, pb), (pl, pr) = torch_pool_pads(xt.shape[2:], pool, s, padding)
        y = F.max_pool2d(F.pad(xt, (pl, pr, pt, pb), value=-np.inf), pool, s)
        return t_back(y) if data_format == "channels_last" else y

    compare(lambda x: conv.max_pool2d(x, pool, strides, padding, data_format), theirs, [x], dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("case", TORCH_POOL, ids=[c[0] for c in TORCH_POOL])
def test_avg_pool2d_matches_torch(case, data_format, dtype):
    _, xs, pool, strides, padding = case
    x = n(*xs) if data_format == "channels_last" else nchw(n(*xs))
    s = strides or pool

    def theirs(x):
        xt = t_nhwc(x) if data_format == "channels_last" else x
        (pt, pb), (pl, pr) = torch_pool_pads(xt.shape[2:], pool, s, padding)
        if pt == pb and pl == pr:  # torch's own (symmetric) padding, not counted in the mean
            y = F.avg_pool2d(xt, pool, s, (pt, pl), count_include_pad=False)
        else:  # TF's asymmetric padding: window sums over the real-pixel counts
            total = F.avg_pool2d(F.pad(xt, (pl, pr, pt, pb)), pool, s, divisor_override=1)
            ones = F.pad(torch.ones_like(xt), (pl, pr, pt, pb))
            y = total / F.avg_pool2d(ones, pool, s, divisor_override=1)
        return t_back(y) if data_format == "channels_last" else y

    compare(lambda x: conv.avg_pool2d(x, pool, strides, padding, data_format), theirs, [x], dtype)


def test_torch_oracle_cases_include_asymmetric_same_padding():
    # the 'asymmetric' cases really do pad unevenly, so the divisor path above is exercised
    assert tf_pads(6, 3, 2) == (0, 1) and tf_pads(8, 3, 2) == (0, 1)
    assert backend.floatx() == "float32"


@pytest.mark.parametrize("case", [c for c in CONV2D_CASES if "groups" not in c[0]], ids=lambda c: c[0])
def test_channel_major_and_pixel_major_columns_agree(case, monkeypatch):
    """Narrow inputs build their columns channel-major, wide ones pixel-major: both layouts give the
    same output and gradients for every padding, stride and dilation."""
    _, xs, ks, kwargs = case
    arrays = [n(3, *xs[1:]), n(*ks), n(ks[-1])]

    def run():
        x, k, b = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = conv.conv2d(x, k, b, activation="tanh", **kwargs)
        (out * out).sum().backward()
        return [out.data, x.grad, k.grad, b.grad]

    monkeypatch.setattr(conv, "DIRECT_FILTERS", 0)  # the column paths, even at stride 1
    monkeypatch.setattr(conv, "NARROW_CHANNELS", 0)
    wide = run()
    monkeypatch.setattr(conv, "NARROW_CHANNELS", 1 << 20)
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)
    for got, want in zip(run(), wide):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


DIRECT_CASES = [c for c in CONV2D_CASES if c[3].get("strides", 1) in (1, (1, 1)) and "groups" not in c[3]] + [
    # (id, x shape NHWC, kernel shape, kwargs): one filter, an odd number, the most filters, many channels
    ("one-filter", (2, 6, 5, 3), (3, 2, 3, 1), {"padding": "same"}),
    ("five-filters-dilated", (2, 7, 8, 2), (2, 3, 2, 5), {"dilation_rate": (2, 2), "padding": ((1, 0), (0, 2))}),
    ("eight-filters", (2, 5, 5, 1), (5, 5, 1, 8), {"padding": "same"}),
    ("many-channels-few-filters", (2, 5, 6, 11), (3, 3, 11, 2), {}),
    ("one-by-one", (2, 4, 5, 3), (1, 1, 3, 3), {}),
]


@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)  # the direct kernels are compiled-path only
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", DIRECT_CASES, ids=[c[0] for c in DIRECT_CASES])
def test_direct_and_column_convolutions_agree(case, dtype, activation, kernel_path, monkeypatch):
    """Stride-1 convolutions with few filters run the compiled direct kernels: the same output and
    gradients as the column-matrix path, in several cache blocks and threads."""
    from shenjing.backend import jit, parallel

    _, xs, ks, kwargs = case
    arrays = [n(5, *xs[1:]).astype(dtype), n(*ks).astype(dtype), n(ks[-1]).astype(dtype)]
    g = Tensor(n(*conv.conv2d(*arrays, **kwargs).shape).astype(dtype))
    module, calls = jit.kernels("conv"), []
    for name in ("direct_conv", "direct_conv_backward"):
        kernel = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, kernel=kernel, name=name: (calls.append(name), kernel(*a))[1])

    def run():
        x, k, b = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = conv.conv2d(x, k, b, activation=activation, **kwargs)
        (out * g).sum().backward()
        return [out.data, x.grad, k.grad, b.grad]

    monkeypatch.setattr(conv, "DIRECT_FILTERS", 0)
    columns = run()
    assert not calls
    monkeypatch.setattr(conv, "DIRECT_FILTERS", 8)
    monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)  # one sample per block
    monkeypatch.setattr(parallel, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    got = run()
    assert calls == ["direct_conv"] * 5 + ["direct_conv_backward"] * 5
    tol = 1e-11 if dtype == "float64" else 2e-5
    for a, want in zip(got, columns):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)
def test_stacked_direct_convolutions_take_a_strided_gradient(kernel_path, monkeypatch):
    """The upper convolution's input gradient is a transposed view of its channel-major planes; the lower
    one reads it as it is: the same gradients as the column path."""
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((3, 9, 8, 2)), rng.standard_normal((3, 3, 2, 4)), rng.standard_normal(4),
              rng.standard_normal((2, 3, 4, 3)), rng.standard_normal(3)]

    def run():
        x, k1, b1, k2, b2 = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        hidden = conv.conv2d(x, k1, b1, activation="tanh")
        out = conv.conv2d(hidden, k2, b2, padding="same", activation="relu")
        (out * out).sum().backward()
        return [out.data] + [t.grad for t in (x, k1, b1, k2, b2)]

    monkeypatch.setattr(conv, "DIRECT_FILTERS", 0)
    columns = run()
    monkeypatch.setattr(conv, "DIRECT_FILTERS", 8)
    for got, want in zip(run(), columns):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)
@pytest.mark.parametrize("where", ["x-inf", "x-nan", "kernel-inf", "g-nan"])
def test_direct_convolution_keeps_numpys_non_finite_values(where, kernel_path, monkeypatch):
    """An inf or NaN reaches exactly the outputs and gradients it reaches on the column path (the direct
    kernels' wide rows meet zero padding that would turn inf·0 into NaN elsewhere)."""
    rng = np.random.default_rng(8)
    x, k, b = rng.standard_normal((2, 6, 5, 2)), rng.standard_normal((3, 2, 2, 3)), rng.standard_normal(3)
    g = rng.standard_normal((2, 4, 4, 3))
    if where == "x-inf":
        x[0, 1, 0, 1] = np.inf
    elif where == "x-nan":
        x[1, 3, 4, 0] = np.nan
    elif where == "kernel-inf":
        k[0, 1, 1, 2] = np.inf
    else:
        g[0, 2, 3, 1] = np.nan

    def run():
        xt, kt, bt = [Tensor(a.copy(), requires_grad=True) for a in (x, k, b)]
        out = conv.conv2d(xt, kt, bt)
        out.backward(g)
        return [out.data, xt.grad, kt.grad, bt.grad]

    monkeypatch.setattr(conv, "DIRECT_FILTERS", 0)
    columns = run()
    monkeypatch.setattr(conv, "DIRECT_FILTERS", 8)
    for got, want in zip(run(), columns):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_direct_conv1d_agrees_with_the_columns(data_format, kernel_path, monkeypatch):
    """conv1d (a one-row image) with causal padding and dilation, in both data formats."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 11, 4) if data_format == "channels_last" else (3, 4, 11))
    arrays = [x, rng.standard_normal((3, 4, 5)), rng.standard_normal(5)]

    def run():
        xt, kt, bt = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = conv.conv1d(xt, kt, bt, padding="causal", dilation_rate=2, data_format=data_format, activation="tanh")
        (out * out).sum().backward()
        return [out.data, xt.grad, kt.grad, bt.grad]

    monkeypatch.setattr(conv, "DIRECT_FILTERS", 0)
    columns = run()
    monkeypatch.setattr(conv, "DIRECT_FILTERS", 8)
    for got, want in zip(run(), columns):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


MICRO_CASES = [
    # (id, x shape NHWC, kernel shape, kwargs): float32, filters a multiple of 16
    ("valid", (3, 7, 8, 5), (3, 3, 5, 64), {}),
    ("same-s2", (3, 7, 8, 3), (3, 2, 3, 16), {"padding": "same", "strides": 2}),
    ("dilated", (2, 9, 8, 4), (2, 3, 4, 48), {"dilation_rate": (2, 2)}),
    ("dilated-rows", (2, 9, 8, 4), (3, 2, 4, 32), {"dilation_rate": (2, 1), "padding": ((1, 0), (0, 2))}),
    ("one-channel", (2, 9, 10, 1), (3, 3, 1, 80), {}),
    ("wide", (2, 5, 6, 7), (2, 2, 7, 144), {"padding": "same"}),
    ("channels-first", (2, 6, 7, 3), (3, 3, 3, 32), {"data_format": "channels_first"}),
    ("16-channels", (3, 6, 7, 16), (3, 2, 16, 32), {}),
    ("32-channels-same", (2, 5, 6, 32), (3, 3, 32, 16), {"padding": "same"}),
    ("32-channels-explicit", (2, 5, 6, 32), (2, 3, 32, 16), {"padding": ((1, 0), (2, 1))}),
    ("32-channels-first", (2, 5, 6, 32), (3, 3, 32, 64), {"padding": "same", "data_format": "channels_first"}),
    ("8-channels-s2", (3, 9, 8, 8), (3, 3, 8, 96), {"strides": 2}),
    ("8-channels-dilated", (2, 9, 10, 8), (3, 2, 8, 112), {"dilation_rate": (2, 3), "padding": "same"}),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (NaN and infinity in the input)
@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)  # llvmlite comes with numba
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("blocks", [1, None], ids=["sample-blocks", "blocks"])
@pytest.mark.parametrize("case", MICRO_CASES, ids=[c[0] for c in MICRO_CASES])
def test_register_blocked_and_column_convolutions_agree(case, activation, with_bias, blocks, kernel_path,
                                                        monkeypatch):
    """float32 convolutions with a multiple of 16 filters run the register-blocked kernel
    (``kernels.microkernel``, forced on where the CPU lacks AVX-512: slower there, not wrong) for the
    output, for the kernel gradient of more than NARROW_CHANNELS channels, and for the input gradient
    with stride 1, no dilation and a multiple of 16 channels: the numbers of the column path (NaN and
    infinity where it has them), in blocks of one sample on two threads and in one block of them all; the
    fused convolution + max pooling of inference pools the same values. A float64 output gradient is
    taken as float32."""
    from shenjing.backend import jit, parallel

    module = jit.kernels("microkernel")
    monkeypatch.setitem(module._state, "suited", True)
    calls = []
    kernel = module.window_product
    monkeypatch.setattr(module, "window_product", lambda *a, **k: (calls.append(1), kernel(*a, **k))[1])
    _, xs, ks, kwargs = case
    rng = np.random.default_rng(9)
    x = rng.standard_normal(xs).astype(np.float32)
    x[0, 1, 2, 0], x[-1, -1, -1, -1] = np.nan, np.inf
    if kwargs.get("data_format") == "channels_first":
        x = nchw(x)
    k, b = rng.standard_normal(ks).astype(np.float32), rng.standard_normal(ks[-1]).astype(np.float32)
    out_shape = conv.conv2d(x, k, b, **kwargs).shape
    g = rng.standard_normal(out_shape)  # float64

    def run():
        xt, kt = Tensor(x.copy(), requires_grad=True), Tensor(k.copy(), requires_grad=True)
        bt = Tensor(b.copy(), requires_grad=True) if with_bias else None
        out = conv.conv2d(xt, kt, bt, activation=activation, **kwargs)
        out.backward(g)
        pooled = []
        if "data_format" not in kwargs:  # (the fused op takes channels-last input)
            with no_grad():
                pooled = [conv.conv2d_max_pool2d(x, k, bt, activation=activation, **kwargs).data]
        return [out.data, *pooled, xt.grad, kt.grad] + ([bt.grad] if with_bias else [])

    plan = conv._microkernel_plan
    monkeypatch.setattr(conv, "_microkernel_plan", lambda *a: None)
    calls.clear()
    columns = run()
    monkeypatch.setattr(conv, "_microkernel_plan", plan)
    assert not calls
    if blocks == 1:
        monkeypatch.setattr(backend, "CACHE_BLOCK_BYTES", 1)  # one sample per block
        monkeypatch.setattr(parallel, "MIN_SPLIT_BYTES", 0)
        monkeypatch.setenv("SHENJING_NUM_THREADS", "2")
    got = run()
    pooled = "data_format" not in kwargs
    input_grad = ks[2] % 16 == 0 and "strides" not in kwargs and "dilation_rate" not in kwargs
    kernel_grad = ks[2] > conv.NARROW_CHANNELS  # (narrow inputs keep their channel-major columns)
    # a call per block and product
    assert len(calls) == (1 + pooled + kernel_grad + input_grad) * (len(x) if blocks == 1 else 1)
    for a, want in zip(got, columns):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(a), np.isnan(want))
        np.testing.assert_allclose(a, want, rtol=2e-5, atol=2e-5)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (inf · 0)
@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)
def test_register_blocked_input_gradient_leaves_an_infinite_kernel_to_the_columns(kernel_path, monkeypatch):
    """The blocked input gradient reads zeros around g, which an infinite weight turns into NaN where the
    column path adds nothing (its input gradient here: infinities, no NaN): with a non-finite kernel the
    columns give the input gradient."""
    from shenjing.backend import jit

    module = jit.kernels("microkernel")
    monkeypatch.setitem(module._state, "suited", True)
    rng = np.random.default_rng(10)
    x, k = rng.standard_normal((2, 5, 6, 16)).astype(np.float32), rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
    k[0, 0, 3, 5] = np.inf
    g = rng.standard_normal((2, 3, 4, 16)).astype(np.float32)

    def run():
        xt, kt = Tensor(x.copy(), requires_grad=True), Tensor(k.copy(), requires_grad=True)
        conv.conv2d(xt, kt).backward(g)
        return xt.grad

    plan = conv._microkernel_plan
    monkeypatch.setattr(conv, "_microkernel_plan", lambda *a: None)
    columns = run()
    monkeypatch.setattr(conv, "_microkernel_plan", plan)
    got = run()
    assert np.isinf(columns).any() and not np.isnan(columns).any()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(columns))
    np.testing.assert_allclose(got, columns, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("kernel_path", ["compiled"], indirect=True)
def test_a_register_blocked_kernel_that_cannot_compile_leaves_the_columns(kernel_path, monkeypatch):
    """An llvmlite that cannot build the kernels (before 0.44: no new pass manager) costs nothing but
    their speed: the convolution takes the column path, and the compilation is not tried again. (Where
    only the LSTM's kernels fail, the others are built without them: the next test.)"""
    from shenjing.backend import jit

    module = jit.kernels("microkernel")
    monkeypatch.setitem(module._state, "suited", True)
    monkeypatch.setitem(module._state, "functions", {})
    monkeypatch.setitem(module._state, "failed", False)
    tries = []

    def old_llvmlite(lstm):
        tries.append(lstm)
        raise AttributeError("module 'llvmlite.binding' has no attribute 'create_pass_builder'")

    monkeypatch.setattr(module, "_compile", old_llvmlite)
    rng = np.random.default_rng(11)
    x, k = rng.standard_normal((2, 6, 5, 8)).astype(np.float32), rng.standard_normal((3, 3, 8, 16)).astype(np.float32)
    for _ in range(2):
        xt, kt = Tensor(x, requires_grad=True), Tensor(k, requires_grad=True)
        out = conv.conv2d(xt, kt)
        out.sum().backward()
    assert tries == [True, False]  # with the LSTM's kernels, then without them; never again
    want = conv.conv2d(x.astype(np.float64), k.astype(np.float64)).data
    np.testing.assert_allclose(out.data, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="could not be compiled"):
        module.window_product(x, np.zeros(1, np.int64), np.zeros(1, np.int64), 1, k.reshape(-1, 16)[:1],
                              np.empty((2, 1, 16), np.float32))


def test_kernels_are_built_without_the_lstms_where_those_cannot_be():
    """A failure that only the LSTM's kernels meet (no ``sched_yield`` to call, say) leaves the
    convolution's kernels built: ``prepare`` is true and ``lstm_ready`` false."""
    from shenjing.backend import jit

    jit.set_enabled(True)
    module = jit.kernels("microkernel")
    saved = dict(module._state)
    compile_ = module._compile

    def no_lstm(lstm):
        if lstm:
            raise OSError("no sched_yield")
        compile_(lstm)

    try:
        module._state.update(functions={}, failed=False)
        module._compile = no_lstm
        assert module.prepare() and not module.lstm_ready()
        assert set(module._state["functions"]) == {"contiguous", "strided"}
    finally:
        module._compile = compile_
        module._state.clear()
        module._state.update(saved)



@pytest.mark.parametrize("channels", [3, 16])
def test_a_convolution_under_no_grad_prepares_no_gradient(monkeypatch, channels):
    """Under no_grad a convolution of weights that require gradients records nothing and asks its forward for no
    gradient: nothing is kept or copied for a backward that cannot come (a 3-channel input's channel-major copy
    cost 18% of an RGB Conv2D's inference), and the output is grad mode's."""
    x, k, b = n(4, 9, 9, channels), n(3, 3, channels, 16), n(16)
    seen = []
    forward = conv._conv_forward
    monkeypatch.setattr(conv, "_conv_forward", lambda *args: seen.append(args[7]) or forward(*args))
    tensors = [Tensor(a, requires_grad=True) for a in (x, k, b)]
    want = conv.conv2d(*tensors, activation="relu").data
    with no_grad():
        out = conv.conv2d(*tensors, activation="relu")
    assert seen == [(True, True, True), (False, False, False)]
    assert not out.requires_grad and out._backward is None
    np.testing.assert_array_equal(out.data, want)
