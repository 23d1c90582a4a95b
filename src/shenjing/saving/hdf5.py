"""Weights in HDF5 (through h5py): Keras 2's layer-group layout and Keras 3's ``.weights.h5`` layout.

Keras 2 (``save_weights('w.h5')``, and the ``model_weights`` group of a full-model ``.h5``)::

    /                      attrs: layer_names (the model's layers, in order), backend, keras_version
    /<layer_name>          attrs: weight_names (e.g. 'dense/kernel:0', in the layer's weights order)
    /<layer_name>/<weight_name>    one dataset per weight ('/' in a weight name makes sub-groups)

Keras 3 (``save_weights('w.weights.h5')``, and ``model.weights.h5`` inside a ``.keras`` archive)::

    /layers/<key>/vars/0, 1, ...   a layer's own weights; <key> is the snake-case class name made unique
                                   in model order (dense, dense_1, batch_normalization); the group
                                   ``vars`` has attr ``name`` = the layer's name
    /layers/<key>/<attr>/vars/...  a sub-layer held in attribute <attr> (Keras's LSTM: cell/vars/0..2)
    /layers/<key>/layers/...       the layers of a nested model
    /vars                          the model's own weights (attr name = the model's name)
    /optimizer_state               shenjing's optimizer state (see :func:`write_optimizer_state`)

Loading is safe by construction: only hard links inside the file are followed (no external links,
external storage or virtual datasets), a dataset must be numeric, and its declared shape is compared
with the model's weight *before* anything is read, so a hostile file cannot make shenjing allocate
more than the model's own size; a mismatch raises an error naming the layer and both shapes, and
nothing is assigned until every weight has been read.
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .. import backend as B

KERAS2_BACKEND = "shenjing"
MAX_ATTR_ITEMS = 1_000_000
MAX_ATTR_BYTES = 64 * 1024 * 1024
MAX_GROUP_ITEMS = 1_000_000


def require_h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py is a dependency
        raise ImportError("HDF5 files need h5py: pip install h5py") from err
    return h5py


def _version() -> str:
    from .. import __version__

    return __version__


def _shape_str(shape) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ------------------------------------------------------------------------------ opening
def open_h5(source, what: str, mode: str = "r"):
    """``h5py.File`` for reading, with a clear ValueError for a file that is not (valid) HDF5."""
    h5py = require_h5py()
    name = source if isinstance(source, (str, os.PathLike)) else what
    try:
        return h5py.File(source, mode)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise ValueError(f"{what}: {name!s} is not a readable HDF5 file ({err})") from None


def is_hdf5(path) -> bool:
    h5py = require_h5py()
    try:
        return bool(h5py.is_hdf5(path))
    except (OSError, ValueError, TypeError):
        return False


# --------------------------------------------------------------------------- safe access
def safe_child(group, path: str, what: str, kind: str = "any", required: bool = True):
    """The object at ``path`` under ``group``, following hard links only (no external or soft links)."""
    h5py = require_h5py()
    if not isinstance(path, str) or not path or path.startswith("/") or "//" in path:
        raise ValueError(f"{what}: invalid path {path!r} in the file")
    current = group
    for part in path.split("/"):
        if not isinstance(current, h5py.Group):
            if required:
                raise ValueError(f"{what}: {path!r} is not in the file")
            return None
        try:
            link = current.get(part, getlink=True)
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{what}: cannot read {path!r} ({err})") from None
        if link is None:
            if required:
                raise ValueError(f"{what}: {path!r} is not in the file")
            return None
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{what}: {path!r} is a {type(link).__name__}; only objects stored in the file itself "
                             f"are read (no external or soft links)")
        try:
            current = current[part]
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"{what}: cannot read {path!r} ({err})") from None
    if kind == "group" and not isinstance(current, h5py.Group):
        raise ValueError(f"{what}: {path!r} should be a group, found a {type(current).__name__}")
    if kind == "dataset" and not isinstance(current, h5py.Dataset):
        raise ValueError(f"{what}: {path!r} should be a dataset, found a {type(current).__name__}")
    return current


def children(group, what: str) -> list:
    """The names of ``group``'s members (a bounded number)."""
    try:
        n = len(group)
    except (OSError, ValueError) as err:
        raise ValueError(f"{what}: cannot list group {group.name!r} ({err})") from None
    if n > MAX_GROUP_ITEMS:
        raise ValueError(f"{what}: group {group.name!r} has {n} members, more than the limit {MAX_GROUP_ITEMS}")
    return list(group.keys())


