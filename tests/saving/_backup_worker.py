"""A training run for the BackupAndRestore kill test (run as a subprocess).

    python _backup_worker.py OUT.npz BACKUP_DIR|- [KILL_EPOCH KILL_BATCH]

Trains a small model with shuffling, Dropout (the global generator) and a seeded GaussianNoise (its own
generator) for 6 epochs; SIGKILLs itself at (KILL_EPOCH, KILL_BATCH) if given; writes the final weights
and the losses of the epochs it ran to OUT.npz.
"""

import os
import signal
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shenjing.layers as L  # noqa: E402
from shenjing.callbacks import Callback  # noqa: E402
from shenjing.models import Sequential  # noqa: E402
from shenjing.optimizers import Adam  # noqa: E402
from shenjing.saving.checkpoint import BackupAndRestore  # noqa: E402
from shenjing.utils import set_random_seed  # noqa: E402


class Killer(Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


def main(out, backup_dir, kill=None):
    set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1))).astype("float32")
    model = Sequential([L.Dense(16, activation="relu", input_dim=6), L.Dropout(0.3), L.GaussianNoise(0.1, seed=7),
                        L.Dense(1)])
    model.compile(Adam(learning_rate=0.01), "mse")
    callbacks = []
    if backup_dir != "-":
        callbacks.append(BackupAndRestore(backup_dir))
    if kill is not None:
        callbacks.append(Killer(*kill))
    history = model.fit(x, y, batch_size=16, epochs=6, shuffle=True, validation_split=0.25, verbose=0,
                        callbacks=callbacks)
    np.savez(out, *model.get_weights(), losses=np.array(history.history["loss"]),
             epochs=np.array(history.epoch))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], args[1], (int(args[2]), int(args[3])) if len(args) == 4 else None)
