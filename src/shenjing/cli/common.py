"""What the ``shenjing`` commands share: the error type, reading config files, saving a model together with
what the command line needs to use it again (class names, feature columns, vocabulary), and loading it."""

from __future__ import annotations

import json
import os
import zipfile

META_MEMBER = "assets/shenjing_cli.json"
"""Where ``shenjing train`` keeps its metadata inside a ``.keras`` archive (``assets/`` is the one folder
``load_model`` allows beside the model's own members); an ``.h5`` model gets ``<file>.meta.json`` beside it."""

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


class CLIError(Exception):
    """A problem with the command's input: printed as ``shenjing <command>: error: <message>``, exit status 1."""


def check_keys(mapping: dict, allowed: set, where: str, shown: set | None = None) -> None:
    """Raise a CLIError naming the keys of ``mapping`` outside ``allowed``, listing ``shown`` (by default
    ``allowed``) as the expected ones."""
    unknown = sorted(set(mapping) - set(allowed))
    if unknown:
        expected = sorted(allowed if shown is None else shown)
        raise CLIError(f"{where}: unknown key(s) {unknown}; expected some of {expected}")


def require_file(path, what: str) -> str:
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise CLIError(f"{what} {path!r} does not exist")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path!r} is a directory, not a file")
    return path


# ------------------------------------------------------------------------------------------- configs
def read_config(path) -> dict:
    """A YAML (``.yaml`` / ``.yml``, needs PyYAML) or JSON config file as a dict."""
    path = require_file(path, "config file")
    try:
        with open(path, "rb") as f:
            data = f.read(4 * 1024 * 1024 + 1)
    except OSError as err:
        raise CLIError(f"cannot read the config file {path!r}: {err}") from None
    if len(data) > 4 * 1024 * 1024:
        raise CLIError(f"the config file {path!r} is larger than 4 MiB; is it really a config?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CLIError(f"the config file {path!r} is not UTF-8 text") from None
    is_yaml = path.lower().endswith((".yaml", ".yml"))
    if is_yaml:
        config = _parse_yaml(text, path)
    else:
        try:
            config = json.loads(text)
        except ValueError as err:
            raise CLIError(f"the config file {path!r} is not valid JSON: {err}"
                           + ("" if path.lower().endswith(".json") else
                              " (name a YAML file .yaml or .yml)")) from None
    if not isinstance(config, dict):
        raise CLIError(f"the config file {path!r} must hold a mapping (keys such as 'model', 'compile', 'fit', "
                       f"'dataset'), not a {type(config).__name__}")
    return config


def _parse_yaml(text: str, path: str):
    try:
        import yaml
    except ImportError:
        raise CLIError(f"{path!r} is a YAML file, and reading YAML needs PyYAML: pip install shenjing[yaml] "
                       f"(or pip install pyyaml), or write the config as JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise CLIError(f"the config file {path!r} is not valid YAML: {err}") from None


# ------------------------------------------------------------------------------------ model + metadata
def default_model_path(output, stem: str) -> str:
    """``--output``: a model file (``.keras`` / ``.h5``) or a folder (created) to hold ``<stem>.keras``;
    ``None``: ``<stem>.keras`` in the current folder."""
    if output is None:
        return f"{stem}.keras"
    output = os.path.expanduser(os.fspath(output))
    if output.lower().endswith(MODEL_SUFFIXES):
        folder = os.path.dirname(os.path.abspath(output))
        os.makedirs(folder, exist_ok=True)
        return output
    if os.path.exists(output) and not os.path.isdir(output):
        raise CLIError(f"--output {output!r} exists and is not a folder; give a folder or a .keras / .h5 file name")
    os.makedirs(output, exist_ok=True)
    return os.path.join(output, f"{stem}.keras")


def save_model_with_meta(model, path: str, meta: dict | None) -> None:
    """``shenjing.saving.save_model`` plus the command line's metadata (atomically for ``.keras``)."""
    from ..saving import atomic_path, save_model

    text = json.dumps(meta or {}, indent=1, sort_keys=True)
    if path.lower().endswith((".h5", ".hdf5")):
        save_model(model, path)
        if meta:
            with open(path + ".meta.json", "w", encoding="utf-8") as f:
                f.write(text)
        return
    with atomic_path(path) as tmp:
        save_model(model, tmp)
        if meta:
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(META_MEMBER, text, compress_type=zipfile.ZIP_DEFLATED)


def read_meta(path: str) -> dict:
    """The metadata ``shenjing train`` saved with a model ({} when there is none)."""
    text = None
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if META_MEMBER in archive.namelist():
                    info = archive.getinfo(META_MEMBER)
                    if info.file_size <= 16 * 1024 * 1024:
                        text = archive.read(META_MEMBER).decode("utf-8")
        elif os.path.isfile(path + ".meta.json"):
            with open(path + ".meta.json", encoding="utf-8") as f:
                text = f.read(16 * 1024 * 1024)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError):
        return {}
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def load_model_file(path, compile: bool = True):  # noqa: A002 - Keras's name
    """``(model, meta)`` from a saved model file, with errors worded for the command line."""
    from ..saving import load_model

    path = require_file(path, "model file")
    try:
        model = load_model(path, compile=compile)
    except ImportError as err:
        raise CLIError(f"cannot load {path!r}: {err}") from None
    except (ValueError, KeyError, OSError) as err:
        raise CLIError(f"cannot load the model {path!r}: {err}") from None
    return model, read_meta(path)


def loss_name(model) -> str:
    """The compiled loss as a lower-case name ('' when the model is not compiled or the loss is unnamed)."""
    spec = getattr(model, "_loss_spec", None)
    if spec is None:
        from ..saving.serialization import compile_config

        config = compile_config(model) or {}
        spec = config.get("loss")
    return describe_loss(spec)


def describe_loss(spec) -> str:
    if isinstance(spec, (list, tuple)) and spec:
        spec = spec[0]
    if isinstance(spec, dict):
        if "class_name" in spec:
            spec = spec["class_name"]
        elif spec:
            spec = next(iter(spec.values()))
    if spec is None:
        return ""
    if not isinstance(spec, str):
        spec = getattr(spec, "name", None) or getattr(spec, "__name__", None) or type(spec).__name__
    name = str(spec)
    # CamelCase class names -> snake_case, e.g. CategoricalCrossentropy -> categorical_crossentropy
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out += "_"
        out += ch.lower()
    return out