class DatasetHandle:
    """A weight in a file: its declared shape and dtype, checked before :meth:`read` loads it."""

    def __init__(self, dataset, label: str):
        h5py = require_h5py()
        self.label = label
        try:
            self.shape = tuple(int(d) for d in dataset.shape) if dataset.shape is not None else None
            dtype = dataset.dtype
            virtual = dataset.is_virtual
            external = dataset.external
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{label}: unreadable dataset ({err})") from None
        if self.shape is None:
            raise ValueError(f"{label}: the dataset has no shape (an empty dataspace)")
        if virtual or external:
            raise ValueError(f"{label}: the dataset's data lives outside the file (virtual or external storage); "
                             f"refused")
        if dtype.fields is not None or h5py.check_vlen_dtype(dtype) is not None or dtype.kind not in "fiub" \
                or dtype.itemsize > 16:
            raise ValueError(f"{label}: the dataset has dtype {dtype}, expected a numeric array")
        self.dtype = dtype
        self._dataset = dataset

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self):
        try:
            return np.asarray(self._dataset[()])
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{self.label}: the data cannot be read (corrupt or truncated file?): {err}") from None


class ArrayHandle:
    """A weight already in memory, with the same interface as :class:`DatasetHandle`."""

    def __init__(self, array, label: str):
        self.array, self.label = array, label
        self.shape, self.dtype = tuple(array.shape), array.dtype

    def read(self):
        return self.array


def read_attr(obj, name: str, what: str, default=None):
    """An attribute's value, its declared size checked first."""
    h5py = require_h5py()
    try:
        if name not in obj.attrs:
            return default
        attr = h5py.h5a.open(obj.id, name.encode("utf-8"))
        shape = attr.shape or ()
        itemsize = attr.dtype.itemsize
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{what}: unreadable attribute {name!r} ({err})") from None
    count = math.prod(shape) if shape else 1
    if count > MAX_ATTR_ITEMS or count * itemsize > MAX_ATTR_BYTES:
        raise ValueError(f"{what}: attribute {name!r} declares {count} items, more than the limit")
    try:
        return obj.attrs[name]
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"{what}: unreadable attribute {name!r} ({err})") from None


def _as_text(value, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{what}: a name is not UTF-8 text") from None
    if isinstance(value, np.ndarray) and value.shape == ():
        return _as_text(value.item(), what)
    if isinstance(value, str):
        return value
    raise ValueError(f"{what}: expected text, got {type(value).__name__}")


def read_str_list(obj, name: str, what: str) -> list | None:
    value = read_attr(obj, name, what)
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        return [_as_text(value, what)]
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    if arr.dtype.kind not in "SUO":
        raise ValueError(f"{what}: attribute {name!r} should list names, got dtype {arr.dtype}")
    return [_as_text(v, what) for v in arr.reshape(-1).tolist()]


def read_json_attr(obj, name: str, what: str):
    from .serialization import parse_json

    value = read_attr(obj, name, what)
    if value is None:
        return None
    return parse_json(_as_text(value, f"{what}, attribute {name!r}"), f"{what}, attribute {name!r}")


def _str_array(names):
    h5py = require_h5py()
    return np.array(list(names), dtype=h5py.string_dtype("utf-8")) if names else np.zeros((0,), dtype="S1")


# -------------------------------------------------------------------------- model layers
def model_layers(model) -> list:
    """The layers whose weights a weights file holds, in order (Keras: ``model.layers``)."""
    from ..layers.base import Layer

    if not isinstance(model, Layer):
        raise TypeError(f"expected a shenjing model, got {type(model).__name__}")
    if hasattr(model, "layers"):
        return list(model.layers)
    return [model]


def own_weights(layer) -> list:
    return list(layer._trainable_weights) + list(layer._non_trainable_weights)


def _check_built(model, what: str) -> None:
    if not model.weights and not getattr(model, "built", False):
        raise ValueError(f"{what}: model {model.name!r} is not built yet, so it has no weights to save or load; "
                         f"call it on data (or build(input_shape)) first, or give its first layer an input_shape")


def _host(variable):
    return np.ascontiguousarray(B.to_host(variable.data))


def _layer_label(layer) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})"


