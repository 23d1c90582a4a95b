"""ImageDataGenerator: transforms with known answers, the resampler against scipy.ndimage, normalisations,
flow() batching, and fit / evaluate / predict on a tiny model."""

import math
import time
import warnings

import numpy as np
import pytest

import shenjing
from shenjing.preprocessing.image import (
    ImageDataGenerator,
    Iterator,
    NumpyArrayIterator,
    affine_matrices,
    apply_affine_transform,
    apply_brightness_shift,
    apply_channel_shift,
    flip_axis,
    random_rotation,
    resample,
)
from shenjing.utils.data_utils import Sequence


def ramp(h=5, w=5, c=1):
    """A channels-last image whose every pixel is distinct: value = 100 * channel + w * row + col."""
    r, cc, ch = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    return (w * r + cc + 100 * ch).astype("float32")


def gen(**kwargs):
    kwargs.setdefault("interpolation_order", 0)
    return ImageDataGenerator(**kwargs)


# ---------------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("order", [0, 1])
def test_flips_are_exact(order):
    x = ramp(4, 6, 2)
    g = gen(interpolation_order=order)
    np.testing.assert_array_equal(g.apply_transform(x, {"flip_horizontal": True}), x[:, ::-1])
    np.testing.assert_array_equal(g.apply_transform(x, {"flip_vertical": True}), x[::-1])
    np.testing.assert_array_equal(g.apply_transform(x, {"flip_horizontal": True, "flip_vertical": True}),
                                  x[::-1, ::-1])
    np.testing.assert_array_equal(flip_axis(x, 1), x[:, ::-1])


@pytest.mark.parametrize("order", [0, 1])
def test_rotation_by_right_angles(order):
    g = gen(interpolation_order=order)
    x = ramp(5, 5)
    # theta > 0 turns the picture clockwise, as Keras does (np.rot90 with k=-1)
    np.testing.assert_allclose(g.apply_transform(x, {"theta": 90})[..., 0], np.rot90(x[..., 0], -1), atol=1e-5)
    np.testing.assert_allclose(g.apply_transform(x, {"theta": -90})[..., 0], np.rot90(x[..., 0], 1), atol=1e-5)
    np.testing.assert_allclose(g.apply_transform(x, {"theta": 180}), x[::-1, ::-1], atol=1e-5)
    # a pattern symmetric under quarter turns maps onto itself (even size: the centre is between pixels)
    cross = np.zeros((6, 6, 1), "float32")
    cross[1:5, 2:4] = cross[2:4, 1:5] = 1
    cross[0, 0] = cross[0, 5] = cross[5, 0] = cross[5, 5] = 2
    np.testing.assert_allclose(g.apply_transform(cross, {"theta": 90}), cross, atol=1e-5)
    np.testing.assert_allclose(g.apply_transform(cross, {"theta": 270}), cross, atol=1e-5)


@pytest.mark.parametrize("order", [0, 1])
def test_integer_shifts_move_pixels_exactly(order):
    x = ramp(5, 6)
    g = gen(fill_mode="constant", cval=-1.0, interpolation_order=order)
    up = g.apply_transform(x, {"tx": 2})  # tx: rows; positive moves the content up
    np.testing.assert_array_equal(up[:3], x[2:])
    assert (up[3:] == -1).all()
    right = g.apply_transform(x, {"ty": -3})  # ty: columns; negative moves the content right
    np.testing.assert_array_equal(right[:, 3:], x[:, :3])
    assert (right[:, :3] == -1).all()


@pytest.mark.parametrize("mode, expected_cols", [
    ("nearest", [2, 3, 4, 5, 5, 5]),
    ("wrap", [2, 3, 4, 5, 0, 1]),
    ("reflect", [2, 3, 4, 5, 5, 4]),
])
def test_fill_modes(mode, expected_cols):
    x = ramp(3, 6)
    out = gen(fill_mode=mode).apply_transform(x, {"ty": 2})
    np.testing.assert_array_equal(out, x[:, expected_cols])
    out = gen(fill_mode=mode, interpolation_order=1).apply_transform(x, {"ty": 2})
    np.testing.assert_array_equal(out, x[:, expected_cols])


