"""Image preprocessing and real-time data augmentation (Keras's ``keras.preprocessing.image``).

``ImageDataGenerator`` draws random transformations and applies them to a whole batch at once: one
3x3 affine matrix per image (rotation, shifts, shear, zoom and the flips folded in), then one vectorised
inverse-mapping resampler for the batch (each output pixel looks up where it comes from in its input
image; nearest or bilinear interpolation; fill modes ``constant``, ``nearest``, ``reflect``, ``wrap``).
No Python loop runs per pixel or per image, except to call a user's ``preprocessing_function``, which
Keras defines as taking one image.

Geometry (as in Keras): the matrix maps output coordinates ``(row, col)`` to input coordinates, about the
image centre ``((h - 1) / 2, (w - 1) / 2)``. Hence ``theta > 0`` turns the picture clockwise as displayed,
a positive shift ``tx`` (rows) / ``ty`` (columns) moves the content up / left, and a zoom factor below 1
magnifies (``zx = zy = 0.5`` shows the central half at twice the size). ``tx`` is the *height* shift and
``ty`` the *width* shift, Keras's naming.

Randomness comes from the backend's generator ``B.rng()`` (so ``set_random_seed`` makes runs
reproducible), or from a generator seeded with the ``seed`` the caller gives.
"""

from __future__ import annotations

import math
import threading
import warnings

from .. import backend as B
from ..utils.data_utils import Sequence

__all__ = ["ImageDataGenerator", "Iterator", "NumpyArrayIterator", "apply_affine_transform", "apply_channel_shift",
           "apply_brightness_shift", "flip_axis", "random_rotation", "random_shift", "random_shear", "random_zoom",
           "random_channel_shift", "random_brightness"]

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
_SNAP = 1e-6  # coordinates this close to an integer are treated as exact (keeps nearest/bilinear exact)


# ------------------------------------------------------------------------------------------------ helpers
def _generator(seed=None):
    """The global host generator if ``seed`` is None, else one seeded with ``seed``."""
    return B.generator(seed)


def _as_float(x, dtype):
    x = B.asarray(x)
    return x.astype(dtype) if x.dtype != dtype else x


def _axes(data_format: str):
    """(channel, row, col) axes of a single image (rank 3)."""
    return (0, 1, 2) if data_format == "channels_first" else (2, 0, 1)


def _stack_matrices(rows):
    """A batch of 3x3 matrices from nested rows of (n,) arrays."""
    xp = B.xp
    return xp.stack([xp.stack(list(r), axis=-1) for r in rows], axis=-2)


def affine_matrices(h: int, w: int, theta=0.0, tx=0.0, ty=0.0, shear=0.0, zx=1.0, zy=1.0, flip_horizontal=False,
                    flip_vertical=False, n: int | None = None):
    """The (n, 3, 3) matrices mapping output ``(row, col, 1)`` to input coordinates, one per image.

    Each argument is a scalar or an (n,) array: ``theta``/``shear`` in degrees, ``tx``/``ty`` shifts in pixels
    (rows/columns), ``zx``/``zy`` zoom factors (rows/columns); the flips mirror the output.
    """
    xp = B.xp
    values = [theta, tx, ty, shear, zx, zy, flip_horizontal, flip_vertical]
    if n is None:
        n = max([int(B.asarray(v).size) for v in values] + [1])
    theta, tx, ty, shear, zx, zy, fh, fv = (xp.broadcast_to(B.asarray(v, dtype="float64"), (n,)) for v in values)
    one, zero = xp.ones(n), xp.zeros(n)
    th, sh = xp.deg2rad(theta), xp.deg2rad(shear)
    c, s = xp.cos(th), xp.sin(th)
    rotation = _stack_matrices([[c, -s, zero], [s, c, zero], [zero, zero, one]])
    shift = _stack_matrices([[one, zero, tx], [zero, one, ty], [zero, zero, one]])
    shearing = _stack_matrices([[one, -xp.sin(sh), zero], [zero, xp.cos(sh), zero], [zero, zero, one]])
    zoom = _stack_matrices([[zx, zero, zero], [zero, zy, zero], [zero, zero, one]])
    cr, cc = (h - 1) / 2.0, (w - 1) / 2.0
    to_centre = _stack_matrices([[one, zero, one * cr], [zero, one, one * cc], [zero, zero, one]])
    from_centre = _stack_matrices([[one, zero, -cr * one], [zero, one, -cc * one], [zero, zero, one]])
    flip_h = _stack_matrices([[one, zero, zero], [zero, 1 - 2 * fh, fh * (w - 1)], [zero, zero, one]])
    flip_v = _stack_matrices([[1 - 2 * fv, zero, fv * (h - 1)], [zero, one, zero], [zero, zero, one]])
    return to_centre @ rotation @ shift @ shearing @ zoom @ from_centre @ flip_v @ flip_h