def check_pairs(layer, handles: list, source: str):
    """Pair ``layer.weights`` with the file's weights; a count or shape mismatch raises a ValueError."""
    weights = layer.weights
    if len(weights) != len(handles):
        raise ValueError(
            f"{source}: {_layer_label(layer)} has {len(weights)} weight(s) "
            f"[{', '.join(_shape_str(w.shape) for w in weights)}], but the file holds {len(handles)} for it "
            f"[{', '.join(_shape_str(h.shape) for h in handles)}]")
    for var, handle in zip(weights, handles):
        if tuple(var.shape) != tuple(handle.shape):
            raise ValueError(
                f"{source}: {_layer_label(layer)}, weight {var.name!r}: shape {_shape_str(var.shape)} in the model, "
                f"but {_shape_str(handle.shape)} in the file ({handle.label})")
    return list(zip(weights, handles))


def match_layers(model, file_layers: list, by_name: bool, skip_mismatch: bool, source: str) -> list:
    """Keras's rules: ``file_layers`` is ``[(name, [handles])]``; by order (layers with weights), or
    by layer name. Returns ``[(variable, handle)]``."""
    layers = [layer for layer in model_layers(model) if layer.weights]
    with_weights = [(n, h) for n, h in file_layers if h]
    pairs = []

    def add(layer, handles):
        try:
            pairs.extend(check_pairs(layer, handles, source))
        except ValueError as err:
            if not skip_mismatch:
                raise
            warnings.warn(f"{err}; skipping this layer (skip_mismatch=True)", stacklevel=4)

    if by_name:
        index = {}
        for name, handles in with_weights:
            index.setdefault(name, handles)
        for layer in layers:
            if layer.name in index:
                add(layer, index[layer.name])
        return pairs
    if len(layers) != len(with_weights):
        raise ValueError(
            f"{source}: the file holds weights for {len(with_weights)} layer(s) "
            f"{[n for n, _ in with_weights][:20]}, but model {model.name!r} has {len(layers)} layer(s) with weights "
            f"{[layer.name for layer in layers][:20]}; load by_name=True to match layers by name")
    for layer, (_, handles) in zip(layers, with_weights):
        add(layer, handles)
    return pairs


def assign(pairs: list) -> None:
    """Read every handle (all of them first), then set the variables."""
    values = []
    for var, handle in pairs:
        array = handle.read()
        if tuple(array.shape) != tuple(var.shape):  # the file changed under us
            raise ValueError(f"{handle.label}: read shape {_shape_str(array.shape)}, expected {_shape_str(var.shape)}")
        values.append(array)
    for (var, _), array in zip(pairs, values):
        var.data[...] = B.asarray(array, dtype=var.dtype)


# --------------------------------------------------------------------- Keras 2 layout
def _unique_weight_names(layer) -> list:
    names, seen = [], set()
    for i, w in enumerate(layer.weights):
        base = (w.name or f"{layer.name}/weight_{i}").strip("/").replace("//", "/")
        name = base if base.endswith(":0") else base + ":0"
        k = 1
        while name in seen:
            name = f"{base}_{k}:0"
            k += 1
        seen.add(name)
        names.append(name)
    return names