def test_zoom_by_two_is_the_upsampled_centre_crop():
    x = ramp(8, 8)
    out = gen().apply_transform(x, {"zx": 0.5, "zy": 0.5})  # a factor below 1 magnifies, as in Keras
    expected = np.repeat(np.repeat(x[2:6, 2:6], 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(out, expected)
    # zooming out by 2 with a constant fill: every other pixel, framed by cval
    out = gen(fill_mode="constant", cval=-1).apply_transform(ramp(9, 9), {"zx": 2, "zy": 2})
    np.testing.assert_array_equal(out[2:7, 2:7], ramp(9, 9)[::2, ::2])
    assert (out[:2] == -1).all() and (out[:, 7:] == -1).all()


def test_shear_of_a_line():
    x = np.zeros((7, 7, 1), "float32")
    x[3, :, 0] = np.arange(1, 8)  # a horizontal line through the centre
    angle = math.degrees(math.asin(0.4))
    out = gen(fill_mode="constant")._apply_batch(x[None], {"shear": angle}, "channels_last")[0, ..., 0]
    # output (r, c) reads input (r - 0.4 c, cos(angle) c) about the centre: the line tilts with slope 0.4
    for c in range(-3, 4):
        column = out[:, c + 3]
        row = 3 + round(0.4 * c)
        assert np.count_nonzero(column) == 1 and column[row] != 0
        assert column[row] == x[3, 3 + round(math.cos(math.radians(angle)) * c), 0]
    # a vertical line through the centre is left where it is
    v = np.zeros((7, 7, 1), "float32")
    v[:, 3] = 5
    np.testing.assert_array_equal(gen().apply_transform(v, {"shear": 30}), v)


def test_channel_shift_and_brightness():
    x = ramp(3, 3, 2)  # values 0..8 and 100..108
    out = apply_channel_shift(x, 5.0, channel_axis=2)
    np.testing.assert_array_equal(out, np.clip(x + 5, 0, 108))
    g = gen(channel_shift_range=1)
    np.testing.assert_array_equal(g.apply_transform(x, {"channel_shift_intensity": -50.0}), np.clip(x - 50, 0, 108))
    img = np.array([[[0.0], [100.0]], [[200.0], [250.0]]], "float32")
    np.testing.assert_allclose(apply_brightness_shift(img, 1.2), np.clip(img * 1.2, 0, 255))
    np.testing.assert_allclose(gen().apply_transform(img, {"brightness": 0.5}), img * 0.5)
    wide = np.array([[[-1.0], [1.0]]], "float32")  # outside [0, 255]: mapped there and back (Keras)
    np.testing.assert_allclose(apply_brightness_shift(wide, 0.5), [[[-1.0], [0.0]]], atol=1e-6)


# -------------------------------------------------------------------------------- against scipy.ndimage
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode, scipy_mode", [("constant", "constant"), ("nearest", "nearest"),
                                              ("reflect", "reflect"), ("wrap", "grid-wrap")])
def test_resampler_matches_scipy(order, mode, scipy_mode):
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    x = rng.random((4, 7, 9, 2))
    m = np.tile(np.eye(3), (4, 1, 1))
    m[:, :2, :2] += rng.normal(0, 0.4, (4, 2, 2))
    m[:, :2, 2] = rng.normal(0, 3, (4, 2))
    out = resample(x, m, mode, cval=-0.5, order=order)
    for n in range(4):
        for c in range(2):
            ref = ndimage.affine_transform(x[n, ..., c], m[n, :2, :2], m[n, :2, 2], order=order, mode=scipy_mode,
                                           cval=-0.5)
            np.testing.assert_allclose(out[n, ..., c], ref, atol=1e-12)


