"""Data for the ``shenjing`` commands: the named data sets, CSV tables, character-level text, ``.npz``
archives, images and ``.npy`` arrays, and fitting them to a model's input and loss.

Data sets (``dataset:`` in a ``shenjing train`` config, or the DATA argument of ``shenjing evaluate``):

- ``mnist``, ``fashion_mnist`` (``{"name": "mnist", "path": DIR}`` reads the four IDX files from DIR; without
  a path they are downloaded once into the shenjing cache), ``mnist_sample`` (embedded, no network);
- ``{"name": "tinyshakespeare", "path": "input.txt", "seq_len": 64}``: windows of ``seq_len`` character ids,
  each with the next character as the target (``step``: stride between windows, default ``seq_len``;
  ``max_chars``: use only the start of the text; the last 10 % is the test part);
- ``{"csv": "data.csv", "target": "species"}``: numeric feature columns and a target column, named by its
  header, by ``columns`` (names for a file without a header) or by its index (``-1`` for the last); string
  targets become class indices; ``features`` (default: every other column), ``task`` (``classification`` /
  ``regression``, default from the loss and the values), ``normalize`` (standardise the features, the mean
  and deviation being saved with the model), ``shuffle`` (default true), ``test_split`` (default 0).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field

import numpy

from .common import CLIError, check_keys, require_file

NAMED = ("mnist", "mnist_sample", "fashion_mnist", "tinyshakespeare")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
REGRESSION_LOSSES = ("mean_squared", "mse", "mae", "mean_absolute", "huber", "log_cosh", "logcosh", "mape", "msle",
                     "poisson", "cosine")


@dataclass
class Data:
    """Arrays for a command: inputs ``x``, targets ``y`` (class indices, or float values for regression),
    and an optional test part; ``meta`` is what a saved model keeps to read the same kind of data again."""

    x: numpy.ndarray
    y: numpy.ndarray | None
    x_test: numpy.ndarray | None = None
    y_test: numpy.ndarray | None = None
    task: str = "classification"          # 'classification', 'regression' or 'text'
    num_classes: int | None = None
    meta: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ named sets
def _images(split_pairs, name, class_names=None) -> Data:
    (x, y), (x_test, y_test) = split_pairs
    meta = {"dataset": name, "image_shape": [28, 28], "num_classes": 10}
    if class_names:
        meta["class_names"] = list(class_names)
    return Data(x.astype("float32") / 255, y.astype("int64"), x_test.astype("float32") / 255,
                y_test.astype("int64"), "classification", 10, meta)


def load_named(name: str, spec: dict, base_dir: str | None = None, meta: dict | None = None) -> Data:
    from ..datasets import fashion_mnist, mnist

    path = spec.get("path")
    if path is not None:
        path = resolve_path(path, base_dir)
    if name == "mnist_sample":
        return _images(mnist.load_sample(), name)
    if name == "mnist":
        return _images(mnist.load_data(path=path), name)
    if name == "fashion_mnist":
        return _images(fashion_mnist.load_data(path=path), name, fashion_mnist.CLASS_NAMES)
    if name == "tinyshakespeare":
        if path is None:
            raise CLIError("the tinyshakespeare data set needs its text file: {\"name\": \"tinyshakespeare\", "
                           "\"path\": \".../input.txt\", \"seq_len\": 64}")
        return load_text(path, spec, meta)
    raise CLIError(f"unknown data set {name!r}; expected one of {', '.join(NAMED)}, a CSV file "
                   f"({{\"csv\": \"data.csv\", \"target\": \"column\"}}) or (for evaluate) an .npz file")


def resolve_path(path, base_dir: str | None) -> str:
    """A path from a config: absolute, else relative to the config's folder, else to the current folder."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isabs(path) or base_dir is None:
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) or not os.path.exists(path) else path