def write_keras2_weights(group, model) -> None:
    """Keras 2's layout into ``group`` (the file root, or ``model_weights`` of a full-model file)."""
    layers = model_layers(model)
    names = [layer.name for layer in layers]
    for name in names:
        if not name or "/" in name or name == "top_level_model_weights":
            raise ValueError(f"cannot save weights: layer name {name!r} cannot be an HDF5 group name")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"cannot save weights: model {model.name!r} has several layers named {dup}")
    group.attrs["layer_names"] = _str_array(names)
    group.attrs["backend"] = KERAS2_BACKEND
    group.attrs["keras_version"] = f"shenjing-{_version()}"
    for layer in layers:
        g = group.create_group(layer.name)
        weight_names = _unique_weight_names(layer)
        g.attrs["weight_names"] = _str_array(weight_names)
        for name, var in zip(weight_names, layer.weights):
            g.create_dataset(name, data=_host(var))
    own = own_weights(model)
    if own:
        g = group.create_group("top_level_model_weights")
        weight_names = [f"{model.name}/weight_{i}:0" for i in range(len(own))]
        g.attrs["weight_names"] = _str_array(weight_names)
        for name, var in zip(weight_names, own):
            g.create_dataset(name, data=_host(var))


def keras2_file_layers(group, source: str) -> list:
    """``[(layer_name, [DatasetHandle])]`` in the file's order."""
    names = read_str_list(group, "layer_names", source)
    if names is None:
        raise ValueError(f"{source}: no 'layer_names' attribute: not a Keras 2 weights group")
    out = []
    for name in names:
        g = safe_child(group, name, source, kind="group")
        weight_names = read_str_list(g, "weight_names", f"{source}, layer {name!r}") or []
        handles = [DatasetHandle(safe_child(g, wn, f"{source}, layer {name!r}", kind="dataset"),
                                 f"{source}: layer {name!r}, weight {wn!r}") for wn in weight_names]
        out.append((name, handles))
    return out


def read_keras2_weights(group, model, by_name=False, skip_mismatch=False, source="load_weights") -> list:
    pairs = match_layers(model, keras2_file_layers(group, source), by_name, skip_mismatch, source)
    own = own_weights(model)
    if own:
        top = safe_child(group, "top_level_model_weights", source, kind="group", required=False)
        if top is not None:
            weight_names = read_str_list(top, "weight_names", source) or []
            handles = [DatasetHandle(safe_child(top, wn, source, kind="dataset"), f"{source}: weight {wn!r}")
                       for wn in weight_names]
            if len(handles) != len(own) or any(tuple(v.shape) != h.shape for v, h in zip(own, handles)):
                raise ValueError(f"{source}: the model's own weights {[_shape_str(v.shape) for v in own]} do not "
                                 f"match the file's {[_shape_str(h.shape) for h in handles]}")
            pairs.extend(zip(own, handles))
    return pairs


# --------------------------------------------------------------------- Keras 3 layout
def _snake(name: str) -> str:
    from ..utils.naming import to_snake_case

    return to_snake_case(name)


def keras3_keys(layers) -> list:
    """Keras 3's keys: the snake-case class name, then ``_1``, ``_2``, … for the same class name."""
    used, keys = {}, []
    for layer in layers:
        name = _snake(type(layer).__name__)
        if name in used:
            used[name] += 1
            name = f"{name}_{used[name]}"
        else:
            used[name] = 0
        keys.append(name)
    return keys


def _structure(layer):
    """(own weights, [(path, sub-layer)]) as Keras 3 stores a layer."""
    from ..layers.base import Layer
    from ..models import Model

    if isinstance(layer, Model):
        subs = list(layer.layers)
        return own_weights(layer), [(f"layers/{k}", s) for k, s in zip(keras3_keys(subs), subs)]
    tracked = list(layer._layers)
    out, covered = [], set()
    for attr, value in vars(layer).items():
        if isinstance(value, Layer) and any(value is t for t in tracked) and id(value) not in covered \
                and not attr.startswith("__") and attr not in ("vars", "layers"):
            out.append((attr.lstrip("_") or attr, value))
            covered.add(id(value))
    rest = [t for t in tracked if id(t) not in covered]
    out.extend((f"layers/{k}", s) for k, s in zip(keras3_keys(rest), rest))
    return own_weights(layer), out