def test_generator_transform_matches_keras_composition_in_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(1)
    x = rng.random((9, 11, 3)).astype("float64")
    p = {"theta": 17.0, "tx": 1.5, "ty": -2.25, "shear": 8.0, "zx": 0.9, "zy": 1.15}
    th, sh = np.deg2rad(p["theta"]), np.deg2rad(p["shear"])
    rotation = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    shift = np.array([[1, 0, p["tx"]], [0, 1, p["ty"]], [0, 0, 1]])
    shear = np.array([[1, -np.sin(sh), 0], [0, np.cos(sh), 0], [0, 0, 1]])
    zoom = np.diag([p["zx"], p["zy"], 1.0])
    o_r, o_c = 9 / 2 - 0.5, 11 / 2 - 0.5  # Keras's transform_matrix_offset_center
    offset = np.array([[1, 0, o_r], [0, 1, o_c], [0, 0, 1]])
    reset = np.array([[1, 0, -o_r], [0, 1, -o_c], [0, 0, 1]])
    t = offset @ rotation @ shift @ shear @ zoom @ reset
    expected = np.stack([ndimage.affine_transform(x[..., c], t[:2, :2], t[:2, 2], order=1, mode="nearest")
                         for c in range(3)], axis=-1)
    out = ImageDataGenerator(dtype="float64").apply_transform(x, p)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    out = apply_affine_transform(x, row_axis=0, col_axis=1, channel_axis=2, **p)
    np.testing.assert_allclose(out, expected.astype("float32"), atol=1e-5)


def test_one_matrix_per_image_in_one_call():
    x = np.stack([ramp(5, 5)] * 3)
    m = affine_matrices(5, 5, theta=[0, 90, 180], flip_horizontal=[False, False, True])
    out = resample(x, m, order=0)
    np.testing.assert_array_equal(out[0], x[0])
    np.testing.assert_array_equal(out[1, ..., 0], np.rot90(x[1, ..., 0], -1))
    np.testing.assert_array_equal(out[2], x[2][::-1])  # rotated by 180 then mirrored left-right


def test_a_batch_is_transformed_fast():
    g = ImageDataGenerator(rotation_range=20, width_shift_range=0.1, height_shift_range=0.1, shear_range=5,
                           zoom_range=0.1, horizontal_flip=True)
    x = np.random.default_rng(0).random((512, 28, 28, 1)).astype("float32")
    g.random_transform(x[:2], seed=0)
    start = time.perf_counter()
    out = g.random_transform(x, seed=0)
    assert out.shape == x.shape and out.dtype == np.float32
    assert time.perf_counter() - start < 2.0  # vectorised: ~0.1 s; a loop per image would be far slower


# ---------------------------------------------------------------------------------- random parameters
def test_random_parameters_and_seeds():
    g = ImageDataGenerator(rotation_range=30, width_shift_range=0.2, height_shift_range=3, shear_range=10,
                           zoom_range=[0.8, 1.2], channel_shift_range=4, brightness_range=(0.5, 1.5),
                           horizontal_flip=True)
    p = g.get_random_transform((10, 20, 1), seed=3)
    assert set(p) == {"theta", "tx", "ty", "shear", "zx", "zy", "flip_horizontal", "flip_vertical",
                      "channel_shift_intensity", "brightness"}
    assert p == g.get_random_transform((10, 20, 1), seed=3)
    assert -30 <= p["theta"] <= 30 and -4 <= p["ty"] <= 4 and 0.8 <= p["zx"] <= 1.2 and 0.5 <= p["brightness"] <= 1.5
    assert p["flip_vertical"] is False
    draws = g._draw(2000, (2000, 10, 20, 1), np.random.default_rng(0), "channels_last")
    assert set(np.unique(draws["tx"]).tolist()) == {-2, -1, 0, 1, 2}  # int k: whole pixels in (-k, k)
    assert np.abs(draws["ty"]).max() <= 0.2 * 20 and np.abs(draws["ty"]).max() > 0.15 * 20  # fraction of the width
    assert 0.4 < draws["flip_horizontal"].mean() < 0.6
    listed = ImageDataGenerator(width_shift_range=[2, 5])._draw(500, (500, 8, 8, 1), np.random.default_rng(0),
                                                                 "channels_last")
    assert set(np.unique(listed["ty"]).tolist()) == {-5, -2, 2, 5}
    x = ramp(10, 20)
    np.testing.assert_array_equal(g.random_transform(x, seed=7), g.random_transform(x, seed=7))
    shenjing.utils.set_random_seed(5)
    a = random_rotation(ramp(6, 6, 1).transpose(2, 0, 1), 45)
    shenjing.utils.set_random_seed(5)
    np.testing.assert_array_equal(a, random_rotation(ramp(6, 6, 1).transpose(2, 0, 1), 45))


