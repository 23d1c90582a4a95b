"""Whole models: ``save_model`` / ``load_model``.

``*.keras`` (any name but ``.h5``): a zip archive laid out like Keras 3's::

    metadata.json       {"shenjing_version", "keras_version", "date_saved", "format"}
    config.json         {"class_name", "config": model config, "compile_config": {optimizer, loss, metrics,
                         loss_weights, weighted_metrics}}
    model.weights.h5    the weights in Keras 3's layout, plus the group ``optimizer_state``

``*.h5``: Keras 2's full-model HDF5 file: root attributes ``model_config`` and ``training_config``
(JSON), ``keras_version``, ``backend``; the weights in the group ``model_weights`` (Keras 2 layout);
the optimizer state in ``optimizer_weights``.

``load_model`` rebuilds the architecture from the config (no code is imported or run: see
:mod:`.serialization`), loads the weights, compiles the model as it was compiled and restores the
optimizer's state, so that ``fit`` goes on exactly where it stopped. Every member's declared size is
checked before it is read: a zip bomb or a huge member is refused, not unpacked.
"""

from __future__ import annotations

import datetime
import io
import os
import zipfile

from . import hdf5 as H
from . import serialization as S
from .atomic import atomic_open, atomic_path

ARCHIVE_FORMAT = "shenjing.keras/1"
MAX_JSON_MEMBER = 64 * 1024 * 1024
_MEMBERS = ("metadata.json", "config.json", "model.weights.h5")


def _metadata() -> dict:
    from .. import __version__

    return {"shenjing_version": __version__, "keras_version": f"shenjing-{__version__}",
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"), "format": ARCHIVE_FORMAT}


def _optimizer(model):
    optimizer = getattr(model, "optimizer", None)
    return optimizer if getattr(model, "compiled", False) and optimizer is not None else None


def _weights_h5_bytes(model, include_optimizer: bool) -> bytes:
    h5py = H.require_h5py()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        H.write_keras3_weights(f, model)
        optimizer = _optimizer(model)
        if include_optimizer and optimizer is not None:
            H.write_optimizer_state(f.create_group("optimizer_state"), optimizer)
    return buffer.getvalue()


def save_model(model, filepath, overwrite: bool = True, include_optimizer: bool = True) -> None:
    """Save architecture, weights, compile arguments and optimizer state to one file (atomically)."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"save_model: {filepath!r} exists and overwrite=False")
    H._check_built(model, "save_model")
    entry = S.serialize_layer(model)
    compiled = S.compile_config(model)
    if filepath.lower().endswith((".h5", ".hdf5")):
        _save_h5(model, filepath, entry, compiled, include_optimizer)
        return
    entry["compile_config"] = compiled
    config_text = S.to_json(entry)
    metadata_text = S.to_json(_metadata())
    weights = _weights_h5_bytes(model, include_optimizer)
    with atomic_open(filepath, "wb") as f:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("metadata.json", metadata_text, compress_type=zipfile.ZIP_DEFLATED)
            z.writestr("config.json", config_text, compress_type=zipfile.ZIP_DEFLATED)
            z.writestr("model.weights.h5", weights, compress_type=zipfile.ZIP_STORED)


def _save_h5(model, filepath, entry, compiled, include_optimizer) -> None:
    h5py = H.require_h5py()
    from .. import __version__

    with atomic_path(filepath) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["keras_version"] = f"shenjing-{__version__}"
            f.attrs["backend"] = H.KERAS2_BACKEND
            f.attrs["model_config"] = S.to_json(entry)
            if compiled is not None:
                training = dict(compiled)
                training["optimizer_config"] = training.pop("optimizer")
                f.attrs["training_config"] = S.to_json(training)
            H.write_keras2_weights(f.create_group("model_weights"), model)
            optimizer = _optimizer(model)
            if include_optimizer and optimizer is not None:
                H.write_optimizer_state(f.create_group("optimizer_weights"), optimizer)


# ------------------------------------------------------------------------------- load
def read_member(z, name: str, limit: int, source: str) -> bytes:
    """A zip member's bytes, refused if its declared size exceeds ``limit`` (checked before reading)."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ValueError(f"{source}: the archive has no {name!r} (members: {z.namelist()[:10]})") from None
    if info.file_size > limit:
        raise ValueError(f"{source}: member {name!r} declares {info.file_size} bytes uncompressed, more than the "
                         f"limit of {limit} for this model (a corrupt or hostile archive)")
    if info.flag_bits & 0x1:
        raise ValueError(f"{source}: member {name!r} is encrypted")
    try:
        with z.open(info) as fp:
            data = fp.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as err:
        raise ValueError(f"{source}: member {name!r} cannot be read (corrupt or truncated archive): {err}") from None
    if len(data) != info.file_size:
        raise ValueError(f"{source}: member {name!r} holds {len(data)} bytes, {info.file_size} declared")
    return data


def load_model(filepath, custom_objects: dict | None = None, compile: bool = True):  # noqa: A002 - Keras's name
    """Rebuild a model saved by :func:`save_model` (a ``.keras`` archive or a Keras 2 full-model ``.h5``)."""
    filepath = os.fspath(filepath)
    source = f"load_model({os.path.basename(filepath)!r})"
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"{source}: no such file {filepath!r}")
    if os.path.isdir(filepath):
        raise ValueError(f"{source}: {filepath!r} is a directory; expected a .keras archive or an .h5 file")
    if H.is_hdf5(filepath):
        return _load_h5(filepath, custom_objects, compile, source)
    if zipfile.is_zipfile(filepath) or file_signature(filepath) == "zip":
        return _load_archive(filepath, custom_objects, compile, source)
    raise ValueError(f"{source}: {filepath!r} is neither a .keras (zip) archive nor an HDF5 file")