def _write_keras3_layer(group, layer) -> None:
    own, subs = _structure(layer)
    v = group.create_group("vars")
    v.attrs["name"] = layer.name
    for i, var in enumerate(own):
        v.create_dataset(str(i), data=_host(var))
    for path, sub in subs:
        _write_keras3_layer(group.create_group(path), sub)


def write_keras3_weights(root, model) -> None:
    layers = model_layers(model)
    g = root.create_group("layers")
    for key, layer in zip(keras3_keys(layers), layers):
        _write_keras3_layer(g.create_group(key), layer)
    v = root.create_group("vars")
    v.attrs["name"] = model.name
    for i, var in enumerate(own_weights(model)):
        v.create_dataset(str(i), data=_host(var))


def _vars_handles(group, source: str) -> list:
    v = safe_child(group, "vars", source, kind="group", required=False)
    if v is None:
        return []
    names = children(v, source)
    if not all(n.isdigit() for n in names):
        raise ValueError(f"{source}: group {v.name!r} holds {names[:5]}, expected datasets named 0, 1, 2, ...")
    return [DatasetHandle(safe_child(v, n, source, kind="dataset"), f"{source}: {v.name}/{n}")
            for n in sorted(names, key=int)]


def _flat_handles(group, source: str, depth: int = 0) -> list:
    """Every weight under ``group``: its own vars, then its sub-groups (alphabetically), recursively."""
    if depth > 16:
        raise ValueError(f"{source}: groups nested too deeply under {group.name!r}")
    h5py = require_h5py()
    out = _vars_handles(group, source)
    for name in children(group, source):
        if name == "vars":
            continue
        child = safe_child(group, name, source)
        if isinstance(child, h5py.Group):
            out.extend(_flat_handles(child, source, depth + 1))
    return out


class _Missing(Exception):
    pass


def _structural_pairs(group, layer, source: str, depth: int = 0) -> list:
    own, subs = _structure(layer)
    handles = _vars_handles(group, source)
    if len(handles) != len(own):
        raise _Missing()
    pairs = []
    for var, handle in zip(own, handles):
        if tuple(var.shape) != handle.shape:
            raise _Missing()
        pairs.append((var, handle))
    for path, sub in subs:
        if not sub.weights:
            continue
        child = safe_child(group, path, source, kind="group", required=False)
        if child is None or depth > 16:
            raise _Missing()
        pairs.extend(_structural_pairs(child, sub, source, depth + 1))
    return pairs


def _keras3_layer_pairs(group, layer, source: str) -> list:
    try:
        return _structural_pairs(group, layer, source)
    except _Missing:
        pass
    return check_pairs(layer, _flat_handles(group, source), source)


def _vars_name(group, source: str):
    v = safe_child(group, "vars", source, kind="group", required=False)
    if v is None:
        return None
    name = read_attr(v, "name", source)
    return None if name is None else _as_text(name, source)


def read_keras3_weights(root, model, by_name=False, skip_mismatch=False, source="load_weights") -> list:
    layers_group = safe_child(root, "layers", source, kind="group", required=False)
    entries = {}
    if layers_group is not None:
        for key in children(layers_group, source):
            entries[key] = safe_child(layers_group, key, source, kind="group")
    by_layer_name = {}
    for key, g in entries.items():
        name = _vars_name(g, source)
        if name is not None:
            by_layer_name.setdefault(name, key)
    layers = model_layers(model)
    pairs, used = [], set()
    for key, layer in zip(keras3_keys(layers), layers):
        if not layer.weights:
            continue
        if by_name:
            found = by_layer_name.get(layer.name)
        else:
            found = key if key in entries else by_layer_name.get(layer.name)
        if found is None:
            if by_name:
                continue
            raise ValueError(f"{source}: no weights for {_layer_label(layer)} in the file (looked for "
                             f"'layers/{key}' and a layer named {layer.name!r}; the file has {sorted(entries)[:20]})")
        used.add(found)
        try:
            pairs.extend(_keras3_layer_pairs(entries[found], layer, source))
        except ValueError as err:
            if not skip_mismatch:
                raise
            warnings.warn(f"{err}; skipping this layer (skip_mismatch=True)", stacklevel=3)
    if not by_name:
        extra = [k for k in entries if k not in used and _flat_handles(entries[k], source)]
        if extra:
            raise ValueError(f"{source}: the file holds weights for layers {extra[:20]} that model {model.name!r} "
                             f"does not have; load by_name=True to load the layers that match")
    own = own_weights(model)
    if own:
        handles = _vars_handles(root, source)
        if handles:
            pairs.extend(check_pairs(_OwnView(model, own), handles, source))
    return pairs