def test_channels_first_and_last_agree():
    x = np.random.default_rng(0).random((6, 9, 8, 3)).astype("float32")
    kwargs = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.1, zoom_range=0.2, shear_range=10,
                  horizontal_flip=True, vertical_flip=True, fill_mode="reflect")
    last = ImageDataGenerator(data_format="channels_last", **kwargs).random_transform(x, seed=4)
    first = ImageDataGenerator(data_format="channels_first", **kwargs).random_transform(x.transpose(0, 3, 1, 2),
                                                                                        seed=4)
    np.testing.assert_allclose(first.transpose(0, 2, 3, 1), last, atol=1e-6)
    square = x[0, :8, :8]
    single = ImageDataGenerator(data_format="channels_first").apply_transform(square.transpose(2, 0, 1),
                                                                              {"theta": 90})
    np.testing.assert_allclose(single.transpose(1, 2, 0), np.rot90(square, -1, axes=(0, 1)), atol=1e-5)
    shenjing.backend.set_image_data_format("channels_first")
    assert ImageDataGenerator().data_format == "channels_first"


# -------------------------------------------------------------------------------------- normalisation
def test_rescale_and_preprocessing_function_order():
    x = np.arange(2 * 2 * 2 * 1, dtype="float32").reshape(2, 2, 2, 1)
    seen = []

    def plus_one(image):
        seen.append(image.shape)
        return image + 1

    g = ImageDataGenerator(rescale=0.5, preprocessing_function=plus_one)
    np.testing.assert_allclose(g.standardize(x), (x + 1) * 0.5)  # the function runs first, on one image at a time
    assert seen == [(2, 2, 1), (2, 2, 1)]
    np.testing.assert_allclose(g.standardize(x[0]), (x[0] + 1) * 0.5)
    batch = g.flow(x, shuffle=False, batch_size=2)[0]
    np.testing.assert_allclose(batch, (x + 1) * 0.5)
    assert ImageDataGenerator(rescale=1 / 255).standardize(np.full((1, 2, 2, 1), 255, np.uint8)).dtype == np.float32


def test_samplewise_normalisation():
    x = np.random.default_rng(0).normal(3, 2, (5, 6, 6, 3)).astype("float32")
    out = ImageDataGenerator(samplewise_center=True, samplewise_std_normalization=True).standardize(x)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-4)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_featurewise_normalisation(data_format):
    rng = np.random.default_rng(0)
    x = (rng.normal(0, 1, (200, 5, 4, 3)) * [1, 5, 10] + [0, 50, -20]).astype("float32")
    axes = (0, 1, 2)
    if data_format == "channels_first":
        x, axes = x.transpose(0, 3, 1, 2), (0, 2, 3)
    g = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True, data_format=data_format)
    g.fit(x)
    assert g.mean.shape == ((1, 1, 3) if data_format == "channels_last" else (3, 1, 1))
    out = g.standardize(x)
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=axes), 1, atol=1e-4)
    it = g.flow(x, batch_size=64, shuffle=False)
    flowed = np.concatenate([it[i] for i in range(len(it))])
    np.testing.assert_allclose(flowed, out, atol=1e-6)


def test_zca_whitening():
    rng = np.random.default_rng(0)
    mix = rng.normal(0, 1, (16, 16))
    x = (rng.normal(0, 1, (4000, 16)) @ mix + 3).reshape(-1, 4, 4, 1).astype("float32")
    with pytest.warns(UserWarning, match="featurewise_center"):
        g = ImageDataGenerator(zca_whitening=True, zca_epsilon=1e-8)
    g.fit(x)
    assert g.principal_components is g.zca_whitening_matrix and g.zca_whitening_matrix.shape == (16, 16)
    np.testing.assert_allclose(g.zca_whitening_matrix, g.zca_whitening_matrix.T, atol=1e-4)  # ZCA is symmetric
    np.testing.assert_allclose(g.mean.ravel(), x.mean(), rtol=1e-5)  # centred per channel, as in Keras
    white = g.standardize(x).reshape(len(x), -1).astype("float64")
    # the second moments of the (channel-centred) data become the identity
    np.testing.assert_allclose(white.T @ white / len(white), np.eye(16), atol=2e-3)


