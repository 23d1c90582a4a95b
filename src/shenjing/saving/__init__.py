"""Saving and loading models: configs and JSON, weights (HDF5 / .npz), whole models (``.keras`` / ``.h5``),
checkpoint callbacks and atomic writes.

    from shenjing.saving import save_model, load_model, model_to_json, model_from_json
    save_model(model, "model.keras")            # config + weights + compile arguments + optimizer state
    model = load_model("model.keras")           # compiled, ready to go on with fit()
    save_weights(model, "w.h5")                 # Keras 2 layout; "w.weights.h5": Keras 3 layout; "w.npz"
    load_weights(model, "w.h5", by_name=False, skip_mismatch=False)

Loading never runs code: no pickle, no import of a name found in a file (custom classes are registered
with :func:`register_keras_serializable` or passed as ``custom_objects``).
"""

from .archive import load_model, save_model
from .atomic import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text
from .serialization import (
    compile_config,
    custom_object_scope,
    deserialize_layer,
    get_registered_name,
    get_registered_object,
    model_config,
    model_from_config,
    model_from_json,
    model_to_json,
    register_keras_serializable,
    serialize_layer,
)
from .weights import load_weights, save_weights

__all__ = [
    "save_model", "load_model", "save_weights", "load_weights", "model_to_json", "model_from_json",
    "model_config", "model_from_config", "serialize_layer", "deserialize_layer", "register_keras_serializable",
    "get_registered_name", "get_registered_object", "custom_object_scope", "compile_config",
    "atomic_open", "atomic_path", "atomic_write_bytes", "atomic_write_text",
    "ModelCheckpoint", "BackupAndRestore",
]


def __getattr__(name):  # the callbacks import shenjing.callbacks, which the models import: load them lazily
    if name in ("ModelCheckpoint", "BackupAndRestore"):
        from . import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'shenjing.saving' has no attribute {name!r}")