def _map_index(i, size: int, fill_mode: str):
    """Integer indices outside ``[0, size)`` mapped by the fill mode (constant: clipped; masked by the caller)."""
    xp = B.xp
    if fill_mode == "wrap":
        return i % size
    if fill_mode == "reflect":  # abcd -> ...dcba|abcd|dcba...
        m = i % (2 * size)
        return xp.where(m >= size, 2 * size - 1 - m, m)
    return xp.clip(i, 0, size - 1)


def resample(x, matrices, fill_mode: str = "nearest", cval: float = 0.0, order: int = 1):
    """Warp a batch of channels-last images ``x`` (N, H, W, C): ``out[n, r, c] = x[n, M_n @ (r, c, 1)]``.

    ``matrices``: (N, 3, 3) or (N, 2, 3) output-to-input maps. ``order``: 0 nearest, 1 bilinear.
    ``fill_mode``: ``constant`` (``cval`` outside the image), ``nearest`` (edge values), ``reflect``
    (``dcba|abcd|dcba``) or ``wrap`` (``abcd|abcd|abcd``). All images are done at once.
    """
    if fill_mode not in FILL_MODES:
        raise ValueError(f"resample: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    if order not in (0, 1):
        raise ValueError(f"resample: order must be 0 (nearest) or 1 (bilinear), got {order!r}")
    xp = B.xp
    n, h, w, _ = x.shape
    m = B.asarray(matrices, dtype="float64")
    rows = xp.arange(h, dtype="float64")[None, :, None]
    cols = xp.arange(w, dtype="float64")[None, None, :]
    src_r = m[:, 0, 0, None, None] * rows + m[:, 0, 1, None, None] * cols + m[:, 0, 2, None, None]
    src_c = m[:, 1, 0, None, None] * rows + m[:, 1, 1, None, None] * cols + m[:, 1, 2, None, None]
    for coords in (src_r, src_c):
        nearest = xp.round(coords)
        snap = xp.abs(coords - nearest) < _SNAP
        coords[...] = xp.where(snap, nearest, coords)
    batch = xp.arange(n)[:, None, None]
    constant = fill_mode == "constant"
    # scipy.ndimage's 'constant' (what Keras uses): cval wherever the source point lies beyond the centres of
    # the edge pixels; no blending with cval (an exact integer shift is exact either way).
    inside = ((src_r >= 0) & (src_r <= h - 1) & (src_c >= 0) & (src_c <= w - 1))[..., None] if constant else None

    if order == 0:
        ir = xp.floor(src_r + 0.5).astype("int64")
        ic = xp.floor(src_c + 0.5).astype("int64")
        out = x[batch, _map_index(ir, h, fill_mode), _map_index(ic, w, fill_mode)]
        if constant:
            out = xp.where(inside, out, xp.asarray(cval, dtype=x.dtype))
        return out.astype(x.dtype, copy=False)

    r0 = xp.floor(src_r)
    c0 = xp.floor(src_c)
    fr = (src_r - r0).astype(x.dtype)[..., None]
    fc = (src_c - c0).astype(x.dtype)[..., None]
    r0 = r0.astype("int64")
    c0 = c0.astype("int64")
    mode = "nearest" if constant else fill_mode
    r0m, r1m = _map_index(r0, h, mode), _map_index(r0 + 1, h, mode)
    c0m, c1m = _map_index(c0, w, mode), _map_index(c0 + 1, w, mode)
    out = ((1 - fr) * ((1 - fc) * x[batch, r0m, c0m] + fc * x[batch, r0m, c1m])
           + fr * ((1 - fc) * x[batch, r1m, c0m] + fc * x[batch, r1m, c1m]))
    if constant:
        out = xp.where(inside, out, xp.asarray(cval, dtype=x.dtype))
    return out.astype(x.dtype, copy=False)


def _to_nhwc(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)


def _from_nhwc(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)


def _channel_shift_batch(x, intensity):
    """Add ``intensity`` (N,) to every channel, clipped to each image's own [min, max] (Keras)."""
    xp = B.xp
    axes = tuple(range(1, x.ndim))
    low = x.min(axis=axes, keepdims=True)
    high = x.max(axis=axes, keepdims=True)
    shift = B.asarray(intensity, dtype=x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    return xp.clip(x + shift, low, high)


def _brightness_batch(x, brightness):
    """Multiply by ``brightness`` (N,) as PIL's Brightness enhancer does on [0, 255] images (clipped to
    [0, 255]); an image with values outside [0, 255] is mapped onto [0, 255] for the operation and back
    (Keras's ``apply_brightness_shift(scale=False)``), without Keras's 8-bit rounding."""
    xp = B.xp
    axes = tuple(range(1, x.ndim))
    factor = B.asarray(brightness, dtype=x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))
    low = x.min(axis=axes, keepdims=True)
    high = x.max(axis=axes, keepdims=True)
    local = (low < 0) | (high > 255)
    span = xp.where(high > low, high - low, xp.ones_like(high))
    u = xp.where(local, (x - low) / span * 255, x)
    u = xp.clip(u * factor, 0, 255)
    return xp.where(local, u / 255 * span + low, u).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------- single-image functions (Keras)
def _single(x, row_axis, col_axis, channel_axis, fn):
    """Run a channels-last batch function on one image with arbitrary axes."""
    x = B.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"expected one image of rank 3, got an array of shape {x.shape}")
    perm = (row_axis, col_axis, channel_axis)
    nhwc = x.transpose(perm)[None]
    out = fn(nhwc)[0]
    inverse = [0, 0, 0]
    for i, p in enumerate(perm):
        inverse[p] = i
    return out.transpose(inverse)


