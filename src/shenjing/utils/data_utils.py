"""Files and data feeding: ``get_file`` (a verified, atomic download cache) and ``Sequence``.

``get_file`` follows Keras's ``keras.utils.get_file``: a file named ``fname`` is kept in
``<cache_dir>/<cache_subdir>/`` (``cache_dir`` defaults to the shenjing home, ``$SHENJING_HOME`` or
``~/.shenjing``); when it is missing, or its checksum does not match, it is downloaded from ``origin``.

A download never leaves a partial or unverified file behind: the bytes go to a temporary file in the
destination folder, the length is checked against ``Content-Length``, every requested checksum is
checked, the file is flushed and ``fsync``-ed, and only then ``os.replace``-d onto its final name (an
atomic rename on POSIX and Windows). On any failure the temporary file is deleted and the cache is left
as it was.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping

from .. import backend as B

__all__ = ["get_file", "validate_file", "hash_file", "Sequence", "DownloadError"]

_CHUNK = 1 << 20
_ALGORITHMS = ("md5", "sha256")


class DownloadError(OSError):
    """A file could not be fetched from its origin (network error, HTTP error, short read)."""


def _resolve_algorithm(file_hash: str, hash_algorithm: str) -> str:
    if hash_algorithm in ("auto", None):
        return "sha256" if len(file_hash) == 64 else "md5"
    if hash_algorithm not in _ALGORITHMS:
        raise ValueError(f"get_file: hash_algorithm must be 'auto', 'md5' or 'sha256', got {hash_algorithm!r}")
    return hash_algorithm


def _expected_hashes(file_hash, hash_algorithm) -> dict:
    """``file_hash`` (a hex string, or a mapping ``{'md5': ..., 'sha256': ...}``) as ``{algorithm: hex}``."""
    if file_hash is None:
        return {}
    if isinstance(file_hash, Mapping):
        hashes = {}
        for algorithm, value in file_hash.items():
            if algorithm not in _ALGORITHMS:
                raise ValueError(f"get_file: unknown hash algorithm {algorithm!r} in file_hash; expected 'md5' or "
                                 f"'sha256'")
            if value:
                hashes[algorithm] = str(value).lower()
        return hashes
    if not isinstance(file_hash, str):
        raise TypeError(f"get_file: file_hash must be a hex string or a dict {{algorithm: hex}}, got "
                        f"{type(file_hash).__name__}")
    return {_resolve_algorithm(file_hash, hash_algorithm): file_hash.lower()}


def hash_file(fpath: str, algorithm: str = "sha256", chunk_size: int = _CHUNK) -> str:
    """The hex digest of a file (``'md5'`` or ``'sha256'``; ``'auto'`` means sha256)."""
    if algorithm == "auto":
        algorithm = "sha256"
    hasher = hashlib.new(algorithm)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath: str, file_hash, algorithm: str = "auto", chunk_size: int = _CHUNK) -> bool:
    """Whether the file matches ``file_hash`` (every algorithm given in a mapping must match)."""
    expected = _expected_hashes(file_hash, algorithm)
    hashers = {a: hashlib.new(a) for a in expected}
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            for hasher in hashers.values():
                hasher.update(chunk)
    return all(hashers[a].hexdigest() == h for a, h in expected.items())


def _fsync_dir(path: str) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse
        pass
    finally:
        os.close(fd)


def _download(origin: str, fpath: str, expected: dict, timeout: float, verbose: int) -> None:
    """Fetch ``origin`` into ``fpath`` atomically, checking length and checksums first."""
    directory = os.path.dirname(fpath) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(fpath) + ".", suffix=".part", dir=directory)
    hashers = {a: hashlib.new(a) for a in expected}
    try:
        if verbose:
            print(f"Downloading data from {origin}", file=sys.stderr)
        try:
            response = urllib.request.urlopen(origin, timeout=timeout)  # noqa: S310 - the URL is the user's origin
        except urllib.error.HTTPError as err:
            raise DownloadError(f"get_file: could not download {origin}: HTTP {err.code} {err.reason}") from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(f"get_file: could not download {origin}: {reason}") from err
        received = 0
        with response, os.fdopen(fd, "wb") as out:
            fd = None
            length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as err:  # IncompleteRead, reset, timeout
                    raise DownloadError(f"get_file: the download of {origin} broke off after {received} bytes "
                                        f"({type(err).__name__}: {err})") from err
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                for hasher in hashers.values():
                    hasher.update(chunk)
            if length is not None and length.isdigit() and int(length) != received:
                raise DownloadError(f"get_file: the download of {origin} is truncated: received {received} bytes, "
                                    f"the server announced {int(length)}")
            for algorithm, want in expected.items():
                got = hashers[algorithm].hexdigest()
                if got != want:
                    raise ValueError(f"get_file: the file downloaded from {origin} ({received} bytes) failed its "
                                     f"{algorithm} check: got {got}, expected {want}. The download was deleted "
                                     f"and nothing was cached; the file is corrupt or the origin serves a different "
                                     f"version")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, fpath)
        tmp = None
        _fsync_dir(directory)
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def get_file(fname: str, origin: str, file_hash=None, hash_algorithm: str = "auto", cache_subdir: str = "datasets",
             cache_dir: str | None = None, md5_hash: str | None = None, timeout: float = 60.0, verbose: int = 1,
             force_download: bool = False) -> str:
    """The local path of ``fname``, downloaded from ``origin`` into the cache if it is not there (Keras-like).

    Args:
        fname: the file name in the cache (a path relative to the cache folder; absolute paths are used as is).
        origin: the URL to download from (``http://``, ``https://`` or ``file://``).
        file_hash: the expected hex digest (md5 or sha256, told apart by its length when
            ``hash_algorithm='auto'``), or a dict ``{'md5': ..., 'sha256': ...}`` that must all match.
            A cached file that fails the check is downloaded again.
        hash_algorithm: ``'auto'``, ``'md5'`` or ``'sha256'``.
        cache_subdir: the folder under ``cache_dir`` (an absolute path is used as is).
        cache_dir: the cache root; defaults to the shenjing home (``$SHENJING_HOME`` or ``~/.shenjing``).
        md5_hash: Keras 1 spelling of ``file_hash`` with ``hash_algorithm='md5'``.
        timeout: the socket timeout of the download, in seconds.
        verbose: 0 to download silently.
        force_download: download even if a valid cached copy exists.

    Raises:
        DownloadError: (an ``OSError``) the origin could not be reached, answered with an HTTP error, or the
            transfer was cut short.
        ValueError: the downloaded bytes do not match ``file_hash`` (the download is deleted).
    """
    if not fname or not isinstance(fname, str):
        raise ValueError(f"get_file: fname must be a non-empty file name, got {fname!r}")
    if not origin or not isinstance(origin, str):
        raise ValueError(f"get_file: origin must be a URL, got {origin!r}")
    if file_hash is None and md5_hash is not None:
        file_hash, hash_algorithm = md5_hash, "md5"
    expected = _expected_hashes(file_hash, hash_algorithm)
    cache_dir = os.path.expanduser(cache_dir) if cache_dir is not None else B.shenjing_home()
    datadir = os.path.join(cache_dir, cache_subdir)
    fpath = os.path.join(datadir, fname)
    os.makedirs(os.path.dirname(fpath) or ".", exist_ok=True)

    if os.path.exists(fpath) and not force_download:
        if not expected or validate_file(fpath, expected):
            return fpath
        if verbose:
            print(f"get_file: the cached {fpath} does not match its checksum; downloading it again",
                  file=sys.stderr)
    _download(origin, fpath, expected, timeout, verbose)
    return fpath


class Sequence:
    """Base class for data fed to ``fit`` / ``evaluate`` / ``predict`` batch by batch (like Keras's).

    Implement ``__getitem__(index)`` (the batch number ``index``: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``)
    and ``__len__`` (the number of batches per epoch); ``on_epoch_end`` is called after every epoch (shuffle
    there). Iterating a ``Sequence`` yields its batches once, in order.

        class Batches(Sequence):
            def __init__(self, x, y, batch_size):
                self.x, self.y, self.batch_size = x, y, batch_size
            def __len__(self):
                return -(-len(self.x) // self.batch_size)
            def __getitem__(self, i):
                s = slice(i * self.batch_size, (i + 1) * self.batch_size)
                return self.x[s], self.y[s]
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: a Sequence must implement __getitem__(index)")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__}: a Sequence must implement __len__()")

    def on_epoch_end(self) -> None:
        """Called at the end of every epoch; does nothing unless overridden."""

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
