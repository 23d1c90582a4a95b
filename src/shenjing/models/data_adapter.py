"""Turning user data into checked arrays and batches for fit / evaluate / predict.

Every check here runs before any training step, and every error names the
argument (``x``, ``y``, ``sample_weight``, ``batch_size``…), what was expected
and what came.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autodiff import Tensor


def _is_structure(x) -> bool:
    """A list/tuple of arrays (several inputs or outputs) rather than one nested-list array."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(hasattr(v, "shape") for v in x)


def to_array_list(data, names: list, argument: str, method: str) -> list | None:
    """``data`` (an array, a list of arrays, or a dict by input/output name) as a list of arrays
    in the order of ``names``; floats become ``floatx``."""
    if data is None:
        return None
    xp = B.xp
    if type(data) is xp.ndarray and data.ndim and len(names) <= 1 and (
            data.dtype.kind in "iub" or data.dtype == B.floatx()):
        return [data]  # the common case: one array that needs no conversion
    if isinstance(data, dict):
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"{method}: {argument} is a dict without the key(s) {missing}; expected the names "
                             f"{names}, got {sorted(data)}")
        data = [data[n] for n in names]
    elif _is_structure(data):
        data = list(data)
    else:
        data = [data]
    arrays = []
    for i, d in enumerate(data):
        array = B.asarray(d.data if isinstance(d, Tensor) else d)
        if array.dtype.kind not in "fiub":
            label = argument if len(data) == 1 else f"{argument}[{i}]"
            raise TypeError(f"{method}: {label} must be numeric (floats, integers or booleans), got an array of "
                            f"dtype {array.dtype}" + (" — encode text or categories as numbers first"
                                                      if array.dtype.kind in "USO" else ""))
        if array.dtype.kind == "f" and array.dtype != B.floatx():
            array = array.astype(B.floatx())
        if array.ndim == 0:
            raise ValueError(f"{method}: {argument} must have a batch axis, got a scalar")
        arrays.append(array)
    if len(names) and len(arrays) != len(names):
        raise ValueError(f"{method}: the model has {len(names)} {'inputs' if argument == 'x' else 'outputs'} "
                         f"({', '.join(names)}), but {argument} holds {len(arrays)} array(s)")
    return arrays


def sample_weight_list(sample_weight, output_names: list, n_outputs: int, method: str):
    """``sample_weight`` (one array, a list per output, or a dict by output name) as a list per output."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, dict):
        unknown = set(sample_weight) - set(output_names)
        if unknown:
            raise ValueError(f"{method}: sample_weight names unknown output(s) {sorted(unknown)}; the outputs are "
                             f"{output_names}")
        weights = [sample_weight.get(name) for name in output_names]
    elif isinstance(sample_weight, (list, tuple)) and n_outputs > 1:
        if len(sample_weight) != n_outputs:
            raise ValueError(f"{method}: sample_weight has {len(sample_weight)} entries, but the model has "
                             f"{n_outputs} outputs")
        weights = list(sample_weight)
    else:
        weights = [sample_weight] * n_outputs
    out = []
    for w in weights:
        if w is None:
            out.append(None)
            continue
        array = B.asarray(w)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"{method}: sample_weight must be numeric, got an array of dtype {array.dtype}")
        out.append(array.astype(B.floatx()))
    return out


def check_finite(arrays, argument: str, method: str) -> None:
    """NaN or inf in data is an error, named with its first position."""
    xp = B.xp
    for k, array in enumerate(arrays or []):
        if B.all_finite(array):
            continue
        bad = ~xp.isfinite(array)
        if bool(bad.any()):
            where = tuple(int(i) for i in xp.argwhere(bad)[0])
            value = array[where]
            label = argument if len(arrays) == 1 else f"{argument}[{k}]"
            raise ValueError(f"{method}: {label} contains {'NaN' if value != value else 'inf'} "
                             f"(first at index {where}, {int(bad.sum())} value(s) in all); expected finite numbers")


def check_lengths(groups: dict, method: str) -> int:
    """All arrays share the first (sample) axis; returns the number of samples."""
    if groups.get("sample_weight") is None and groups.get("y") is not None and len(groups) == 3:
        xs, ys = groups["x"], groups["y"]
        if len(xs) == 1 and len(ys) == 1 and xs[0].shape[0] == ys[0].shape[0] and xs[0].shape[0] > 0:
            return int(xs[0].shape[0])  # the common case: one input and one target of equal lengths
    sizes = {}
    for argument, arrays in groups.items():
        for k, array in enumerate(arrays or []):
            sizes[argument if len(arrays) == 1 else f"{argument}[{k}]"] = int(array.shape[0])
    if not sizes:
        raise ValueError(f"{method}: no data given")
    values = set(sizes.values())
    if len(values) > 1:
        detail = ", ".join(f"{k} has {v}" for k, v in sizes.items())
        raise ValueError(f"{method}: all arrays must have the same number of samples, but {detail}")
    n = values.pop()
    if n == 0:
        raise ValueError(f"{method}: the dataset is empty (0 samples); expected at least one sample")
    return n


def check_batch_size(batch_size, method: str, argument: str = "batch_size") -> int:
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int,)) and not (
            hasattr(batch_size, "dtype") and B.xp.asarray(batch_size).dtype.kind in "iu"):
        raise TypeError(f"{method}: {argument} must be a positive integer, got {batch_size!r}")
    if int(batch_size) <= 0:
        raise ValueError(f"{method}: {argument} must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_input_shapes(arrays, expected_shapes, names, model_name: str, method: str) -> None:
    """Each array's per-sample shape must match the model input's (None matches anything)."""
    for array, shape, name in zip(arrays, expected_shapes, names):
        if shape is None:
            continue
        got = tuple(array.shape)
        if len(got) != len(shape) or not _dims_fit(shape, got):
            label = "x" if len(arrays) == 1 else f"x[{name!r}]"
            shown = "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
            raise ValueError(f"{method}: {label} has shape {got}, but model {model_name!r} expects input "
                             f"{name!r} of shape {shown}")


def _dims_fit(expected, got) -> bool:
    """Every known size of ``expected`` but the batch's equals ``got``'s (the ranks are equal)."""
    for i in range(1, len(expected)):
        e = expected[i]
        if e is not None and e != got[i]:
            return False
    return True


def split_validation(arrays_groups: list, validation_split: float, n: int):
    """Keras's validation_split: the last fraction of the samples, taken before any shuffling."""
    if not 0 <= validation_split < 1:
        raise ValueError(f"fit: validation_split must be in [0, 1), got {validation_split!r}")
    cut = int(n * (1 - validation_split))
    if cut == 0 or cut == n:
        missing = "no training" if cut == 0 else "no validation"
        raise ValueError(f"fit: validation_split={validation_split} leaves {missing} samples out of {n}")
    train = [None if g is None else [None if a is None else a[:cut] for a in g] for g in arrays_groups]
    val = [None if g is None else [None if a is None else a[cut:] for a in g] for g in arrays_groups]
    return train, val


