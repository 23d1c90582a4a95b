"""shenjing.utils.data_utils: get_file (cache, checksums, atomic writes) over file:// URLs, and Sequence.

The HTTP cases (404, a connection cut short, the MNIST loaders end to end) are in tests/datasets/."""

import hashlib
import os
import pathlib

import numpy as np
import pytest

from shenjing.utils.data_utils import DownloadError, Sequence, get_file, hash_file, validate_file

PAYLOAD = bytes(range(256)) * 40


def _origin(tmp_path, data=PAYLOAD, name="blob.bin"):
    src = tmp_path / "origin"
    src.mkdir(exist_ok=True)
    (src / name).write_bytes(data)
    return pathlib.Path(src / name).as_uri()


def _leftovers(directory):
    return [p for p in os.listdir(directory) if p.endswith(".part")]


@pytest.fixture
def home(tmp_path, monkeypatch):
    path = tmp_path / "home"
    monkeypatch.setenv("SHENJING_HOME", str(path))
    return path


def test_download_into_shenjing_home_with_md5_and_sha256(tmp_path, home):
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    for file_hash in (md5, sha, {"md5": md5, "sha256": sha}):
        path = get_file("blob.bin", _origin(tmp_path), file_hash=file_hash, cache_subdir="datasets/t", verbose=0,
                        force_download=True)
        assert path == str(home / "datasets" / "t" / "blob.bin")
        assert pathlib.Path(path).read_bytes() == PAYLOAD
        assert _leftovers(home / "datasets" / "t") == []


def test_cache_hit_does_not_touch_the_origin(tmp_path, home):
    origin = _origin(tmp_path)
    path = get_file("blob.bin", origin, file_hash=hashlib.sha256(PAYLOAD).hexdigest(), verbose=0)
    os.remove(tmp_path / "origin" / "blob.bin")  # the origin is gone: a second call must use the cache
    assert get_file("blob.bin", origin, file_hash=hashlib.sha256(PAYLOAD).hexdigest(), verbose=0) == path
    assert get_file("blob.bin", origin, verbose=0) == path  # no hash: any cached file is accepted


def test_checksum_mismatch_deletes_the_download(tmp_path, home):
    with pytest.raises(ValueError, match=r"md5 check: got [0-9a-f]{32}, expected 0{32}.*deleted"):
        get_file("blob.bin", _origin(tmp_path), file_hash="0" * 32, verbose=0)
    directory = home / "datasets"
    assert os.listdir(directory) == []  # neither the file nor a temporary


def test_corrupt_cached_file_is_downloaded_again(tmp_path, home):
    origin = _origin(tmp_path)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    path = get_file("blob.bin", origin, file_hash=sha, verbose=0)
    pathlib.Path(path).write_bytes(PAYLOAD[:100])  # truncated in the cache
    assert get_file("blob.bin", origin, file_hash=sha, verbose=0) == path
    assert pathlib.Path(path).read_bytes() == PAYLOAD


def test_failed_redownload_keeps_the_old_cache_entry_untouched(tmp_path, home):
    origin = _origin(tmp_path)
    path = get_file("blob.bin", origin, verbose=0)
    (tmp_path / "origin" / "blob.bin").write_bytes(b"something else")
    with pytest.raises(ValueError, match="sha256 check"):
        get_file("blob.bin", origin, file_hash="f" * 64, verbose=0)
    assert pathlib.Path(path).read_bytes() == PAYLOAD
    assert _leftovers(home / "datasets") == []


def test_missing_origin_is_a_download_error(tmp_path, home):
    with pytest.raises(DownloadError, match="could not download"):
        get_file("nothing.bin", (tmp_path / "nothing.bin").as_uri(), verbose=0)
    assert os.listdir(home / "datasets") == []


def test_explicit_cache_dir_legacy_md5_and_bad_arguments(tmp_path, home):
    cache = tmp_path / "elsewhere"
    path = get_file("blob.bin", _origin(tmp_path), md5_hash=hashlib.md5(PAYLOAD).hexdigest(), cache_dir=str(cache),
                    cache_subdir="sub", verbose=0)
    assert path == str(cache / "sub" / "blob.bin")
    assert hash_file(path, "md5") == hashlib.md5(PAYLOAD).hexdigest()
    assert validate_file(path, hashlib.sha256(PAYLOAD).hexdigest())
    assert not validate_file(path, {"md5": hashlib.md5(PAYLOAD).hexdigest(), "sha256": "0" * 64})
    with pytest.raises(ValueError, match="hash_algorithm"):
        get_file("blob.bin", _origin(tmp_path), file_hash="ab", hash_algorithm="crc32", verbose=0)
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        get_file("blob.bin", _origin(tmp_path), file_hash={"sha1": "ab"}, verbose=0)
    with pytest.raises(ValueError, match="origin"):
        get_file("blob.bin", "", verbose=0)


# ------------------------------------------------------------------------------------------ Sequence
class _Squares(Sequence):
    def __init__(self, n=10, batch_size=4):
        self.x = np.arange(n, dtype="float32")[:, None]
        self.batch_size = batch_size
        self.epochs_ended = 0

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i):
        s = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.x[s], self.x[s] ** 2

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_sequence_protocol():
    seq = _Squares()
    assert len(seq) == 3
    batches = list(seq)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[2][1][:, 0], [64, 81])
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Sequence()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Sequence())
    Sequence().on_epoch_end()  # a no-op by default


def test_user_sequence_trains_and_gets_on_epoch_end():
    import shenjing

    model = shenjing.models.Sequential([shenjing.layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer="sgd", loss="mse")
    seq = _Squares()
    history = model.fit(seq, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert seq.epochs_ended == 2
    assert model.predict(seq).shape == (10, 1)