def load_dataset(spec, base_dir: str | None = None, seed: int = 0) -> Data:
    """A ``dataset:`` entry of a train config: a name, ``{"name": ...}`` or ``{"csv": ...}``."""
    if isinstance(spec, str):
        if spec.lower().endswith(".csv"):
            raise CLIError(f"dataset {spec!r}: a CSV needs its target column: {{\"csv\": {spec!r}, "
                           f"\"target\": \"column name\"}}")
        return load_named(spec, {}, base_dir)
    if not isinstance(spec, dict):
        raise CLIError(f"'dataset' must be a name ({', '.join(NAMED)}) or a mapping, got {type(spec).__name__}")
    if "csv" in spec:
        allowed = {"csv", "target", "features", "columns", "task", "normalize", "shuffle", "test_split", "header",
                   "delimiter"}
        check_keys(spec, allowed, "dataset (csv)")
        return load_csv(resolve_path(spec["csv"], base_dir), spec, seed=seed)
    if "name" not in spec:
        raise CLIError(f"'dataset' needs 'name' (one of {', '.join(NAMED)}) or 'csv'; got keys {sorted(spec)}")
    allowed = {"name", "path", "seq_len", "step", "max_chars"}
    check_keys(spec, allowed, f"dataset {spec['name']!r}")
    return load_named(str(spec["name"]), spec, base_dir)


