"""``save_weights`` / ``load_weights``: HDF5 (Keras 2 or Keras 3 layout) or ``.npz``.

The format follows the file name: ``*.weights.h5`` → Keras 3's layout; ``*.h5`` / ``*.hdf5`` → Keras 2's
layer-group layout; ``*.npz`` → NumPy's zip of ``.npy`` arrays. Loading looks at the file's contents
instead (HDF5 of either layout, a full-model ``.h5``, a ``.keras`` archive, or an ``.npz``).

The ``.npz`` layout: ``layer_names`` (a unicode array, the model's layers in order) and one array
``<i>/<j>`` per weight ``j`` of layer ``i`` (``top/<j>`` for the model's own weights). An ``.npz`` of
plain ``arr_0, arr_1, ...`` (``np.savez(path, *model.get_weights())``) loads too, in
``get_weights`` order. It is read without NumPy's loader: each member's header is parsed (no pickle:
object arrays are refused), its declared shape checked against the model before its data is read.
"""

from __future__ import annotations

import io
import math
import os
import re
import zipfile

import numpy as np

from . import hdf5 as H
from .atomic import atomic_open, atomic_path

MAX_NPZ_MEMBERS = 1_000_000
MAX_NAMES_BYTES = 64 * 1024 * 1024
_NPZ_KEY = re.compile(r"^(\d+|top)/(\d+)$")


def weights_format(path) -> str:
    """'keras3' (``.weights.h5``), 'keras2' (``.h5``, ``.hdf5``) or 'npz' for a file name."""
    name = os.fspath(path).lower()
    if name.endswith(".weights.h5"):
        return "keras3"
    if name.endswith((".h5", ".hdf5", ".keras2.h5")):
        return "keras2"
    if name.endswith(".npz"):
        return "npz"
    raise ValueError(f"save_weights: cannot tell the format from {os.fspath(path)!r}: name the file *.weights.h5 "
                     f"(Keras 3 layout), *.h5 (Keras 2 layout) or *.npz")


def save_weights(model, filepath, overwrite: bool = True, save_format: str | None = None) -> None:
    """Save the model's weights to ``filepath`` (atomically: the file is complete or not there)."""
    filepath = os.fspath(filepath)
    fmt = save_format or weights_format(filepath)
    if fmt in ("h5", "hdf5"):
        fmt = "keras2"
    if fmt not in ("keras2", "keras3", "npz"):
        raise ValueError(f"save_weights: unknown save_format {save_format!r}; expected 'keras2', 'keras3' or 'npz'")
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"save_weights: {filepath!r} exists and overwrite=False")
    H._check_built(model, "save_weights")
    if fmt == "npz":
        with atomic_open(filepath, "wb") as f:
            _write_npz(f, model)
        return
    h5py = H.require_h5py()
    with atomic_path(filepath) as tmp:
        with h5py.File(tmp, "w") as f:
            (H.write_keras2_weights if fmt == "keras2" else H.write_keras3_weights)(f, model)


def load_weights(model, filepath, by_name: bool = False, skip_mismatch: bool = False) -> None:
    """Load weights saved by :func:`save_weights` (or by Keras 2 / Keras 3) into ``model``.

    ``by_name``: match layers by name (layers missing from the file are left as they are); else by
    order (Keras 2 layout, ``.npz``) or by Keras 3's layer keys. ``skip_mismatch``: a layer whose weight
    count or shapes differ is skipped with a warning instead of raising. Nothing is assigned unless the
    whole file is valid.
    """
    filepath = os.fspath(filepath)
    source = f"load_weights({os.path.basename(filepath)!r})"
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"{source}: no such file {filepath!r}")
    H._check_built(model, source)
    if H.is_hdf5(filepath):
        with H.open_h5(filepath, source) as f:
            pairs = read_weights_group(f, model, by_name, skip_mismatch, source)
            H.assign(pairs)
        return
    from .archive import file_signature

    if zipfile.is_zipfile(filepath) or file_signature(filepath) == "zip":
        with _open_zip(filepath, source) as z:
            names = set(z.namelist())
            if "model.weights.h5" in names and "config.json" in names:  # a .keras archive
                from .archive import read_member

                data = read_member(z, "model.weights.h5", _weights_limit(model), source)
                with H.open_h5(io.BytesIO(data), source) as f:
                    H.assign(read_weights_group(f, model, by_name, skip_mismatch, source))
                return
            H.assign(_read_npz(z, model, by_name, skip_mismatch, source))
        return
    raise ValueError(f"{source}: {filepath!r} is neither an HDF5 file nor a zip (.npz / .keras) file")


def read_weights_group(f, model, by_name, skip_mismatch, source) -> list:
    layout = H.detect_layout(f)
    if layout == "keras2":
        return H.read_keras2_weights(f, model, by_name, skip_mismatch, source)
    if layout == "keras2_model":
        return H.read_keras2_weights(f["model_weights"], model, by_name, skip_mismatch, source)
    return H.read_keras3_weights(f, model, by_name, skip_mismatch, source)


def _weights_limit(model) -> int:
    """An upper bound for a weights member of ``model``: room for the optimizer's slots and overhead."""
    nbytes = sum(int(math.prod(w.shape)) * 8 for w in model.weights)
    return 8 * nbytes + 64 * 1024 * 1024


