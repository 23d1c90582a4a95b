"""ModelCheckpoint, BackupAndRestore and atomic writes, including runs killed with SIGKILL mid-way."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import shenjing.layers as L
from shenjing.callbacks import Callback
from shenjing.models import Sequential
from shenjing.optimizers import Adam
from shenjing.saving import load_model, load_weights
from shenjing.saving.atomic import remove_stale_temporaries
from shenjing.saving.checkpoint import BackupAndRestore, ModelCheckpoint

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(HERE, "..", "..", "src"),
                                                    os.environ.get("PYTHONPATH", "")]))


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x @ rng.normal(size=(4, 1))).astype("float32")


def build():
    model = Sequential([L.Dense(8, activation="relu", input_dim=4), L.Dense(1)])
    model.compile(Adam(learning_rate=0.01), "mse", metrics=["mae"])
    return model


# ------------------------------------------------------------------------- ModelCheckpoint
def test_filename_template_with_epoch_and_logs(tmp_path):
    x, y = data()
    model = build()
    template = str(tmp_path / "weights.{epoch:02d}-{val_loss:.2f}.h5")
    history = model.fit(x, y, epochs=3, validation_split=0.25, verbose=0,
                        callbacks=[ModelCheckpoint(template, save_weights_only=True)])
    expected = sorted(f"weights.{e + 1:02d}-{v:.2f}.h5" for e, v in enumerate(history.history["val_loss"]))
    assert sorted(os.listdir(tmp_path)) == expected
    load_weights(build(), tmp_path / expected[-1])


def test_full_model_checkpoints_load_and_continue(tmp_path):
    x, y = data()
    model = build()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "m-{epoch}.keras"),
                                                                    monitor="loss")])
    restored = load_model(tmp_path / "m-2.keras")
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))
    assert restored.optimizer.iterations == model.optimizer.iterations


def test_save_best_only_and_best_value_kept_across_restarts(tmp_path):
    x, y = data()
    path = tmp_path / "best.h5"
    model = build()
    first = ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True, save_weights_only=True)
    history = model.fit(x, y, epochs=4, validation_split=0.25, verbose=0, callbacks=[first])
    assert first.best == min(history.history["val_loss"])
    saved = path.read_bytes()
    assert os.path.isfile(first.best_path) and os.path.dirname(first.best_path) == str(tmp_path)
    # a restart with a fresh (worse) model and a fresh callback must not overwrite the better checkpoint
    worse = Sequential([L.Dense(8, activation="relu", input_dim=4), L.Dense(1, kernel_initializer="ones")])
    worse.compile(Adam(learning_rate=1e-6), "mse")
    second = ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True, save_weights_only=True)
    worse.fit(x, y, epochs=1, validation_split=0.25, verbose=0, callbacks=[second])
    assert second.best == first.best and path.read_bytes() == saved
    # a different monitor does not reuse the stored value
    third = ModelCheckpoint(str(path), monitor="loss", save_best_only=True, save_weights_only=True)
    worse.fit(x, y, epochs=1, verbose=0, callbacks=[third])
    assert third.last_saved == str(path)


def test_mode_threshold_missing_monitor_and_batch_frequency(tmp_path):
    x, y = data()
    model = build()
    nothing = ModelCheckpoint(str(tmp_path / "a.h5"), monitor="loss", save_best_only=True,
                              initial_value_threshold=0.0, save_weights_only=True)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[nothing])
    assert not (tmp_path / "a.h5").exists()
    assert ModelCheckpoint("x.h5", monitor="val_accuracy").mode == "max"
    with pytest.warns(UserWarning, match="val_loss"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[
            ModelCheckpoint(str(tmp_path / "b.h5"), save_best_only=True, save_weights_only=True)])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[  # 4 batches an epoch
        ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.npz"), save_freq=3, save_weights_only=True)])
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".npz")) == ["e1-b3.npz", "e2-b2.npz"]
    with pytest.raises(ValueError, match="save_freq"):
        ModelCheckpoint("x.h5", save_freq="batch")
    with pytest.raises(KeyError, match="val_acc"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "{val_acc}.h5"))])


# ------------------------------------------------------------------------ BackupAndRestore
class Crash(Callback):
    def __init__(self, epoch):
        super().__init__()
        self.at = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")


def test_backup_and_restore_after_an_exception(tmp_path, monkeypatch):
    x, y = data()

    def run(callbacks, seed=5):
        from shenjing.utils import set_random_seed

        set_random_seed(seed)
        model = Sequential([L.Dense(8, activation="relu", input_dim=4), L.Dropout(0.2), L.Dense(1)])
        model.compile(Adam(learning_rate=0.01), "mse")
        try:
            history = model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=callbacks)
        except KeyboardInterrupt:
            return model, None
        return model, history

    reference, full = run([])
    backup = BackupAndRestore(str(tmp_path / "backup"))
    _, crashed = run([backup, Crash(epoch=2)])
    assert crashed is None and os.path.isfile(backup.path)
    resumed, history = run([backup])
    assert backup.resumed_epoch == 3 and history.epoch == [3, 4]
    assert history.history["loss"] == full.history["loss"][3:]
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not os.path.exists(backup.path)  # deleted once fit finished


def run_worker(*args, timeout=60):
    return subprocess.run([sys.executable, os.path.join(HERE, "_backup_worker.py"), *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_sigkilled_training_resumes_bit_identical(tmp_path):
    full = run_worker(tmp_path / "full.npz", "-")
    assert full.returncode == 0, full.stderr
    backup_dir = tmp_path / "backup"
    killed = run_worker(tmp_path / "killed.npz", backup_dir, 3, 1)  # SIGKILL in the middle of epoch 4
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (tmp_path / "killed.npz").exists() and os.path.isfile(backup_dir / "backup.h5")
    resumed = run_worker(tmp_path / "resumed.npz", backup_dir)  # the same command, rerun
    assert resumed.returncode == 0, resumed.stderr
    a, b = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    assert b["epochs"].tolist() == [3, 4, 5]
    np.testing.assert_array_equal(b["losses"], a["losses"][3:])
    for key in a.files:
        if key.startswith("arr_"):
            np.testing.assert_array_equal(a[key], b[key])
    assert not backup_dir.exists()


# --------------------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("filename", ["ckpt.h5", "ckpt.keras"])
def test_sigkill_mid_write_leaves_the_previous_checkpoint_intact(tmp_path, filename):
    path = tmp_path / filename
    model = Sequential([L.Dense(1500, input_dim=1500)])
    killed_mid_write = 0
    rng = random.Random(0)
    for attempt in range(10):  # until a kill has landed inside a write (timing varies with the machine's load)
        if attempt >= 3 and killed_mid_write:
            break
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "_atomic_worker.py"), str(path)], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines = []
        try:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("start") and int(line.split()[1]) >= 3 + attempt % 3:
                    time.sleep(rng.uniform(0.0, 0.01))  # somewhere inside the write
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=30)
            lines.extend(proc.stdout.read().splitlines())
        done = max(int(line.split()[1]) for line in lines if line.startswith("done"))
        if filename.endswith(".keras"):
            values = load_model(path).get_weights()
        else:
            load_weights(model, path)
            values = model.get_weights()
        seen = {float(v) for w in values for v in np.unique(w)}
        # one complete write: the last one reported, or the one killed after its rename
        assert len(seen) == 1 and seen.pop() in (done, done + 1)
        removed = remove_stale_temporaries(path)  # what the killed writer left behind
        killed_mid_write += len(removed)
        assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    assert killed_mid_write >= 1  # at least one kill landed inside a write