# ---------------------------------------------------------------------------------------------- text
def load_text(path: str, spec: dict, meta: dict | None = None) -> Data:
    """Character-level next-character data: ``x`` (windows, seq_len) of character ids, ``y`` the same windows
    shifted by one (the target of each position; a model with one output per window uses the last column)."""
    path = require_file(path, "text file")
    seq_len = _positive_int(spec.get("seq_len", (meta or {}).get("seq_len", 64)), "seq_len")
    step = _positive_int(spec.get("step", seq_len), "step")
    max_chars = spec.get("max_chars")
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(_positive_int(max_chars, "max_chars") if max_chars is not None else -1)
    vocabulary = (meta or {}).get("vocabulary")
    if vocabulary is None:
        vocabulary = "".join(sorted(set(text)))
    index = {ch: i for i, ch in enumerate(vocabulary)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise CLIError(f"{path!r} holds characters the model's vocabulary lacks: {''.join(unknown[:20])!r}")
    ids = numpy.fromiter((index[ch] for ch in text), dtype="int32", count=len(text))
    if len(ids) < seq_len + 2:
        raise CLIError(f"{path!r} holds {len(ids)} characters, too few for seq_len={seq_len}")

    def windows(part):
        starts = numpy.arange(0, len(part) - seq_len, step)
        rows = part[starts[:, None] + numpy.arange(seq_len + 1)]
        return rows[:, :-1], rows[:, 1:]

    cut = int(len(ids) * 0.9) if meta is None else len(ids)
    x, y = windows(ids[:cut])
    x_test = y_test = None
    if meta is None and len(ids) - cut > seq_len + 1:
        x_test, y_test = windows(ids[cut:])
    info = {"dataset": "tinyshakespeare", "vocabulary": vocabulary, "seq_len": seq_len, "num_classes": len(vocabulary)}
    return Data(x, y.astype("int64"), x_test, None if y_test is None else y_test.astype("int64"), "text",
                len(vocabulary), info)


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CLIError(f"{what} must be a positive integer, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- CSV
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: str, delimiter=None, header=None, columns=None) -> tuple:
    """``(column names, rows)`` of a CSV file; the first row is a header unless it holds a number (or
    ``header`` says otherwise); ``columns`` names the columns of a file without a header."""
    path = require_file(path, "CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            sample = f.read(65536)
            f.seek(0)
            if delimiter is None:
                try:
                    delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t ").delimiter
                except csv.Error:
                    delimiter = ","
            rows = [row for row in csv.reader(f, delimiter=delimiter) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise CLIError(f"cannot read the CSV file {path!r}: {err}") from None
    if not rows:
        raise CLIError(f"the CSV file {path!r} is empty")
    rows = [[cell.strip() for cell in row] for row in rows]
    if header is None:
        header = not any(_is_number(cell) for cell in rows[0])
    names = rows[0] if header else None
    if header:
        rows = rows[1:]
    if columns is not None:
        names = [str(c) for c in columns]
    if names is None:
        names = [f"column_{i}" for i in range(len(rows[0]) if rows else 0)]
    widths = {len(row) for row in rows}
    if len(widths) > 1 or (rows and len(rows[0]) != len(names)):
        bad = next((i for i, row in enumerate(rows) if len(row) != len(names)), 0)
        raise CLIError(f"the CSV file {path!r}: row {bad + 1 + bool(header)} has {len(rows[bad])} fields but there are "
                       f"{len(names)} column names ({', '.join(names[:10])})")
    if not rows:
        raise CLIError(f"the CSV file {path!r} has a header but no data rows")
    return names, rows


def _column_index(target, names, path) -> int:
    if isinstance(target, bool):
        raise CLIError(f"{path}: target must be a column name or index, got {target!r}")
    if isinstance(target, int):
        if not -len(names) <= target < len(names):
            raise CLIError(f"{path}: target column index {target} is out of range (the file has {len(names)} columns)")
        return target % len(names)
    if target not in names:
        hint = "" if not all(n.startswith("column_") for n in names) else \
            " (the file has no header: name its columns with \"columns\": [...] or give the target's index)"
        raise CLIError(f"{path}: no column named {target!r}; the columns are {names}{hint}")
    return names.index(target)


def _float_matrix(rows, indices, names, path) -> numpy.ndarray:
    out = numpy.empty((len(rows), len(indices)), dtype="float32")
    for r, row in enumerate(rows):
        for c, i in enumerate(indices):
            try:
                out[r, c] = float(row[i])
            except ValueError:
                raise CLIError(f"{path}: column {names[i]!r} is not numeric (row {r + 1}: {row[i]!r}); features must "
                               f"be numbers") from None
    if not numpy.isfinite(out).all():
        r, c = numpy.argwhere(~numpy.isfinite(out))[0]
        raise CLIError(f"{path}: column {names[indices[c]]!r} holds a missing or non-finite value in row {r + 1}")
    return out


def load_csv(path: str, spec: dict, seed: int = 0, meta: dict | None = None, loss: str = "") -> Data:
    """Features and target from a CSV file (see the module docstring); ``meta`` (from a saved model) fixes
    the columns, the class names and the normalisation so that the data is read as in training."""
    meta = meta or {}
    names, rows = read_csv(path, spec.get("delimiter"), spec.get("header"), spec.get("columns", meta.get("columns")))
    target = spec.get("target", meta.get("target"))
    if target is None:
        raise CLIError(f"{path}: name the target column (\"target\": \"column name\" or --target)")
    t = _column_index(target, names, path)
    feature_names = spec.get("features", meta.get("features"))
    if feature_names is None:
        indices = [i for i in range(len(names)) if i != t]
    else:
        indices = [_column_index(f, names, path) for f in feature_names]
        if t in indices:
            raise CLIError(f"{path}: the target column {names[t]!r} is also listed among the features")
    x = _float_matrix(rows, indices, names, path)
    values = [row[t] for row in rows]
    task = spec.get("task", meta.get("task"))
    numeric = all(_is_number(v) for v in values)
    if task is None:
        if any(word in loss for word in REGRESSION_LOSSES):
            task = "regression"
        elif not numeric:
            task = "classification"
        else:
            numbers = [float(v) for v in values]
            task = "classification" if all(n == int(n) for n in numbers) and len(set(numbers)) <= 50 or \
                "crossentropy" in loss or "hinge" in loss else "regression"
    if task not in ("classification", "regression"):
        raise CLIError(f"{path}: task must be 'classification' or 'regression', got {task!r}")
    class_names = None
    if task == "regression":
        if not numeric:
            bad = next(v for v in values if not _is_number(v))
            raise CLIError(f"{path}: the target column {names[t]!r} holds {bad!r}, not a number (regression)")
        y = numpy.array([float(v) for v in values], dtype="float32")
    else:
        keys = [str(int(float(v))) if numeric and float(v) == int(float(v)) else v for v in values]
        class_names = meta.get("class_names")
        if class_names is None:
            labels = sorted(set(keys), key=lambda k: (int(k) if _is_int_text(k) else 0, k))
            if all(_is_int_text(k) and int(k) >= 0 for k in labels):  # integer labels keep their values
                labels = [str(i) for i in range(max(int(k) for k in labels) + 1)]
            class_names = labels
        lookup = {str(name): i for i, name in enumerate(class_names)}
        unknown = sorted({k for k in keys if k not in lookup})
        if unknown:
            raise CLIError(f"{path}: the target column {names[t]!r} holds classes the model does not know: "
                           f"{unknown[:5]} (known: {list(class_names)[:20]})")
        y = numpy.array([lookup[k] for k in keys], dtype="int64")
    mean, std = meta.get("feature_mean"), meta.get("feature_std")
    normalize = bool(spec.get("normalize", mean is not None))
    if normalize and mean is None:
        mean, std = x.mean(axis=0).tolist(), x.std(axis=0).tolist()
    if normalize:
        x = (x - numpy.asarray(mean, "float32")) / numpy.where(numpy.asarray(std, "float32") > 0,
                                                                 numpy.asarray(std, "float32"), 1)
    if spec.get("shuffle", True) and not meta:
        order = numpy.random.default_rng(seed).permutation(len(x))
        x, y = x[order], y[order]
    x_test = y_test = None
    test_split = float(spec.get("test_split", 0) or 0)
    if not 0 <= test_split < 1:
        raise CLIError(f"{path}: test_split must be in [0, 1), got {test_split}")
    if test_split:
        cut = len(x) - int(round(len(x) * test_split))
        x, x_test, y, y_test = x[:cut], x[cut:], y[:cut], y[cut:]
    info = {"dataset": "csv", "target": names[t], "features": [names[i] for i in indices], "task": task,
            "columns": names}
    if class_names is not None:
        info["class_names"] = list(class_names)
        info["num_classes"] = len(class_names)
    if normalize:
        info["feature_mean"], info["feature_std"] = list(map(float, mean)), list(map(float, std))
    return Data(x, y, x_test, y_test, task, len(class_names) if class_names else None, info)


def _is_int_text(text: str) -> bool:
    return text.lstrip("-").isdigit()


def csv_features(path: str, meta: dict) -> numpy.ndarray:
    """The feature columns of a CSV for ``predict``, chosen as in training: by the header's names, else by
    position (a file with every training column, or with just the features in their order)."""
    names, rows = read_csv(path)
    features, columns = meta.get("features"), meta.get("columns")
    if not features:
        indices = list(range(len(names)))
    elif all(f in names for f in features):
        indices = [names.index(f) for f in features]
    elif columns and len(names) == len(columns):
        indices = [columns.index(f) for f in features]
    elif len(names) == len(features):
        indices = list(range(len(names)))
    else:
        raise CLIError(f"{path}: {len(names)} columns ({', '.join(names[:8])}), but the model was trained on the "
                       f"{len(features)} features {features}")
    x = _float_matrix(rows, indices, names, path)
    if meta.get("feature_mean") is not None:
        mean = numpy.asarray(meta["feature_mean"], "float32")
        std = numpy.asarray(meta["feature_std"], "float32")
        x = (x - mean) / numpy.where(std > 0, std, 1)
    return x


# ------------------------------------------------------------------------------------- model fitting
def model_input_shape(model):
    """The model's per-sample input shape (a tuple, ``None`` entries for free sizes), or None if unknown."""
    shapes = model._input_shapes() if hasattr(model, "_input_shapes") else None
    if not shapes:
        return None
    if len(shapes) != 1:
        raise CLIError(f"model {model.name!r} has {len(shapes)} inputs; the command line handles one-input models")
    return tuple(shapes[0][1:])


def first_layer_class(model) -> str:
    layers = getattr(model, "layers", [])
    return type(layers[0]).__name__ if layers else ""


def fit_inputs(x, model, data_meta: dict | None = None, what: str = "the data"):
    """``x`` reshaped to the model's input shape (same number of values per sample), one-hot encoded for a
    text model whose input is (seq_len, vocabulary), or a CLIError saying what does not match."""
    shape = model_input_shape(model)
    if shape is None:  # the model learns its input shape from the data: choose a natural one
        if x.ndim == 3 and x.shape[1:] == (28, 28):
            cls = first_layer_class(model)
            if "Conv2D" in cls or "Convolution2D" in cls or "Conv2d" in cls:
                return x[..., None]
            if cls in ("Dense", "Dropout", "Activation", "BatchNormalization", "GaussianNoise"):
                return x.reshape(len(x), -1)
        return x
    if len(shape) == x.ndim - 1 and all(s is None or s == d for s, d in zip(shape, x.shape[1:])):
        return x
    vocabulary = (data_meta or {}).get("vocabulary")
    if vocabulary is not None and x.ndim == 2 and len(shape) == 2 and shape[-1] == len(vocabulary) and \
            shape[0] in (None, x.shape[1]):
        return numpy.eye(len(vocabulary), dtype="float32")[x]
    if None not in shape and math.prod(shape) == math.prod(x.shape[1:]):
        return x.reshape((len(x),) + tuple(shape))
    shown = "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    raise CLIError(f"wrong shape: {what} has samples of shape {tuple(x.shape[1:])} "
                   f"({math.prod(x.shape[1:])} values), but model {model.name!r} expects input of shape {shown}")


def output_units(model):
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):
        return None, None
    if isinstance(shape, list):
        raise CLIError(f"model {model.name!r} has {len(shape)} outputs; the command line handles one-output models")
    return shape[-1], len(shape)


def encode_targets(y, model, loss: str, task: str, num_classes=None):
    """The targets as the compiled loss wants them: class indices for sparse losses, one-hot rows for
    categorical ones, a (N, 1) column for binary and regression losses."""
    units, rank = output_units(model)
    if task == "text":
        if rank == 2 and y.ndim == 2:
            y = y[:, -1]  # one prediction per window: the character after it
        task = "classification"
    if task == "regression" or y.dtype.kind == "f" and not num_classes:
        y = y.astype("float32")
        return y[:, None] if y.ndim == 1 and units == 1 else y
    if units is not None and num_classes is not None and units > 1 and units < num_classes:
        raise CLIError(f"model {model.name!r} has {units} output units but the data has {num_classes} classes")
    if "sparse" in loss:
        return y.astype("int64")
    if "binary" in loss or units == 1:
        if units == 1 and num_classes is not None and num_classes > 2:
            raise CLIError(f"model {model.name!r} has one output unit but the data has {num_classes} classes; use "
                           f"{num_classes} softmax units and categorical_crossentropy")
        if units in (None, 1):
            return y.astype("float32").reshape(len(y), -1)
    depth = units or num_classes or int(y.max()) + 1
    from ..utils import to_categorical

    return to_categorical(y, depth).astype("float32")


# ----------------------------------------------------------------------------------------- inputs
def load_npz(path: str) -> tuple:
    """``(x, y)`` from an .npz archive holding ``x`` and ``y`` (or ``x_test`` and ``y_test``)."""
    from ..datasets._idx import load_npz as read

    path = require_file(path, ".npz file")
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            files = set(archive.files)
    except (OSError, ValueError) as err:
        raise CLIError(f"{path!r} is not a readable .npz archive: {err}") from None
    for xk, yk in (("x", "y"), ("x_test", "y_test")):
        if {xk, yk} <= files:
            arrays = read(path, (xk, yk))
            x, y = arrays[xk], arrays[yk]
            if len(x) != len(y):
                raise CLIError(f"{path!r}: {xk} holds {len(x)} samples but {yk} holds {len(y)}")
            return x, y
    raise CLIError(f"{path!r} must hold arrays 'x' and 'y' (or 'x_test' and 'y_test'); it holds {sorted(files)}")


def load_image(path: str, model, invert: str = "auto") -> tuple:
    """``(x, note)``: one image as a batch of one, resized and laid out for the model's input, scaled to
    [0, 1]; with ``invert='auto'`` a single-channel image with a light background is inverted (MNIST digits
    are light on dark)."""
    path = require_file(path, "image")
    try:
        from PIL import Image
    except ImportError:
        raise CLIError("reading PNG / JPEG images needs Pillow: pip install shenjing[image] (or pip install "
                       "pillow); or give the input as a .npy array") from None
    shape = model_input_shape(model)
    if shape is None or None in shape:
        raise CLIError(f"model {model.name!r} has no fixed input shape, so the image size to use is unknown")
    if len(shape) == 3 and shape[-1] in (1, 3):
        height, width, channels, layout = shape[0], shape[1], shape[2], "last"
    elif len(shape) == 3 and shape[0] in (1, 3):
        height, width, channels, layout = shape[1], shape[2], shape[0], "first"
    elif len(shape) == 2:
        height, width, channels, layout = shape[0], shape[1], 1, "none"
    elif len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
        side = math.isqrt(shape[0])
        height, width, channels, layout = side, side, 1, "flat"
    else:
        raise CLIError(f"model {model.name!r} expects input of shape {shape}, which is not an image")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L")
            original = image.size
            if image.size != (width, height):
                image = image.resize((width, height), Image.BILINEAR)
            array = numpy.asarray(image, dtype="float32") / 255
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot read the image {path!r}: {err}") from None
    notes = [f"{original[0]}x{original[1]} image" + (f" resized to {width}x{height}" if original != (width, height)
                                                      else "")]
    if channels == 1 and (invert == "yes" or invert == "auto" and _border_mean(array) > 0.5):
        array = 1.0 - array
        notes.append("inverted (light background; --invert no to keep it)" if invert == "auto" else "inverted")
    if layout == "last":
        array = array[..., None] if channels == 1 else array
    elif layout == "first":
        array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    elif layout == "flat":
        array = array.reshape(-1)
    return array[None], ", ".join(notes)


def _border_mean(array) -> float:
    border = numpy.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
    return float(border.mean())


def load_predict_input(path: str, model, meta: dict, invert: str = "auto") -> tuple:
    """``(x, note)`` for ``shenjing predict``: an image, a .npy array or a CSV of features."""
    path = require_file(path, "input")
    lower = path.lower()
    if lower.endswith(IMAGE_SUFFIXES):
        return load_image(path, model, invert)
    if lower.endswith(".npy"):
        try:
            x = numpy.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise CLIError(f"cannot read the array {path!r}: {err}") from None
        if x.dtype.kind not in "biuf":
            raise CLIError(f"{path!r} holds {x.dtype} values; expected numbers")
        shape = model_input_shape(model)
        if shape is not None and None not in shape:
            size = math.prod(shape)
            one = x.ndim == len(shape) and all(s == d for s, d in zip(shape, x.shape))
            if one or (x.ndim == 0 or math.prod(x.shape[1:]) != size) and x.size == size:
                x = x[None]  # one sample: add the batch axis
        elif shape is not None and x.ndim == len(shape):
            x = x[None]
        note = f"array of shape {x.shape}"
        return fit_inputs(x.astype("float32") if x.dtype.kind == "f" else x, model, meta, path), note
    if lower.endswith(".csv"):
        x = csv_features(path, meta)
        return fit_inputs(x, model, meta, path), f"{len(x)} rows of {x.shape[1]} features"
    if lower.endswith(".npz"):
        x, _ = load_npz(path)
        return fit_inputs(x, model, meta, path), f"{len(x)} samples from {os.path.basename(path)}"
    raise CLIError(f"cannot tell what {path!r} is from its name: give an image ({', '.join(IMAGE_SUFFIXES[:3])}, "
                   f"...), a .npy array or a .csv of features")