def file_signature(path) -> str | None:
    """'zip' or 'hdf5' from a file's first bytes (a truncated file keeps its signature), else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    return None


def _build(entry, custom_objects, source):
    from ..models import Model

    if not isinstance(entry, dict):
        raise ValueError(f"{source}: the model config must be a JSON object")
    entry = {k: v for k, v in entry.items() if k in ("class_name", "config", "registered_name")}
    model = S.deserialize_layer(entry, custom_objects=custom_objects)
    if not isinstance(model, Model):
        raise ValueError(f"{source}: the config describes a {type(model).__name__} layer, not a model")
    return model


def _restore_optimizer(model, group, source) -> None:
    if group is None or _optimizer(model) is None:
        return
    optimizer = model.optimizer
    state = H.read_optimizer_state(group, optimizer, H.optimizer_variables(model, optimizer), source)
    optimizer.set_state(state)


def _load_archive(filepath, custom_objects, compile, source):
    from .weights import _open_zip, _weights_limit

    with _open_zip(filepath, source) as z:
        names = z.namelist()
        unexpected = [n for n in names if n not in _MEMBERS and not n.startswith("assets/")]
        if unexpected:
            raise ValueError(f"{source}: unexpected archive members {unexpected[:10]}")
        config = S.parse_json(read_member(z, "config.json", MAX_JSON_MEMBER, source), f"{source}, config.json")
        if "metadata.json" in names:
            S.parse_json(read_member(z, "metadata.json", MAX_JSON_MEMBER, source), f"{source}, metadata.json")
        model = _build(config, custom_objects, source)
        compiled = config.get("compile_config")
        if compile and compiled:
            S.compile_from_config(model, compiled, custom_objects)
        data = read_member(z, "model.weights.h5", _weights_limit(model), source)
    with H.open_h5(io.BytesIO(data), f"{source}, model.weights.h5") as f:
        pairs = H.read_keras3_weights(f, model, source=source)
        H.assign(pairs)
        if compile and compiled:
            _restore_optimizer(model, H.safe_child(f, "optimizer_state", source, kind="group", required=False),
                               source)
    return model


def _load_h5(filepath, custom_objects, compile, source):
    with H.open_h5(filepath, source) as f:
        config = H.read_json_attr(f, "model_config", source)
        if config is None:
            raise ValueError(f"{source}: the HDF5 file has no 'model_config' attribute: it holds weights only; build "
                             f"the model and use load_weights")
        model = _build(config, custom_objects, source)
        training = H.read_json_attr(f, "training_config", source)
        compiled = None
        if compile and isinstance(training, dict) and training.get("optimizer_config") is not None:
            compiled = dict(training)
            compiled["optimizer"] = compiled.pop("optimizer_config")
            S.compile_from_config(model, compiled, custom_objects)
        group = H.safe_child(f, "model_weights", source, kind="group", required=False)
        H.assign(H.read_keras2_weights(group if group is not None else f, model, source=source))
        if compiled is not None:
            _restore_optimizer(model, H.safe_child(f, "optimizer_weights", source, kind="group", required=False),
                               source)
    return model


__all__ = ["save_model", "load_model", "read_member"]