class ArrayBatches:
    """Mini-batches of in-memory arrays: ``(xs, ys, sample_weights)`` per step.

    ``shuffle``: True (a new permutation each pass over the data), ``'batch'``
    (shuffle the order of the batches only) or False. ``steps``: the batches per
    epoch; with fewer than one pass, the next epoch continues where the last
    stopped (as Keras does), so every sample is seen.
    """

    def __init__(self, xs, ys=None, sample_weights=None, batch_size=32, shuffle=False, steps=None):
        self.xs, self.ys, self.sample_weights = xs, ys, sample_weights
        self.n = int(xs[0].shape[0])
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.batches_per_pass = math.ceil(self.n / batch_size)
        self.steps = steps or self.batches_per_pass
        self._stream = self._passes()

    def __len__(self) -> int:
        return self.steps

    def _passes(self):
        """Batches forever, pass after pass, each pass in a new order when shuffling."""
        xp = B.xp
        while True:
            order = xp.asarray(B.rng().permutation(self.n)) if self.shuffle is True else None
            starts = list(range(0, self.n, self.batch_size))
            if self.shuffle == "batch":
                starts = [starts[i] for i in B.rng().permutation(len(starts))]
            for start in starts:
                index = slice(start, start + self.batch_size) if order is None else order[start:start + self.batch_size]
                yield ([x[index] for x in self.xs],
                       None if self.ys is None else [y[index] for y in self.ys],
                       None if self.sample_weights is None else
                       [None if w is None else w[index] for w in self.sample_weights])

    def __iter__(self):
        for _ in range(self.steps):
            yield next(self._stream)


class GeneratorBatches:
    """Batches from a Python generator / iterable / ``Sequence`` yielding ``x``, ``(x, y)`` or ``(x, y, sw)``."""

    def __init__(self, source, steps=None, method="fit", to_lists=None):
        self.source = source
        self.method = method
        if steps is None and hasattr(source, "__len__"):
            steps = len(source)
        if steps is None:
            raise ValueError(f"{method}: steps_per_epoch (or steps) is required when x is a generator without "
                             f"a length")
        self.steps = int(steps)
        self.to_lists = to_lists
        self._iterator = None

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        if hasattr(self.source, "__getitem__") and hasattr(self.source, "__len__"):
            for i in range(self.steps):
                yield self.to_lists(self.source[i % len(self.source)])
            if hasattr(self.source, "on_epoch_end"):
                self.source.on_epoch_end()
            return
        if self._iterator is None:
            self._iterator = iter(self.source)
        for _ in range(self.steps):
            try:
                item = next(self._iterator)
            except StopIteration:
                self._iterator = None
                return
            yield self.to_lists(item)
