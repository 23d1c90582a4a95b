"""Finding, fetching and checking an MNIST-layout data set (four IDX files), shared by ``mnist`` and
``fashion_mnist``.

Where the files come from, in order:

1. ``path=``: a directory holding the four files (``.gz``, or decompressed without the suffix), or the
   path of a Keras-style ``.npz`` (arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``; read with
   ``allow_pickle=False``). A relative ``.npz`` name that is not found is also looked up in the cache
   folder, as Keras does.
2. the cache folder ``$SHENJING_HOME/datasets/<name>`` (``~/.shenjing/datasets/<name>`` by default);
   cached files are checked against the known checksums;
3. a download from the mirror (``origin=``, else the ``SHENJING_<NAME>_ORIGIN`` environment variable, else
   the module's default base URL), verified and written atomically into the cache by ``get_file``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import backend as B
from ..utils.data_utils import get_file
from ._idx import IMAGES_MAGIC, LABELS_MAGIC, load_npz, read_idx

ROLES = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class IdxDataset:
    """What a loader needs to know about one MNIST-layout data set."""

    name: str                      # e.g. 'mnist', used in messages and as the cache sub-folder
    files: dict                    # role ('x_train', ...) -> file name
    hashes: dict                   # file name -> {'md5': ..., 'sha256': ...} (known digests only)
    origin: str                    # default base URL (ends with '/')
    origin_env: str                # environment variable overriding the base URL
    image_shape: tuple = (28, 28)
    num_classes: int = 10
    sizes: dict = field(default_factory=lambda: {"train": 60000, "test": 10000})

    @property
    def cache_subdir(self) -> str:
        return os.path.join("datasets", self.name)


def base_url(spec: IdxDataset, origin: str | None = None) -> str:
    """The base URL downloads come from: ``origin``, else ``$<origin_env>``, else the default mirror."""
    base = origin or os.environ.get(spec.origin_env) or spec.origin
    return base if base.endswith("/") else base + "/"


def _check_pair(spec: IdxDataset, x, y, split: str, where: str):
    if x.ndim != 3 or tuple(x.shape[1:]) != tuple(spec.image_shape):
        raise ValueError(f"{where}: x_{split} has shape {x.shape}, expected (N, "
                         f"{', '.join(map(str, spec.image_shape))})")
    if y.ndim != 1:
        raise ValueError(f"{where}: y_{split} has shape {y.shape}, expected (N,)")
    if len(x) != len(y):
        raise ValueError(f"{where}: x_{split} holds {len(x)} images but y_{split} holds {len(y)} labels")
    if x.dtype.kind not in "ui" or y.dtype.kind not in "ui":
        raise ValueError(f"{where}: expected integer (uint8) arrays, got x_{split} {x.dtype} and y_{split} {y.dtype}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
        raise ValueError(f"{where}: y_{split} holds labels from {int(y.min())} to {int(y.max())}, expected "
                         f"0..{spec.num_classes - 1}")


def _read_files(spec: IdxDataset, paths: dict, where: str):
    arrays = {}
    for role in ROLES:
        image = role.startswith("x")
        arrays[role] = read_idx(paths[role], IMAGES_MAGIC if image else LABELS_MAGIC,
                                (None,) + tuple(spec.image_shape) if image else (None,))
    for split in ("train", "test"):
        _check_pair(spec, arrays["x_" + split], arrays["y_" + split], split, where)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _from_directory(spec: IdxDataset, directory: str, method: str):
    paths, missing = {}, []
    for role in ROLES:
        fname = spec.files[role]
        candidates = [os.path.join(directory, fname)]
        if fname.endswith(".gz"):
            candidates.append(os.path.join(directory, fname[:-3]))
        found = next((p for p in candidates if os.path.isfile(p)), None)
        if found is None:
            missing.append(fname)
        paths[role] = found
    if missing:
        raise FileNotFoundError(f"{method}: the directory {directory} lacks {', '.join(missing)} (expected the four "
                                f"{spec.name} IDX files: {', '.join(spec.files[r] for r in ROLES)})")
    return _read_files(spec, paths, f"{method}({directory})")


def _from_npz(spec: IdxDataset, path: str, method: str):
    arrays = load_npz(path, ROLES)
    for split in ("train", "test"):
        _check_pair(spec, arrays["x_" + split], arrays["y_" + split], split, f"{method}({path})")
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def fetch(spec: IdxDataset, origin: str | None = None, verbose: int = 1) -> dict:
    """The four files in the cache (downloaded and verified if needed): role -> local path."""
    base = base_url(spec, origin)
    paths = {}
    for role in ROLES:
        fname = spec.files[role]
        paths[role] = get_file(fname, base + fname, file_hash=spec.hashes.get(fname), cache_subdir=spec.cache_subdir,
                               verbose=verbose)
    return paths


def load(spec: IdxDataset, path=None, origin: str | None = None, verbose: int = 1):
    """``((x_train, y_train), (x_test, y_test))`` as NumPy uint8 arrays (see the module docstring)."""
    method = f"{spec.name}.load_data"
    if path is not None:
        path = os.path.expanduser(os.fspath(path))
        if os.path.isdir(path):
            return _from_directory(spec, path, method)
        if os.path.isfile(path):
            return _from_npz(spec, path, method)
        cached = os.path.join(B.shenjing_home(), "datasets", path)
        if not os.path.isabs(path) and path.endswith(".npz") and os.path.isfile(cached):
            return _from_npz(spec, cached, method)
        raise FileNotFoundError(f"{method}: path={path!r} is neither a directory holding the four {spec.name} IDX "
                                f"files nor an .npz file")
    paths = fetch(spec, origin, verbose)
    return _read_files(spec, paths, method)