def apply_affine_transform(x, theta=0, tx=0, ty=0, shear=0, zx=1, zy=1, row_axis=1, col_axis=2, channel_axis=0,
                           fill_mode="nearest", cval=0.0, order=1):
    """Apply an affine transform to one image (Keras's function; ``row_axis=1, col_axis=2, channel_axis=0``
    by default, i.e. channels first). Angles in degrees, shifts in pixels."""
    x = B.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(B.floatx())
    h, w = x.shape[row_axis], x.shape[col_axis]
    m = affine_matrices(h, w, theta, tx, ty, shear, zx, zy, n=1)
    return _single(x, row_axis, col_axis, channel_axis, lambda b: resample(b, m, fill_mode, cval, order))


def flip_axis(x, axis):
    """``x`` reversed along ``axis``."""
    xp = B.xp
    return xp.flip(B.asarray(x), axis=axis)


def apply_channel_shift(x, intensity, channel_axis=0):
    """Add ``intensity`` to every channel of one image, clipped to the image's [min, max]."""
    x = B.asarray(x)
    return _channel_shift_batch(x[None], [intensity])[0]


def apply_brightness_shift(x, brightness):
    """Scale the brightness of one image by ``brightness`` (see :func:`_brightness_batch`)."""
    x = B.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(B.floatx())
    return _brightness_batch(x[None], [brightness])[0]


