"""Corrupt, truncated and hostile files give a clear error: never a crash, never code run, never a huge
allocation (declared sizes are checked before anything is read)."""

import io
import os
import re
import struct
import zipfile

import h5py
import numpy as np
import pytest

import shenjing.layers as L
from shenjing.models import Sequential
from shenjing.saving import load_model, load_weights, save_model, save_weights

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src", "shenjing")


def model():
    m = Sequential([L.Dense(4, input_dim=3, name="a"), L.Dense(2, name="b")])
    m.compile("adam", "mse")
    m.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), verbose=0)
    return m


def _offenders(pattern, root):
    out = []
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    if pattern.search(f.read()):
                        out.append(os.path.relpath(path, SRC))
    return out


def test_no_pickle_anywhere_and_no_dynamic_code_in_the_saving_code():
    pickle = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|marshal|shelve|joblib)\b"
                        r"|allow_pickle\s*=\s*True|\b(pickle|marshal|dill)\.loads?\(", re.M)
    assert _offenders(pickle, SRC) == []
    dynamic = re.compile(r"^\s*(import|from)\s+importlib\b|__import__\(|(?<![.\w])eval\(|(?<![.\w])exec\("
                         r"|import_module\(", re.M)
    for package in ("saving", "onnx"):
        if os.path.isdir(os.path.join(SRC, package)):
            assert _offenders(dynamic, os.path.join(SRC, package)) == []


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100,
                                     b"PK\x03\x04" + b"\x00" * 100])
def test_garbage_files_give_clear_errors(tmp_path, content):
    path = tmp_path / "bad.keras"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="bad.keras"):
        load_model(path)
    with pytest.raises(ValueError, match="bad.keras"):
        load_weights(model(), path)


@pytest.mark.parametrize("filename", ["m.keras", "m.h5"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9, 0.99])
def test_truncated_model_files_give_clear_errors(tmp_path, filename, fraction):
    path = tmp_path / filename
    save_model(model(), path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ValueError):
        load_model(path)


@pytest.mark.parametrize("filename", ["w.h5", "w.weights.h5", "w.npz"])
def test_truncated_weights_files_give_clear_errors(tmp_path, filename):
    path = tmp_path / filename
    m = model()
    save_weights(m, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    before = m.get_weights()
    with pytest.raises(ValueError):
        load_weights(m, path)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def replace_dataset(path, name, **kwargs):
    with h5py.File(path, "a") as f:
        del f[name]
        f.create_dataset(name, **kwargs)


def test_huge_declared_dataset_is_refused_before_reading(tmp_path):
    path = tmp_path / "w.h5"
    save_weights(model(), path)
    # 4 TB declared, a few bytes on disk: reading it would exhaust memory
    replace_dataset(path, "a/a/kernel:0", shape=(10 ** 6, 10 ** 6), dtype="float32", chunks=(1, 1024),
                    compression="gzip")
    assert os.path.getsize(path) < 100_000
    with pytest.raises(ValueError, match=r"shape \(3, 4\) in the model, but \(1000000, 1000000\) in the file"):
        load_weights(model(), path)


def test_huge_optimizer_state_is_refused(tmp_path):
    path = tmp_path / "m.h5"
    save_model(model(), path)
    replace_dataset(path, "optimizer_weights/1", shape=(10 ** 6, 10 ** 6), dtype="float32", chunks=(1, 1024))
    with pytest.raises(ValueError, match="optimizer state .* has shape"):
        load_model(path)


@pytest.mark.parametrize("kwargs", [dict(data=np.array([b"abc", b"def", b"ghi"])),
                                    dict(data=np.zeros(3, dtype=[("a", "f4"), ("b", "i4")])),
                                    dict(data=np.zeros(3, dtype="complex64")),
                                    dict(shape=(3,), dtype=h5py.string_dtype())])
def test_wrong_dtypes_are_refused(tmp_path, kwargs):
    path = tmp_path / "w.h5"
    save_weights(model(), path)
    replace_dataset(path, "a/a/bias:0", **kwargs)
    with pytest.raises(ValueError, match="expected a numeric array"):
        load_weights(model(), path)


def test_external_links_and_external_storage_are_refused(tmp_path):
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as f:
        f["a/kernel:0"] = np.zeros((3, 4), "float32")
    path = tmp_path / "w.h5"
    save_weights(model(), path)
    with h5py.File(path, "a") as f:
        del f["a/a"]
        f["a/a"] = h5py.ExternalLink(str(secret), "/a")
    with pytest.raises(ValueError, match="ExternalLink"):
        load_weights(model(), path)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\x00" * 64)
    save_weights(model(), path)
    replace_dataset(path, "a/a/bias:0", shape=(4,), dtype="float32", external=[(str(raw), 0, 16)])
    with pytest.raises(ValueError, match="outside the file"):
        load_weights(model(), path)


def test_zip_bomb_member_is_refused_before_unpacking(tmp_path):
    path = tmp_path / "bomb.keras"
    save_model(model(), tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as good, zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", good.read("metadata.json"))
        z.writestr("config.json", good.read("config.json"))
        info = zipfile.ZipInfo("model.weights.h5")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as member:
            chunk = b"\x00" * (1 << 20)
            for _ in range(100):  # 100 MiB of zeros: ~100 KB compressed
                member.write(chunk)
    assert os.path.getsize(path) < 2_000_000
    with pytest.raises(ValueError, match="declares 104857600 bytes uncompressed, more than the limit"):
        load_model(path)


def test_member_larger_than_declared_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    save_model(model(), path)
    data = bytearray(path.read_bytes())
    # lower the uncompressed size recorded for config.json in the central directory and the local header
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("config.json")
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            name_len = struct.unpack("<H", data[start + (26 if signature == b"PK\x03\x04" else 28):][:2])[0]
            header = 30 if signature == b"PK\x03\x04" else 46
            if data[start + header:start + header + name_len] == b"config.json":
                data[start + offset:start + offset + 4] = struct.pack("<I", info.file_size // 2)
            start += 4
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        load_model(path)


def test_hostile_config_in_an_archive_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    save_model(model(), path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["config.json"] = members["config.json"].replace(b'"class_name": "Dense"', b'"class_name": "os.system"', 1)
    with zipfile.ZipFile(path, "w") as z:
        for name, value in members.items():
            z.writestr(name, value)
    with pytest.raises(ValueError, match="never imports"):
        load_model(path)
    members["evil.py"] = b"import os"
    with zipfile.ZipFile(path, "w") as z:
        for name, value in members.items():
            z.writestr(name, value)
    with pytest.raises(ValueError, match="unexpected archive members"):
        load_model(path)


def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    m = model()
    arrays = m.get_weights()
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = arrays[0], arrays[1]
    np.savez(path, objects, *arrays[1:])  # an object array is pickled by np.save
    with pytest.raises(ValueError, match="never pickled objects"):
        load_weights(m, path)


def test_npz_with_huge_declared_shape_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    m = model()
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10 ** 7, 10 ** 6)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("arr_0.npy", buffer.getvalue() + b"\x00" * 16)
        for i, a in enumerate(m.get_weights()[1:], start=1):
            out = io.BytesIO()
            np.save(out, a)
            z.writestr(f"arr_{i}.npy", out.getvalue())
    with pytest.raises(ValueError, match="declares 40000000000000 bytes of data"):
        load_weights(m, path)