def test_fit_with_augmentation_and_warnings_before_fit():
    x = np.random.default_rng(0).random((20, 6, 6, 1)).astype("float32")
    g = ImageDataGenerator(featurewise_center=True, rotation_range=30)
    with pytest.warns(UserWarning, match="has not been fit"):
        g.standardize(x)
    g.fit(x, augment=True, rounds=3, seed=1)
    first = g.mean.copy()
    g.fit(x, augment=True, rounds=3, seed=1)
    np.testing.assert_array_equal(g.mean, first)
    with pytest.raises(ValueError, match="rank 4"):
        g.fit(x[0])


# ----------------------------------------------------------------------------------------------- flow
def _indexed(n=23, size=4):
    """Images whose pixels all equal their index (a constant image survives any transform with 'nearest' fill)."""
    x = np.broadcast_to(np.arange(n, dtype="float32")[:, None, None, None], (n, size, size, 1)).copy()
    return x, np.arange(n)


def test_flow_batches_shapes_and_label_alignment():
    x, y = _indexed()
    g = ImageDataGenerator(rotation_range=30, width_shift_range=0.2, zoom_range=0.2, horizontal_flip=True)
    it = g.flow(x, y, batch_size=5, seed=3)
    assert isinstance(it, NumpyArrayIterator) and isinstance(it, Iterator) and isinstance(it, Sequence)
    assert len(it) == 5
    seen = []
    for i in range(len(it)):
        bx, by = it[i]
        assert bx.shape == ((5,) if i < 4 else (3,)) + (4, 4, 1) and bx.dtype == np.float32
        np.testing.assert_allclose(bx[:, 0, 0, 0], by, atol=1e-4)  # every image still carries its label
        np.testing.assert_allclose(bx.min(axis=(1, 2, 3)), bx.max(axis=(1, 2, 3)), atol=1e-4)
        seen.extend(by.tolist())
    assert sorted(seen) == list(range(23)) and seen != list(range(23))  # all samples, shuffled
    with pytest.raises(IndexError, match="batch 5"):
        it[5]


def test_flow_seed_reproducibility_and_epochs():
    x, y = _indexed(12)
    x = x + np.random.default_rng(0).random(x.shape).astype("float32")
    g = ImageDataGenerator(rotation_range=45, horizontal_flip=True)

    def run(seed):
        it = g.flow(x, y, batch_size=4, seed=seed)
        out = [it[i] for i in range(len(it))]
        it.on_epoch_end()
        return out, [it[i] for i in range(len(it))]

    (a1, a2), (b1, b2) = run(7), run(7)
    for u, v in zip(a1 + a2, b1 + b2):
        np.testing.assert_array_equal(u[0], v[0])
        np.testing.assert_array_equal(u[1], v[1])
    order1 = np.concatenate([b[1] for b in a1])
    order2 = np.concatenate([b[1] for b in a2])
    assert sorted(order1) == sorted(order2) == list(range(12)) and not np.array_equal(order1, order2)
    c1, _ = run(8)
    assert not np.array_equal(np.concatenate([b[1] for b in c1]), order1)
    plain = ImageDataGenerator().flow(x, y, batch_size=5, shuffle=False)
    assert np.concatenate([plain[i][1] for i in range(len(plain))]).tolist() == list(range(12))


def test_flow_is_an_endless_iterator():
    x, y = _indexed(10)
    it = ImageDataGenerator().flow(x, y, batch_size=4, seed=0)
    assert iter(it) is it
    labels = [next(it)[1] for _ in range(6)]  # two epochs of 3 batches
    assert [len(b) for b in labels] == [4, 4, 2, 4, 4, 2]
    assert sorted(np.concatenate(labels[:3])) == sorted(np.concatenate(labels[3:])) == list(range(10))
    assert it.next()[0].shape == (4, 4, 4, 1)


def test_flow_sample_weight_misc_inputs_and_no_labels():
    x, y = _indexed(6)
    sw = np.linspace(0, 1, 6).astype("float32")
    bx, by, bw = ImageDataGenerator().flow(x, y, sample_weight=sw, batch_size=6, shuffle=True, seed=0)[0]
    np.testing.assert_allclose(bw, sw[by])
    extra = np.arange(6) * 10
    (images, misc), labels = ImageDataGenerator().flow((x, extra), y, batch_size=3, seed=1)[1]
    np.testing.assert_array_equal(misc, labels * 10)
    np.testing.assert_array_equal(images[:, 0, 0, 0], labels)
    only_x = ImageDataGenerator().flow(x, batch_size=4, shuffle=False)[0]
    assert only_x.shape == (4, 4, 4, 1)