def random_rotation(x, rg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0,
                    interpolation_order=1, seed=None):
    """Rotate one image by a random angle in ``[-rg, rg]`` degrees."""
    theta = _generator(seed).uniform(-rg, rg)
    return apply_affine_transform(x, theta=theta, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_shift(x, wrg, hrg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0,
                 interpolation_order=1, seed=None):
    """Shift one image by random fractions ``wrg`` of its width and ``hrg`` of its height."""
    gen = _generator(seed)
    x = B.asarray(x)
    h, w = x.shape[row_axis], x.shape[col_axis]
    tx = gen.uniform(-hrg, hrg) * h
    ty = gen.uniform(-wrg, wrg) * w
    return apply_affine_transform(x, tx=tx, ty=ty, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_shear(x, intensity, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0,
                 interpolation_order=1, seed=None):
    """Shear one image by a random angle in ``[-intensity, intensity]`` degrees."""
    shear = _generator(seed).uniform(-intensity, intensity)
    return apply_affine_transform(x, shear=shear, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_zoom(x, zoom_range, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0,
                interpolation_order=1, seed=None):
    """Zoom one image by random factors drawn from ``zoom_range = (lower, upper)``."""
    if len(zoom_range) != 2:
        raise ValueError(f"random_zoom: zoom_range must be a tuple or list of two floats, got {zoom_range!r}")
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1.0, 1.0
    else:
        zx, zy = _generator(seed).uniform(zoom_range[0], zoom_range[1], 2)
    return apply_affine_transform(x, zx=zx, zy=zy, row_axis=row_axis, col_axis=col_axis, channel_axis=channel_axis,
                                  fill_mode=fill_mode, cval=cval, order=interpolation_order)


def random_channel_shift(x, intensity_range, channel_axis=0, seed=None):
    """Shift the channels of one image by a random amount in ``[-intensity_range, intensity_range]``."""
    return apply_channel_shift(x, _generator(seed).uniform(-intensity_range, intensity_range), channel_axis)


def random_brightness(x, brightness_range, seed=None):
    """Scale the brightness of one image by a random factor in ``brightness_range``."""
    if len(brightness_range) != 2:
        raise ValueError(f"random_brightness: brightness_range must be a tuple or list of two floats, got "
                         f"{brightness_range!r}")
    return apply_brightness_shift(x, _generator(seed).uniform(brightness_range[0], brightness_range[1]))


# ------------------------------------------------------------------------------------------------ iterators
class Iterator(Sequence):
    """Base class of the batch iterators (Keras's ``keras.preprocessing.image.Iterator``).

    A ``Sequence`` (``len``, ``[i]``, ``on_epoch_end``) that is also an endless Python iterator: ``next()``
    runs through the batches epoch after epoch, reshuffling at each new epoch. With ``seed``, the batch
    order and the augmentation are reproducible (the augmentation of a batch depends on the seed and on how
    many batches were drawn before, as in Keras).
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"flow: batch_size must be a positive integer, got {batch_size!r}")
        self.n = int(n)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_array = None
        self._epoch = 0
        self._started = False
        self._base_seed = int(seed) % 2**63 if seed is not None else int(B.rng().integers(0, 2**63 - 1))

    def _set_index_array(self):
        if self.shuffle:
            self.index_array = _generator([self._base_seed, self._epoch, 0x5EED]).permutation(self.n)
        else:
            self.index_array = B.to_host(B.xp.arange(self.n))

    def _augmentation_generator(self):
        generator = _generator([self._base_seed, self.total_batches_seen])
        self.total_batches_seen += 1
        return generator

    def __len__(self) -> int:
        return (self.n + self.batch_size - 1) // self.batch_size

    def __getitem__(self, idx):
        if isinstance(idx, slice) or not isinstance(idx, int) and not hasattr(idx, "__index__"):
            raise TypeError(f"{type(self).__name__}: batches are indexed by an integer, got {idx!r}")
        idx = int(idx)
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"{type(self).__name__}: asked for batch {idx}, but the sequence has {len(self)} "
                             f"batch(es)")
        with self.lock:
            if self.index_array is None:
                self._set_index_array()
            index_array = self.index_array[self.batch_size * idx:self.batch_size * (idx + 1)]
            generator = self._augmentation_generator()
        return self._get_batches_of_transformed_samples(index_array, generator)

    def on_epoch_end(self):
        """Start a new epoch: a new batch order when shuffling."""
        self._epoch += 1
        self._set_index_array()

    def reset(self):
        self.batch_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        with self.lock:
            if self.index_array is None or self.batch_index == 0:
                if self._started:  # a new pass over the data
                    self._epoch += 1
                self._started = True
                self._set_index_array()
            start = self.batch_index * self.batch_size
            index_array = self.index_array[start:start + self.batch_size]
            self.batch_index = self.batch_index + 1 if start + self.batch_size < self.n else 0
            generator = self._augmentation_generator()
        return self._get_batches_of_transformed_samples(index_array, generator)

    def next(self):
        """Keras 1/2 spelling of ``next(iterator)``."""
        return self.__next__()

    def _get_batches_of_transformed_samples(self, index_array, generator):
        raise NotImplementedError


class NumpyArrayIterator(Iterator):
    """Batches ``(x, y[, sample_weight])`` of augmented images from in-memory arrays
    (what :meth:`ImageDataGenerator.flow` returns).

    ``x``: a rank-4 image array, or a tuple ``(images, other)`` where ``other`` is an array or a list of
    arrays passed through unchanged beside the images (the batch's ``x`` is then ``[images, *other]``).
    """

    def __init__(self, x, y, image_data_generator, batch_size=32, shuffle=False, sample_weight=None, seed=None,
                 data_format=None, save_to_dir=None, save_prefix="", save_format="png", subset=None,
                 ignore_class_split=False, dtype=None):
        if save_to_dir is not None:
            raise NotImplementedError("flow: save_to_dir needs an image encoder, which shenjing does not include; "
                                      "save the batches yourself (they are arrays)")
        self.dtype = dtype or image_data_generator.dtype
        self.image_data_generator = image_data_generator
        self.data_format = data_format or image_data_generator.data_format
        if isinstance(x, (tuple, list)):
            if len(x) != 2:
                raise ValueError(f"flow: x given as a tuple/list must be (images, other_arrays), got {len(x)} items")
            misc = x[1] if isinstance(x[1], list) else [x[1]]
            x_misc = [B.asarray(m) for m in misc]
            x = x[0]
            for i, m in enumerate(x_misc):
                if len(m) != len(x):
                    raise ValueError(f"flow: all of x must have the same length; the images have {len(x)} samples "
                                     f"but x[1][{i}] has {len(m)}")
        else:
            x_misc = []
        if y is not None and len(x) != len(y):
            raise ValueError(f"flow: x (images) and y (labels) must have the same length; got x.shape = "
                             f"{tuple(B.asarray(x).shape)}, y.shape = {tuple(B.asarray(y).shape)}")
        if sample_weight is not None and len(x) != len(sample_weight):
            raise ValueError(f"flow: x (images) and sample_weight must have the same length; got x.shape = "
                             f"{tuple(B.asarray(x).shape)}, sample_weight.shape = "
                             f"{tuple(B.asarray(sample_weight).shape)}")
        if subset is not None:
            if subset not in ("training", "validation"):
                raise ValueError(f"flow: subset must be 'training' or 'validation', got {subset!r}")
            split_idx = int(len(x) * image_data_generator._validation_split)
            if (y is not None and not ignore_class_split and split_idx
                    and not _same_classes(y[:split_idx], y[split_idx:])):
                raise ValueError("flow: the training and validation subsets have different classes after the split "
                                 "(validation_split takes the first samples for validation). If your arrays are "
                                 "sorted by label, shuffle them first; or pass ignore_class_split=True")
            part = slice(None, split_idx) if subset == "validation" else slice(split_idx, None)
            x = x[part]
            x_misc = [m[part] for m in x_misc]
            y = None if y is None else y[part]
            sample_weight = None if sample_weight is None else sample_weight[part]
            if len(x) == 0:
                raise ValueError(f"flow: subset={subset!r} is empty (validation_split="
                                 f"{image_data_generator._validation_split} of {len(x) + split_idx} samples)")
        self.x = B.asarray(x, dtype=self.dtype)
        if self.x.ndim != 4:
            raise ValueError(f"flow: x (images) must have rank 4 (samples, height, width, channels) or "
                             f"(samples, channels, height, width); got an array of shape {self.x.shape}")
        channels_axis = 3 if self.data_format == "channels_last" else 1
        if self.x.shape[channels_axis] not in (1, 3, 4):
            warnings.warn(f"flow: with data_format={self.data_format!r} the channel axis is {channels_axis}, and x "
                          f"has {self.x.shape[channels_axis]} channels there (shape {self.x.shape}); expected 1, 3 or "
                          f"4. Check data_format", stacklevel=3)
        self.x_misc = x_misc
        self.y = None if y is None else B.asarray(y)
        self.sample_weight = None if sample_weight is None else B.asarray(sample_weight)
        super().__init__(len(self.x), batch_size, shuffle, seed)

    def _get_batches_of_transformed_samples(self, index_array, generator):
        index = B.asarray(index_array, dtype="int64")
        batch_x = self.image_data_generator._augment_batch(self.x[index], generator, self.data_format)
        batch_x = self.image_data_generator._standardize(batch_x, self.data_format)
        if self.x_misc:
            batch_x = [batch_x] + [m[index] for m in self.x_misc]
        if self.y is None:
            return batch_x
        output = (batch_x, self.y[index])
        if self.sample_weight is not None:
            output += (self.sample_weight[index],)
        return output


def _same_classes(a, b) -> bool:
    xp = B.xp
    ua, ub = xp.unique(B.asarray(a)), xp.unique(B.asarray(b))
    return ua.shape == ub.shape and bool((ua == ub).all())


# --------------------------------------------------------------------------------------- ImageDataGenerator
class ImageDataGenerator:
    """Real-time data augmentation and normalisation of image batches (Keras's ``ImageDataGenerator``).

    Args:
        featurewise_center / featurewise_std_normalization: subtract the per-channel mean / divide by the
            per-channel std of the data given to :meth:`fit`.
        samplewise_center / samplewise_std_normalization: the same with each image's own statistics.
        zca_whitening: ZCA-whiten with the statistics from :meth:`fit` (``zca_epsilon`` regularises).
        rotation_range: degrees; the angle is uniform in ``[-rotation_range, rotation_range]``.
        width_shift_range / height_shift_range: a float (a fraction of the width/height if < 1, else
            pixels), uniform in ``[-r, r]``; an int ``k``: whole pixels in ``(-k, k)``; a list: one of its
            values with a random sign.
        brightness_range: ``(low, high)`` factors.
        shear_range: degrees (counter-clockwise shear angle), uniform in ``[-shear_range, shear_range]``.
        zoom_range: ``z`` (factors in ``[1 - z, 1 + z]``) or ``(low, high)``; drawn per axis.
        channel_shift_range: added to all channels, uniform in ``[-r, r]``, clipped to the image's range.
        fill_mode: ``'constant'``, ``'nearest'``, ``'reflect'`` or ``'wrap'``; ``cval`` for ``'constant'``.
        horizontal_flip / vertical_flip: mirror half of the images, at random.
        rescale: multiply the data by this factor (after the augmentation, before the normalisations).
        preprocessing_function: called on each image (rank 3) after augmentation and before ``rescale``.
        data_format: ``'channels_last'`` or ``'channels_first'`` (default: the backend's setting).
        validation_split: the fraction held out for ``flow(..., subset='validation')`` (the first samples).
        interpolation_order: 1 bilinear (default, like Keras) or 0 nearest.
        dtype: the dtype of the batches (default ``floatx``).
    """

    def __init__(self, featurewise_center=False, samplewise_center=False, featurewise_std_normalization=False,
                 samplewise_std_normalization=False, zca_whitening=False, zca_epsilon=1e-6, rotation_range=0,
                 width_shift_range=0.0, height_shift_range=0.0, brightness_range=None, shear_range=0.0,
                 zoom_range=0.0, channel_shift_range=0.0, fill_mode="nearest", cval=0.0, horizontal_flip=False,
                 vertical_flip=False, rescale=None, preprocessing_function=None, data_format=None,
                 validation_split=0.0, interpolation_order=1, dtype=None):
        if data_format is None:
            data_format = B.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"ImageDataGenerator: data_format must be 'channels_last' or 'channels_first', got "
                             f"{data_format!r}")
        if fill_mode not in FILL_MODES:
            raise ValueError(f"ImageDataGenerator: fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
        if interpolation_order not in (0, 1):
            raise ValueError(f"ImageDataGenerator: interpolation_order must be 0 (nearest) or 1 (bilinear), got "
                             f"{interpolation_order!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"ImageDataGenerator: validation_split must be in [0, 1), got {validation_split!r}")
        if preprocessing_function is not None and not callable(preprocessing_function):
            raise TypeError(f"ImageDataGenerator: preprocessing_function must be callable, got "
                            f"{type(preprocessing_function).__name__}")
        self.dtype = dtype or B.floatx()
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = _check_range("rotation_range", rotation_range)
        self.width_shift_range = _check_shift("width_shift_range", width_shift_range)
        self.height_shift_range = _check_shift("height_shift_range", height_shift_range)
        self.shear_range = _check_range("shear_range", shear_range)
        self.channel_shift_range = _check_range("channel_shift_range", channel_shift_range)
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        self.interpolation_order = interpolation_order
        self.data_format = data_format
        self.channel_axis, self.row_axis, self.col_axis = (1, 2, 3) if data_format == "channels_first" else (3, 1, 2)
        self._validation_split = validation_split
        self.mean = None
        self.std = None
        self.zca_whitening_matrix = None

        if isinstance(zoom_range, (int, float)) and not isinstance(zoom_range, bool):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif isinstance(zoom_range, (list, tuple)) and len(zoom_range) == 2:
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(f"ImageDataGenerator: zoom_range must be a float or a tuple or list of two floats, got "
                             f"{zoom_range!r}")
        if self.zoom_range[0] < 0 or self.zoom_range[0] > self.zoom_range[1]:
            raise ValueError(f"ImageDataGenerator: zoom_range must give factors 0 <= low <= high, got {zoom_range!r}")
        if brightness_range is not None:
            if not isinstance(brightness_range, (tuple, list)) or len(brightness_range) != 2:
                raise ValueError(f"ImageDataGenerator: brightness_range must be None or a tuple or list of two floats, "
                                 f"got {brightness_range!r}")
            brightness_range = list(brightness_range)
        self.brightness_range = brightness_range

        if zca_whitening:
            if not featurewise_center:
                self.featurewise_center = True
                warnings.warn("ImageDataGenerator: zca_whitening sets featurewise_center=True", stacklevel=2)
            if featurewise_std_normalization:
                self.featurewise_std_normalization = False
                warnings.warn("ImageDataGenerator: zca_whitening overrides featurewise_std_normalization, which is "
                              "turned off", stacklevel=2)
        if featurewise_std_normalization and not featurewise_center:
            self.featurewise_center = True
            warnings.warn("ImageDataGenerator: featurewise_std_normalization sets featurewise_center=True",
                          stacklevel=2)
        if samplewise_std_normalization and not samplewise_center:
            self.samplewise_center = True
            warnings.warn("ImageDataGenerator: samplewise_std_normalization sets samplewise_center=True",
                          stacklevel=2)

    # Keras <= 2.2 spelled the ZCA matrix ``principal_components``.
    @property
    def principal_components(self):
        return self.zca_whitening_matrix

    @principal_components.setter
    def principal_components(self, value):
        self.zca_whitening_matrix = value

    # ----------------------------------------------------------------------------------------- flow
    def flow(self, x, y=None, batch_size=32, shuffle=True, sample_weight=None, seed=None, save_to_dir=None,
             save_prefix="", save_format="png", ignore_class_split=False, subset=None):
        """An endless :class:`NumpyArrayIterator` of augmented, normalised batches ``(x, y[, sample_weight])``
        (or ``x`` alone when ``y`` is None). It is a ``Sequence``: pass it to ``model.fit`` with
        ``steps_per_epoch``, or to ``evaluate`` / ``predict``."""
        return NumpyArrayIterator(x, y, self, batch_size=batch_size, shuffle=shuffle, sample_weight=sample_weight,
                                  seed=seed, data_format=self.data_format, save_to_dir=save_to_dir,
                                  save_prefix=save_prefix, save_format=save_format, subset=subset,
                                  ignore_class_split=ignore_class_split)

    def flow_from_directory(self, *args, **kwargs):
        raise NotImplementedError("ImageDataGenerator.flow_from_directory needs an image decoder (PIL), which "
                                  "shenjing does not include; load the images into an array and use flow()")

    def flow_from_dataframe(self, *args, **kwargs):
        raise NotImplementedError("ImageDataGenerator.flow_from_dataframe needs an image decoder (PIL), which "
                                  "shenjing does not include; load the images into an array and use flow()")

    # ------------------------------------------------------------------------------------ standardize
    def standardize(self, x):
        """Apply the normalisation configuration to one image (rank 3) or a batch (rank 4); returns a new
        array of ``dtype`` (Keras changes its argument in place; shenjing does not)."""
        return self._standardize(x, self.data_format)

    def _standardize(self, x, data_format):
        xp = B.xp
        x = _as_float(x, self.dtype)
        if x.ndim not in (3, 4):
            raise ValueError(f"ImageDataGenerator.standardize: expected one image (rank 3) or a batch (rank 4), got "
                             f"shape {x.shape}")
        if self.preprocessing_function is not None:
            if x.ndim == 3:
                x = _as_float(self.preprocessing_function(x), self.dtype)
            else:  # Keras's contract: the function takes one image
                x = xp.stack([_as_float(self.preprocessing_function(image), self.dtype) for image in x])
        if self.rescale:
            x = x * xp.asarray(self.rescale, dtype=self.dtype)
        image_axes = tuple(range(x.ndim - 3, x.ndim))
        if self.samplewise_center:
            x = x - x.mean(axis=image_axes, keepdims=True)
        if self.samplewise_std_normalization:
            x = x / (x.std(axis=image_axes, keepdims=True) + 1e-6)
        if self.featurewise_center:
            if self.mean is not None:
                x = x - self.mean
            else:
                warnings.warn("ImageDataGenerator specifies featurewise_center, but it has not been fit on any "
                              "training data; call .fit(x) first", stacklevel=3)
        if self.featurewise_std_normalization:
            if self.std is not None:
                x = x / (self.std + 1e-6)
            else:
                warnings.warn("ImageDataGenerator specifies featurewise_std_normalization, but it has not been fit "
                              "on any training data; call .fit(x) first", stacklevel=3)
        if self.zca_whitening:
            if self.zca_whitening_matrix is not None:
                size = math.prod(x.shape[-3:])
                if self.zca_whitening_matrix.shape[0] != size:
                    raise ValueError(f"ImageDataGenerator.standardize: the ZCA matrix was fit on images of "
                                     f"{self.zca_whitening_matrix.shape[0]} values, got images of shape "
                                     f"{x.shape[-3:]} ({size} values)")
                x = (x.reshape(-1, size) @ self.zca_whitening_matrix).reshape(x.shape)
            else:
                warnings.warn("ImageDataGenerator specifies zca_whitening, but it has not been fit on any training "
                              "data; call .fit(x) first", stacklevel=3)
        return x.astype(self.dtype, copy=False)

    # ----------------------------------------------------------------------------------- transforms
    def get_random_transform(self, img_shape, seed=None) -> dict:
        """Random parameters for one image of shape ``img_shape`` (rank 3): a dict with ``theta``, ``tx``,
        ``ty``, ``shear``, ``zx``, ``zy``, ``flip_horizontal``, ``flip_vertical``,
        ``channel_shift_intensity`` and ``brightness`` (None when unused)."""
        if len(img_shape) != 3:
            raise ValueError(f"get_random_transform: img_shape must be the shape of one image (rank 3), got "
                             f"{tuple(img_shape)}")
        params = self._draw(1, (1,) + tuple(img_shape), _generator(seed), self.data_format)
        out = {}
        for key, value in params.items():
            if value is None:
                out[key] = None
            elif key.startswith("flip"):
                out[key] = bool(value[0])
            else:
                out[key] = float(value[0])
        return out

    def apply_transform(self, x, transform_parameters: dict):
        """Apply the transform described by ``transform_parameters`` (see :meth:`get_random_transform`) to
        one image (rank 3). Given a batch (rank 4), each parameter may be a scalar or one value per image."""
        x = _as_float(x, self.dtype)
        if x.ndim == 3:
            return self._apply_batch(x[None], transform_parameters, self.data_format)[0]
        if x.ndim == 4:
            return self._apply_batch(x, transform_parameters, self.data_format)
        raise ValueError(f"apply_transform: expected one image (rank 3) or a batch (rank 4), got shape {x.shape}")

    def random_transform(self, x, seed=None):
        """One image (rank 3) randomly transformed; a batch (rank 4) gets one random transform per image."""
        x = _as_float(x, self.dtype)
        if x.ndim == 3:
            return self.apply_transform(x, self.get_random_transform(x.shape, seed))
        if x.ndim == 4:
            return self._augment_batch(x, _generator(seed), self.data_format)
        raise ValueError(f"random_transform: expected one image (rank 3) or a batch (rank 4), got shape {x.shape}")

    def _draw(self, n: int, batch_shape, generator, data_format) -> dict:
        """Random transform parameters for ``n`` images, one array of ``n`` values per parameter."""
        row_axis, col_axis = (2, 3) if data_format == "channels_first" else (1, 2)
        h, w = batch_shape[row_axis], batch_shape[col_axis]
        zeros = [0.0] * n
        theta = generator.uniform(-self.rotation_range, self.rotation_range, n) if self.rotation_range else zeros
        tx = _draw_shift(self.height_shift_range, n, h, generator)
        ty = _draw_shift(self.width_shift_range, n, w, generator)
        shear = generator.uniform(-self.shear_range, self.shear_range, n) if self.shear_range else zeros
        if self.zoom_range[0] == 1 and self.zoom_range[1] == 1:
            zx = zy = [1.0] * n
        else:
            zx, zy = generator.uniform(self.zoom_range[0], self.zoom_range[1], (2, n))
        flip_h = (generator.random(n) < 0.5) & bool(self.horizontal_flip)
        flip_v = (generator.random(n) < 0.5) & bool(self.vertical_flip)
        channel_shift = (generator.uniform(-self.channel_shift_range, self.channel_shift_range, n)
                         if self.channel_shift_range else None)
        brightness = (generator.uniform(self.brightness_range[0], self.brightness_range[1], n)
                      if self.brightness_range is not None else None)
        return {"theta": theta, "tx": tx, "ty": ty, "shear": shear, "zx": zx, "zy": zy, "flip_horizontal": flip_h,
                "flip_vertical": flip_v, "channel_shift_intensity": channel_shift, "brightness": brightness}

    def _augment_batch(self, x, generator, data_format):
        """A batch with one random transform per image, all applied at once."""
        return self._apply_batch(x, self._draw(len(x), x.shape, generator, data_format), data_format)

    def _apply_batch(self, x, params: dict, data_format):
        xp = B.xp
        n = x.shape[0]

        def values(key, default):
            value = params.get(key, default)
            if value is None:
                return None
            return xp.broadcast_to(B.asarray(value, dtype="float64"), (n,))

        theta, tx, ty, shear = (values(k, 0.0) for k in ("theta", "tx", "ty", "shear"))
        zx, zy = values("zx", 1.0), values("zy", 1.0)
        flip_h, flip_v = values("flip_horizontal", False), values("flip_vertical", False)
        nhwc = _to_nhwc(x, data_format)
        geometric = any(bool((v != 0).any()) for v in (theta, tx, ty, shear, flip_h, flip_v)) or bool(
            ((zx != 1) | (zy != 1)).any())
        if geometric:
            _, h, w, _ = nhwc.shape
            matrices = affine_matrices(h, w, theta, tx, ty, shear, zx, zy, flip_h, flip_v, n=n)
            nhwc = resample(nhwc, matrices, self.fill_mode, self.cval, self.interpolation_order)
        intensity = values("channel_shift_intensity", None)
        if intensity is not None:
            nhwc = _channel_shift_batch(nhwc, intensity)
        brightness = values("brightness", None)
        if brightness is not None:
            nhwc = _brightness_batch(nhwc, brightness)
        return _from_nhwc(nhwc, data_format).astype(self.dtype, copy=False)

    # ------------------------------------------------------------------------------------------ fit
    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute the statistics the feature-wise normalisations need (mean, std, ZCA matrix) from ``x``
        (rank 4). ``augment``: compute them on ``rounds`` randomly transformed copies of ``x``."""
        xp = B.xp
        x = _as_float(x, self.dtype)
        if x.ndim != 4:
            raise ValueError(f"ImageDataGenerator.fit: x must have rank 4, got an array of shape {x.shape}")
        if x.shape[self.channel_axis] not in (1, 3, 4):
            warnings.warn(f"ImageDataGenerator.fit: with data_format={self.data_format!r} the channel axis is "
                          f"{self.channel_axis}, and x has {x.shape[self.channel_axis]} channels there (shape "
                          f"{x.shape}); expected 1, 3 or 4. Check data_format", stacklevel=2)
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"ImageDataGenerator.fit: rounds must be a positive integer, got {rounds!r}")
        if augment:
            generator = _generator(seed)
            x = xp.concatenate([self._augment_batch(x, generator, self.data_format) for _ in range(rounds)])
        x = x.astype("float64")
        broadcast = [1, 1, 1]
        broadcast[self.channel_axis - 1] = x.shape[self.channel_axis]
        axes = (0, self.row_axis, self.col_axis)
        if self.featurewise_center:
            mean = x.mean(axis=axes)
            self.mean = mean.reshape(broadcast).astype(self.dtype)
            x = x - mean.reshape(broadcast)
        if self.featurewise_std_normalization:
            std = x.std(axis=axes)
            self.std = std.reshape(broadcast).astype(self.dtype)
            x = x / (std.reshape(broadcast) + 1e-6)
        if self.zca_whitening:
            n = x.shape[0]
            flat = x.reshape(n, -1)
            sigma = flat.T @ flat / n
            eigenvalues, u = xp.linalg.eigh(sigma)
            eigenvalues = xp.clip(eigenvalues, 0, None)
            self.zca_whitening_matrix = ((u / xp.sqrt(eigenvalues + self.zca_epsilon)) @ u.T).astype(self.dtype)


def _check_range(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"ImageDataGenerator: {name} must be a non-negative number, got {value!r}")
    return value


def _check_shift(name, value):
    if isinstance(value, bool):
        raise ValueError(f"ImageDataGenerator: {name} must be a float, an int or a list of numbers, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"ImageDataGenerator: {name} must be non-negative, got {value!r}")
        return value
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"ImageDataGenerator: {name} must be a float, an int or a 1-D list of numbers, got "
                         f"{value!r}") from None
    if not values:
        raise ValueError(f"ImageDataGenerator: {name} must not be an empty list")
    return values


def _draw_shift(spec, n: int, size: int, generator):
    """Keras's shift semantics: float -> uniform in [-r, r]; int k -> integer in (-k, k); list -> one of its
    values with a random sign. Values below 1 (all of them, for a list) are fractions of ``size``."""
    if not spec:
        return [0.0] * n
    if isinstance(spec, float):
        shift = generator.uniform(-spec, spec, n)
    elif isinstance(spec, int):
        shift = generator.integers(0, spec, n) * generator.choice([-1, 1], n)
    else:
        shift = generator.choice(spec, n) * generator.choice([-1, 1], n)
    largest = max(spec) if isinstance(spec, list) else spec
    if largest < 1:
        shift = shift * size
    return shift