class _OwnView:
    def __init__(self, model, own):
        self.name, self.weights = model.name, own


# ------------------------------------------------------------------ optimizer state
def write_optimizer_state(group, optimizer) -> None:
    """The optimizer's ``get_state()`` as datasets ``0, 1, ...`` named by the attr ``weight_names``."""
    state = optimizer.get_state()
    keys = list(state)
    group.attrs["class_name"] = type(optimizer).__name__
    group.attrs["weight_names"] = _str_array(keys)
    for i, key in enumerate(keys):
        group.create_dataset(str(i), data=np.asarray(B.to_host(state[key])))


def read_optimizer_state(group, optimizer, variables, source: str) -> dict:
    """The state saved by :func:`write_optimizer_state`, each array's shape checked against the variable it
    belongs to (``variables``: the optimizer's variables in index order) before it is read."""
    keys = read_str_list(group, "weight_names", source) or []
    allowed = set(getattr(optimizer, "slot_names", ())) | {"ema"}
    extra = {k: np.asarray(B.to_host(v)) for k, v in optimizer._extra_state().items()}
    handles = {}
    for i, key in enumerate(keys):
        handle = DatasetHandle(safe_child(group, str(i), source, kind="dataset"), f"{source}: optimizer {key!r}")
        if key == "iterations":
            expected = ()
        elif key in extra:
            expected = tuple(extra[key].shape)
        else:
            slot, sep, index = key.rpartition("/")
            if not sep or not index.isdigit() or slot not in allowed:
                raise ValueError(f"{source}: unknown optimizer state {key!r} for {type(optimizer).__name__} "
                                 f"(slots: {sorted(allowed)})")
            if int(index) >= len(variables):
                raise ValueError(f"{source}: optimizer state {key!r} is for variable {index}, but the model has "
                                 f"{len(variables)} trainable variables")
            expected = tuple(variables[int(index)].shape)
        if handle.shape != expected:
            raise ValueError(f"{source}: optimizer state {key!r} has shape {_shape_str(handle.shape)}, expected "
                             f"{_shape_str(expected)}")
        handles[key] = handle
    state = {key: handle.read() for key, handle in handles.items()}
    if "iterations" in state:
        value = state["iterations"]
        if value.dtype.kind not in "iu" and not float(value) == int(value):
            raise ValueError(f"{source}: optimizer iterations {value!r} is not an integer")
        if int(value) < 0:
            raise ValueError(f"{source}: optimizer iterations {int(value)} is negative")
    return state


def optimizer_variables(model, optimizer) -> list:
    return optimizer.variables if getattr(optimizer, "variables", None) else model.trainable_weights


def detect_layout(f) -> str:
    """'keras2', 'keras2_model' (weights under ``model_weights``) or 'keras3' for an open file."""
    if "layer_names" in f.attrs:
        return "keras2"
    mw = safe_child(f, "model_weights", "load_weights", required=False)
    if mw is not None and "layer_names" in mw.attrs:
        return "keras2_model"
    if safe_child(f, "layers", "load_weights", required=False) is not None or \
            safe_child(f, "vars", "load_weights", required=False) is not None:
        return "keras3"
    raise ValueError("load_weights: the HDF5 file has neither Keras 2's layout (attribute 'layer_names') nor "
                     "Keras 3's (group 'layers'): not a weights file")


__all__ = ["write_keras2_weights", "read_keras2_weights", "write_keras3_weights", "read_keras3_weights",
           "write_optimizer_state", "read_optimizer_state", "detect_layout", "keras3_keys"]
