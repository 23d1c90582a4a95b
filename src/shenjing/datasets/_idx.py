"""Host-side readers for IDX files (the MNIST format) and ``.npz`` archives.

Why this module imports NumPy directly (the one exception to "only ``backend/`` imports NumPy"):
reading a data file is host-side I/O, and the arrays it yields are host memory, exactly what Keras's
``load_data`` returns (NumPy ``uint8`` arrays). They are not computation arrays: the training loop moves
them to the active array module (``B.asarray``) batch by batch, so on a GPU backend the data set is never
copied to the device whole. ``B.xp`` may be CuPy, which cannot parse a byte buffer from a file.

IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian header — two zero bytes, a type code
(0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), the number of
dimensions — then one uint32 per dimension, then the data in C order. MNIST images have the magic number
0x00000803 (ubyte, 3 dimensions: count, rows, columns), labels 0x00000801 (ubyte, 1 dimension).

Every defect — not gzip, truncated gzip stream, bad CRC, bad magic, wrong dimensions, data shorter or
longer than the header says, absurd declared sizes — is a ``ValueError`` that names the file and says what
is wrong. Nothing is allocated from a header before its declared size has been checked against a limit.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
import zlib

import numpy

__all__ = ["read_idx", "parse_idx", "load_npz", "IMAGES_MAGIC", "LABELS_MAGIC", "MAX_DATA_BYTES"]

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
MAX_DATA_BYTES = 1 << 31
"""Largest data section accepted (2 GiB; MNIST's training images are 47 MB): a guard against corrupt headers."""

_TYPES = {0x08: numpy.dtype("u1"), 0x09: numpy.dtype("i1"), 0x0B: numpy.dtype(">i2"), 0x0C: numpy.dtype(">i4"),
          0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error, OSError)


def _describe(magic: int) -> str:
    return {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}.get(magic, "an IDX file")


class _Reader:
    """Reads exactly ``n`` bytes from a (possibly gzip) stream, turning stream errors into ValueErrors."""

    def __init__(self, f, name: str, compressed: bool):
        self.f, self.name, self.compressed = f, name, compressed

    def _fail(self, err):
        if isinstance(err, EOFError):
            return ValueError(f"{self.name}: the gzip stream is truncated (the file was cut short: {err})")
        kind = "gzip data is corrupt" if self.compressed else "could not be read"
        return ValueError(f"{self.name}: {kind} ({type(err).__name__}: {err})")

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        total = 0
        try:
            while total < len(view):
                n = self.f.readinto(view[total:])
                if not n:
                    break
                total += n
        except _GZIP_ERRORS as err:
            raise self._fail(err) from err
        return total

    def read(self, n: int) -> bytes:
        buffer = bytearray(n)
        got = self.readinto(buffer)
        return bytes(buffer[:got])


def _parse_stream(reader: _Reader, name: str, expected_magic, expected_shape, max_bytes: int) -> numpy.ndarray:
    head = reader.read(4)
    if len(head) < 4:
        raise ValueError(f"{name}: not an IDX file: it holds {len(head)} byte(s), fewer than the 4-byte magic number")
    magic = struct.unpack(">I", head)[0]
    zero, type_code, ndim = head[:2], head[2], head[3]
    if zero != b"\x00\x00" or type_code not in _TYPES or ndim == 0:
        expected = f" (expected 0x{expected_magic:08x}, {_describe(expected_magic)})" if expected_magic else ""
        raise ValueError(f"{name}: not an IDX file: bad magic number 0x{magic:08x}{expected}")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{name}: wrong IDX magic number 0x{magic:08x} ({_describe(magic)}, {ndim} dimension(s)); "
                         f"expected 0x{expected_magic:08x} ({_describe(expected_magic)})")
    dims_bytes = reader.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise ValueError(f"{name}: the IDX header is truncated: it declares {ndim} dimension(s) but holds "
                         f"{len(dims_bytes) // 4} dimension size(s)")
    dims = struct.unpack(f">{ndim}I", dims_bytes)
    if expected_shape is not None:
        if len(expected_shape) != ndim or any(e is not None and e != d for e, d in zip(expected_shape, dims)):
            shown = "(" + ", ".join("N" if e is None else str(e) for e in expected_shape) + ")"
            raise ValueError(f"{name}: wrong dimension header: the file declares shape {tuple(dims)}, expected "
                             f"{shown}")
    dtype = _TYPES[type_code]
    nbytes = dtype.itemsize
    for d in dims:
        nbytes *= d
    if nbytes > max_bytes:
        raise ValueError(f"{name}: the IDX header declares shape {tuple(dims)} = {nbytes:,} bytes of data, more than "
                         f"the {max_bytes:,}-byte limit; the header is corrupt")
    buffer = bytearray(nbytes)
    got = reader.readinto(buffer)
    if got < nbytes:
        raise ValueError(f"{name}: the data is truncated: the header declares shape {tuple(dims)} "
                         f"({nbytes:,} bytes) but the file holds only {got:,} bytes of data")
    extra = reader.read(1 << 16)
    if extra:
        raise ValueError(f"{name}: the file has extra bytes after the {nbytes:,} bytes of data its header declares "
                         f"(shape {tuple(dims)}); the file is corrupt or not the declared shape")
    array = numpy.frombuffer(buffer, dtype=dtype).reshape(dims)
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path, expected_magic: int | None = None, expected_shape=None,
             max_bytes: int = MAX_DATA_BYTES) -> numpy.ndarray:
    """Read an IDX file (gzip-compressed or not, recognised by its first bytes) as a writable NumPy array.

    ``expected_magic``: e.g. ``IMAGES_MAGIC``; ``expected_shape``: a tuple with ``None`` for any size.
    """
    path = os.fspath(path)
    with open(path, "rb") as raw:
        start = raw.read(2)
        raw.seek(0)
        compressed = start == _GZIP_MAGIC
        if path.endswith(".gz") and not compressed:
            raise ValueError(f"{path}: not a gzip file (it starts with {start!r}, not the gzip signature "
                             f"b'\\x1f\\x8b'); the file is corrupt or was saved decompressed under a .gz name")
        if compressed:
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _parse_stream(_Reader(f, path, True), path, expected_magic, expected_shape, max_bytes)
        return _parse_stream(_Reader(raw, path, False), path, expected_magic, expected_shape, max_bytes)


def parse_idx(data: bytes, name: str = "<bytes>", expected_magic: int | None = None, expected_shape=None,
              max_bytes: int = MAX_DATA_BYTES) -> numpy.ndarray:
    """Parse IDX bytes already in memory (gzip-compressed or not)."""
    import io

    stream = io.BytesIO(data)
    if data[:2] == _GZIP_MAGIC:
        with gzip.GzipFile(fileobj=stream, mode="rb") as f:
            return _parse_stream(_Reader(f, name, True), name, expected_magic, expected_shape, max_bytes)
    return _parse_stream(_Reader(stream, name, False), name, expected_magic, expected_shape, max_bytes)


def load_npz(path, keys) -> dict:
    """The arrays ``keys`` of an ``.npz`` archive, read with ``allow_pickle=False`` (object arrays are refused)."""
    path = os.fspath(path)
    try:
        with numpy.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise ValueError(f"{path}: the archive lacks the array(s) {missing}; it holds {sorted(archive.files)}")
            return {k: numpy.array(archive[k]) for k in keys}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a valid .npz archive ({type(err).__name__}: {err})") from err
    except ValueError as err:
        if str(err).startswith(path):
            raise
        raise ValueError(f"{path}: could not be read as an .npz archive of plain arrays ({err})") from err