def test_validation_split_subsets():
    x, y = _indexed(10)
    y = y % 2
    g = ImageDataGenerator(validation_split=0.3)
    val = g.flow(x, y, batch_size=10, shuffle=False, subset="validation")
    train = g.flow(x, y, batch_size=10, shuffle=False, subset="training")
    assert val.n == 3 and train.n == 7
    np.testing.assert_array_equal(val[0][0][:, 0, 0, 0], [0, 1, 2])  # validation is the first samples (Keras)
    np.testing.assert_array_equal(train[0][0][:, 0, 0, 0], np.arange(3, 10))
    with pytest.raises(ValueError, match="different classes"):
        g.flow(x, np.arange(10) >= 3, subset="training")
    assert g.flow(x, np.arange(10) >= 3, subset="training", ignore_class_split=True).n == 7
    with pytest.raises(ValueError, match="subset must be"):
        g.flow(x, y, subset="test")
    with pytest.raises(ValueError, match="is empty"):
        ImageDataGenerator().flow(x, y, subset="validation")


def test_argument_errors():
    x, y = _indexed(4, size=5)
    with pytest.raises(ValueError, match="rank 4"):
        ImageDataGenerator().flow(x[0])
    with pytest.raises(ValueError, match="same length"):
        ImageDataGenerator().flow(x, y[:3])
    with pytest.raises(ValueError, match="batch_size"):
        ImageDataGenerator().flow(x, y, batch_size=0)
    with pytest.raises(ValueError, match="zoom_range"):
        ImageDataGenerator(zoom_range=(1, 2, 3))
    with pytest.raises(ValueError, match="fill_mode"):
        ImageDataGenerator(fill_mode="mirror")
    with pytest.raises(ValueError, match="data_format"):
        ImageDataGenerator(data_format="nhwc")
    with pytest.raises(ValueError, match="validation_split"):
        ImageDataGenerator(validation_split=1.0)
    with pytest.raises(ValueError, match="brightness_range"):
        ImageDataGenerator(brightness_range=0.5)
    with pytest.raises(ValueError, match="width_shift_range"):
        ImageDataGenerator(width_shift_range="wide")
    with pytest.raises(NotImplementedError, match="flow_from_directory"):
        ImageDataGenerator().flow_from_directory("images/")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageDataGenerator().flow(x, y)  # 1 channel: no warning
    with pytest.warns(UserWarning, match="channels"):
        ImageDataGenerator(data_format="channels_first").flow(x, y)


# ---------------------------------------------------------------------------------------- with a model
def _tiny_model():
    model = shenjing.models.Sequential([shenjing.layers.Flatten(input_shape=(8, 8, 1)),
                                        shenjing.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_fit_evaluate_predict_with_flow():
    rng = np.random.default_rng(0)
    x = rng.random((70, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, 70)
    model = _tiny_model()
    datagen = ImageDataGenerator(rotation_range=10, width_shift_range=0.1, height_shift_range=0.1,
                                 horizontal_flip=True)
    history = model.fit(datagen.flow(x, y, batch_size=32), steps_per_epoch=3, epochs=1, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    plain = ImageDataGenerator()
    loss, accuracy = model.evaluate(plain.flow(x, y, batch_size=32, shuffle=False), verbose=0)
    expected_loss, expected_accuracy = model.evaluate(x, y, batch_size=32, verbose=0)
    assert loss == pytest.approx(expected_loss, rel=1e-5) and accuracy == pytest.approx(expected_accuracy)
    predictions = model.predict(plain.flow(x, batch_size=32, shuffle=False))
    assert predictions.shape == (70, 10)
    np.testing.assert_allclose(predictions, model.predict(x), rtol=1e-5, atol=1e-6)
    # a validation generator, and more steps than batches (the Sequence wraps around)
    history = model.fit(datagen.flow(x, y, batch_size=32), steps_per_epoch=5, epochs=2, verbose=0,
                        validation_data=plain.flow(x, y, batch_size=32, shuffle=False))
    assert len(history.history["val_loss"]) == 2
