"""The IDX parser on small hand-made files, good and corrupt."""

import gzip
import struct
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shenjing.datasets._idx import IMAGES_MAGIC, LABELS_MAGIC, load_npz, parse_idx, read_idx

CODES = {"u1": 0x08, "i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(array, dtype="u1", dims=None, type_code=None, ndim=None):
    array = np.asarray(array)
    dims = array.shape if dims is None else dims
    ndim = len(dims) if ndim is None else ndim
    code = CODES[dtype] if type_code is None else type_code
    header = bytes([0, 0, code, ndim]) + struct.pack(f">{len(dims)}I", *dims)
    return header + array.astype(dtype).tobytes()


def write(tmp_path, name, data, compress=True):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if compress else data)
    return str(path)


IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)


def test_reads_gzip_and_plain_images_and_labels(tmp_path):
    images = read_idx(write(tmp_path, "img.gz", idx_bytes(IMAGES)), IMAGES_MAGIC, (None, 3, 4))
    np.testing.assert_array_equal(images, IMAGES)
    assert images.dtype == np.uint8 and images.flags.writeable
    labels = read_idx(write(tmp_path, "lab", idx_bytes([7, 0, 9]), compress=False), LABELS_MAGIC, (None,))
    np.testing.assert_array_equal(labels, [7, 0, 9])


@pytest.mark.parametrize("dtype", [">i2", ">i4", ">f4", ">f8", "i1"])
def test_other_types_are_big_endian_and_come_back_native(tmp_path, dtype):
    values = np.array([[-3, 1000], [7, -1]]) if dtype != "i1" else np.array([[-3, 100], [7, -1]])
    out = read_idx(write(tmp_path, "x.gz", idx_bytes(values, dtype)))
    np.testing.assert_array_equal(out, values)
    assert out.dtype.isnative


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.sampled_from(sorted(CODES)), st.booleans(),
       st.integers(0, 2**16))
def test_round_trip(shape, dtype, compress, seed):
    values = np.random.default_rng(seed).integers(-100, 100, size=shape)
    if dtype == "u1":
        values = np.abs(values)
    data = idx_bytes(values, dtype)
    np.testing.assert_array_equal(parse_idx(gzip.compress(data) if compress else data), values)


@pytest.mark.parametrize("data, message", [
    (b"", r"holds 0 byte\(s\), fewer than the 4-byte magic"),
    (b"\x00\x00", "fewer than the 4-byte magic"),
    (b"\x01\x00\x08\x03" + b"\x00" * 12, "bad magic number 0x01000803"),
    (b"\x00\x00\x07\x03" + b"\x00" * 12, "bad magic number 0x00000703"),       # unknown type code
    (b"\x00\x00\x08\x00", "bad magic number 0x00000800"),                      # no dimensions
    (b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00", r"header is truncated: it declares 3 dimension\(s\)"),
])
def test_bad_headers(tmp_path, data, message):
    path = write(tmp_path, "bad.gz", data)
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert path in str(info.value)


def test_wrong_magic_for_the_role(tmp_path):
    path = write(tmp_path, "labels.gz", idx_bytes([1, 2, 3]))
    with pytest.raises(ValueError, match=r"wrong IDX magic number 0x00000801 \(a labels file.*expected 0x00000803"):
        read_idx(path, IMAGES_MAGIC)


def test_wrong_dimension_header(tmp_path):
    path = write(tmp_path, "img.gz", idx_bytes(np.zeros((2, 28, 27), np.uint8)))
    with pytest.raises(ValueError, match=r"wrong dimension header: the file declares shape \(2, 28, 27\), expected "
                                         r"\(N, 28, 28\)"):
        read_idx(path, IMAGES_MAGIC, (None, 28, 28))


def test_data_shorter_than_the_header_says(tmp_path):
    data = idx_bytes(IMAGES)[:-5]
    path = write(tmp_path, "img.gz", data)
    with pytest.raises(ValueError, match=r"data is truncated: the header declares shape \(2, 3, 4\) \(24 bytes\) "
                                         r"but the file holds only 19 bytes"):
        read_idx(path)


def test_extra_bytes_after_the_data(tmp_path):
    path = write(tmp_path, "img", idx_bytes(IMAGES) + b"\x00", compress=False)
    with pytest.raises(ValueError, match="extra bytes after the 24 bytes"):
        read_idx(path)


def test_huge_declared_sizes_fail_fast_without_allocating(tmp_path):
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    path = write(tmp_path, "huge.gz", header + b"\x00" * 10)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="limit; the header is corrupt"):
        read_idx(path)
    assert time.perf_counter() - start < 1.0
    # a large but allowed size still only reads what is there
    header = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10**8)
    with pytest.raises(ValueError, match="data is truncated"):
        read_idx(write(tmp_path, "big.gz", header + b"\x00" * 10), max_bytes=10**9)


def test_not_gzip_under_a_gz_name(tmp_path):
    path = write(tmp_path, "img.gz", idx_bytes(IMAGES), compress=False)
    with pytest.raises(ValueError, match="not a gzip file"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 28, 28))))
    path = tmp_path / "img.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"img.gz: the gzip stream is truncated"):
        read_idx(str(path))


def test_corrupt_gzip_crc(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(IMAGES)))
    packed[-6] ^= 0xFF  # inside the CRC32 trailer
    path = tmp_path / "img.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match=r"img.gz: gzip data is corrupt \(BadGzipFile: CRC check failed"):
        read_idx(str(path))


def test_corrupt_deflate_data(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.random.default_rng(1).integers(0, 255, (20, 28, 28)))))
    for i in range(20, 60):
        packed[i] ^= 0x5A
    path = tmp_path / "img.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match="img.gz"):
        read_idx(str(path))


def test_load_npz_refuses_pickles_and_reports_missing_arrays(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, a=np.arange(3), b=np.zeros(2))
    assert sorted(load_npz(str(good), ["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match=r"lacks the array\(s\) \['c'\]"):
        load_npz(str(good), ["a", "c"])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled.npz"):
        load_npz(str(pickled), ["a"])
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_npz(str(junk), ["a"])