# --------------------------------------------------------------------------------- npz
def _write_npz(f, model) -> None:
    layers = H.model_layers(model)
    arrays = {"layer_names": np.array([layer.name for layer in layers], dtype=str)}
    for i, layer in enumerate(layers):
        for j, var in enumerate(layer.weights):
            arrays[f"{i}/{j}"] = H._host(var)
    for j, var in enumerate(H.own_weights(model)):
        arrays[f"top/{j}"] = H._host(var)
    np.savez(f, **arrays)


def _open_zip(path, source):
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{source}: not a readable zip archive, truncated or corrupt ({err})") from None


class NpyHandle:
    """One ``.npy`` member of a zip: its header parsed (declared shape and dtype), data read on demand."""

    def __init__(self, zf, info, label: str):
        self.label = label
        self._zf, self._info = zf, info
        try:
            with zf.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version in ((2, 0), (3, 0)):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
                self._offset = fp.tell()
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError) as err:
            raise ValueError(f"{label}: not a valid .npy array ({err})") from None
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "fiubU" or dtype.itemsize > 4096:
            raise ValueError(f"{label}: dtype {dtype} is refused (only numeric arrays are read; never pickled "
                             f"objects)")
        if any(not isinstance(d, int) or d < 0 for d in shape):
            raise ValueError(f"{label}: invalid shape {shape}")
        self.shape, self.dtype, self.fortran = tuple(shape), dtype, fortran
        self.nbytes = math.prod(self.shape) * dtype.itemsize
        if self.nbytes + self._offset != info.file_size:
            raise ValueError(f"{label}: the header declares {self.nbytes} bytes of data, but the member holds "
                             f"{info.file_size - self._offset} (corrupt or hostile file)")

    def read(self):
        try:
            with self._zf.open(self._info) as fp:
                fp.read(self._offset)
                data = fp.read(self.nbytes)
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
            raise ValueError(f"{self.label}: the data cannot be read ({err})") from None
        if len(data) != self.nbytes:
            raise ValueError(f"{self.label}: truncated data ({len(data)} of {self.nbytes} bytes)")
        array = np.frombuffer(data, dtype=self.dtype)
        return array.reshape(self.shape, order="F" if self.fortran else "C").copy()


def npz_members(z, source: str) -> dict:
    infos = z.infolist()
    if len(infos) > MAX_NPZ_MEMBERS:
        raise ValueError(f"{source}: {len(infos)} members, more than the limit")
    out = {}
    for info in infos:
        if info.filename.endswith(".npy"):
            out[info.filename[:-4]] = info
    return out


def _read_npz(z, model, by_name, skip_mismatch, source) -> list:
    members = npz_members(z, source)
    if "layer_names" not in members:
        return _read_plain_npz(z, members, model, source)
    info = members["layer_names"]
    if info.file_size > MAX_NAMES_BYTES:
        raise ValueError(f"{source}: 'layer_names' declares {info.file_size} bytes, more than the limit")
    names_handle = NpyHandle(z, info, f"{source}: layer_names")
    if names_handle.dtype.kind != "U" or len(names_handle.shape) != 1:
        raise ValueError(f"{source}: 'layer_names' must be a 1-d unicode array, got {names_handle.dtype}")
    names = [str(n) for n in names_handle.read().tolist()]
    per_layer = {}
    for key, info in members.items():
        match = _NPZ_KEY.match(key)
        if match is None:
            if key != "layer_names":
                raise ValueError(f"{source}: unexpected member {key!r}")
            continue
        per_layer.setdefault(match.group(1), {})[int(match.group(2))] = info
    file_layers = []
    for i, name in enumerate(names):
        entries = per_layer.get(str(i), {})
        if sorted(entries) != list(range(len(entries))):
            raise ValueError(f"{source}: layer {name!r} has weights {sorted(entries)}, expected 0..{len(entries) - 1}")
        file_layers.append((name, [_numeric(NpyHandle(z, entries[j], f"{source}: layer {name!r}, weight {j}"))
                                   for j in range(len(entries))]))
    pairs = H.match_layers(model, file_layers, by_name, skip_mismatch, source)
    top = per_layer.get("top", {})
    own = H.own_weights(model)
    if own and top:
        handles = [_numeric(NpyHandle(z, top[j], f"{source}: top/{j}")) for j in sorted(top)]
        pairs.extend(H.check_pairs(H._OwnView(model, own), handles, source))
    return pairs


def _numeric(handle):
    if handle.dtype.kind not in "fiub":
        raise ValueError(f"{handle.label}: dtype {handle.dtype}, expected a numeric array")
    return handle


def _read_plain_npz(z, members, model, source) -> list:
    keys = [k for k in members if re.fullmatch(r"arr_\d+", k)]
    if not keys or len(keys) != len(members):
        raise ValueError(f"{source}: an .npz of weights needs 'layer_names' and '<layer>/<weight>' arrays (as "
                         f"save_weights writes) or only arr_0, arr_1, ... in get_weights() order; found "
                         f"{sorted(members)[:10]}")
    keys.sort(key=lambda k: int(k[4:]))
    handles = [_numeric(NpyHandle(z, members[k], f"{source}: {k}")) for k in keys]
    return H.check_pairs(H._OwnView(model, model.weights), handles, source)


__all__ = ["save_weights", "load_weights", "weights_format"]
