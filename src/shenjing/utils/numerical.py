"""Small array helpers of ``keras.utils``: one-hot encoding and normalization."""

from __future__ import annotations

from .. import backend as B


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class labels.

    ``y`` holds class indices in ``[0, num_classes)`` (any shape; a trailing
    axis of size 1, as in ``(n, 1)`` label columns, is dropped). The result has
    shape ``y.shape + (num_classes,)`` and the given ``dtype``. Without
    ``num_classes`` it is ``max(y) + 1``.

    >>> to_categorical([0, 2, 1]).tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    xp = B.xp
    labels = xp.asarray(y)
    kind = labels.dtype.kind
    if kind not in "biuf":
        raise ValueError(f"to_categorical: expected integer class labels, got an array of dtype {labels.dtype}")
    shape = tuple(labels.shape)
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = labels.reshape(-1)

    if kind == "f":
        bad = ~xp.isfinite(flat) | (flat != xp.floor(flat))
        if bool(bad.any()):
            value = flat[bad][0].item()
            raise ValueError(f"to_categorical: labels must be integers, got the non-integer label {value!r}")
    flat = flat.astype("int64")

    if flat.size and bool((flat < 0).any()):
        value = int(flat[flat < 0][0])
        raise ValueError(f"to_categorical: labels must be >= 0, got the negative label {value}")

    if num_classes is None:
        if flat.size == 0:
            raise ValueError("to_categorical: cannot infer num_classes from an empty label array; pass num_classes")
        num_classes = int(flat.max()) + 1
    else:
        if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f"to_categorical: num_classes must be a positive integer, got {num_classes!r}")
        num_classes = int(num_classes)
        if flat.size and bool((flat >= num_classes).any()):
            value = int(flat[flat >= num_classes][0])
            raise ValueError(
                f"to_categorical: label {value} is out of range for num_classes={num_classes} "
                f"(labels must be in [0, {num_classes - 1}])")

    out = xp.zeros((flat.shape[0], num_classes), dtype=dtype)
    out[xp.arange(flat.shape[0]), flat] = 1
    return out.reshape(shape + (num_classes,))


def normalize(x, axis=-1, order=2):
    """Divide ``x`` by its ``order``-norm along ``axis``; slices whose norm is 0 stay 0.

    Float inputs keep their dtype; integer inputs come back as ``floatx()``.
    """
    xp = B.xp
    x = xp.asarray(x)
    if x.dtype.kind not in "f":
        x = x.astype(B.floatx())
    if x.ndim == 0:
        raise ValueError("normalize: expected an array with at least one axis, got a scalar")
    norm = xp.linalg.norm(x, ord=order, axis=axis, keepdims=True)
    norm = xp.where(norm == 0, xp.ones_like(norm), norm).astype(x.dtype, copy=False)
    return x / norm
