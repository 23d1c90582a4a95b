"""Checkpoint callbacks: ``ModelCheckpoint`` and ``BackupAndRestore``.

Every file is written atomically (:mod:`.atomic`): a crash or a SIGKILL during a save leaves the
previous checkpoint intact and loadable.

``BackupAndRestore`` needs one hook in the training loop: when it finds a backup in
``on_train_begin`` it sets ``model._initial_epoch_override`` to the epoch to resume from, and ``fit``
starts its epoch loop there (``initial_epoch = model.__dict__.pop('_initial_epoch_override',
initial_epoch)`` right after ``callbacks.on_train_begin()``). If the loop ignores the hook, the callback
raises instead of silently training from the start again.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import sys
import warnings

import numpy as np

from .. import backend as B
from ..callbacks import Callback, _resolve_mode, _to_float
from . import hdf5 as H
from .atomic import atomic_path, atomic_write_text, remove_stale_temporaries
from .serialization import parse_json, to_json

BACKUP_FORMAT = "shenjing.backup/1"


def _print(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _check_save_freq(save_freq, owner: str):
    if save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq <= 0:
        raise ValueError(f"{owner}: save_freq must be 'epoch' or a positive number of batches, got {save_freq!r}")
    return save_freq


def _save(model, filepath: str, weights_only: bool) -> None:
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    remove_stale_temporaries(filepath)  # left by a run killed mid-write
    if weights_only:
        from .weights import save_weights

        save_weights(model, filepath)
    else:
        from .archive import save_model

        save_model(model, filepath)


# ------------------------------------------------------------------------ ModelCheckpoint
class ModelCheckpoint(Callback):
    """Save the model (or its weights) during training.

    Args:
        filepath: where to save; may hold ``str.format`` fields filled from the epoch (1-based), the batch
            (1-based, with ``save_freq=N``) and the logs: ``'weights.{epoch:02d}-{val_loss:.2f}.h5'``.
            ``.keras`` / ``.h5`` save the whole model (``save_model``); with ``save_weights_only`` the
            name picks the weights format (``.h5``, ``.weights.h5``, ``.npz``).
        monitor: the log entry that decides "best" (``save_best_only``).
        verbose: 1 prints a line at each save (and each non-improvement).
        save_best_only: only save when ``monitor`` improves on the best seen so far. The best value is
            kept beside the checkpoint (``.<name>.best.json``), so a restarted run does not overwrite a
            better checkpoint with a worse one.
        save_weights_only: save the weights only.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (``'max'`` for accuracy-like names).
        save_freq: ``'epoch'``, or save every ``N`` training batches.
        initial_value_threshold: the value ``monitor`` has to beat for the first save.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None, **kwargs):
        super().__init__()
        period = kwargs.pop("period", None)  # Keras 2: save every `period` epochs
        kwargs.pop("options", None)
        if kwargs:
            raise TypeError(f"ModelCheckpoint: unexpected keyword argument(s) {sorted(kwargs)}")
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = int(verbose)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_freq = _check_save_freq(save_freq, "ModelCheckpoint")
        self.period = 1 if period is None else int(period)
        if initial_value_threshold is not None:
            initial_value_threshold = float(initial_value_threshold)
        self.initial_value_threshold = initial_value_threshold
        self.best = self._worst() if initial_value_threshold is None else initial_value_threshold
        self.last_saved = None
        self._batches_seen = 0
        self._current_epoch = 0

    # ------------------------------------------------------------------ best
    def _worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def _better(self, value, reference) -> bool:
        return value < reference if self.mode == "min" else value > reference

    @property
    def best_path(self) -> str:
        """The file that keeps the best value across runs (beside the checkpoints)."""
        template = self.filepath
        directory = os.path.dirname(template)
        if "{" in directory:
            directory = ""
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(template)).strip("_") or "checkpoint"
        digest = hashlib.sha1(template.encode("utf-8")).hexdigest()[:8]
        return os.path.join(directory, f".{name}.{digest}.best.json")

    def _load_best(self) -> None:
        path = self.best_path
        if not os.path.isfile(path):
            return
        try:
            if os.path.getsize(path) > 1024 * 1024:
                raise ValueError("file too large")
            with open(path, encoding="utf-8") as f:
                record = parse_json(f.read(), path)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            if record.get("monitor") != self.monitor or record.get("mode") != self.mode:
                return
            best = record.get("best")
            if isinstance(best, bool) or not isinstance(best, (int, float)) or math.isnan(best):
                raise ValueError(f"invalid best value {best!r}")
        except (OSError, ValueError) as err:
            warnings.warn(f"ModelCheckpoint: ignoring the best-value file {path!r} ({err})", stacklevel=3)
            return
        if self._better(float(best), self.best):
            self.best = float(best)

    def _store_best(self, filepath: str, epoch: int) -> None:
        record = {"monitor": self.monitor, "mode": self.mode, "best": self.best, "filepath": filepath,
                  "epoch": epoch + 1, "template": self.filepath}
        directory = os.path.dirname(os.path.abspath(self.best_path))
        os.makedirs(directory, exist_ok=True)
        atomic_write_text(self.best_path, to_json(record))

    # ----------------------------------------------------------------- hooks
    def on_train_begin(self, logs=None):
        self._batches_seen = 0
        if self.save_best_only:
            self._load_best()

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_seen += 1
        if self._batches_seen >= self.save_freq:
            self._batches_seen = 0
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch" and (epoch + 1) % self.period == 0:
            self._save_model(epoch, None, logs)

    # ------------------------------------------------------------------ save
    def _format_path(self, epoch: int, batch, logs: dict) -> str:
        values = {}
        for key, value in (logs or {}).items():
            try:
                values[key] = _to_float(value)
            except (TypeError, ValueError):
                values[key] = value
        fields = dict(values, epoch=epoch + 1)
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as err:
            raise KeyError(f"ModelCheckpoint: the filepath {self.filepath!r} uses the field {err.args[0]!r}, which "
                           f"is not among the logs ({sorted(values)}) nor 'epoch'/'batch'") from None
        except (ValueError, IndexError) as err:
            raise ValueError(f"ModelCheckpoint: cannot format the filepath {self.filepath!r}: {err}") from None

    def _save_model(self, epoch: int, batch, logs) -> None:
        logs = logs or {}
        filepath = self._format_path(epoch, batch, logs)
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            _save(self.model, filepath, self.save_weights_only)
            self.last_saved = filepath
            return
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"ModelCheckpoint: can save best model only with {self.monitor!r} available, which is not "
                          f"in the logs ({sorted(logs)}); skipping", stacklevel=3)
            return
        current = _to_float(current)
        if math.isnan(current) or not self._better(current, self.best):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
            return
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, saving "
                   f"model to {filepath}")
        _save(self.model, filepath, self.save_weights_only)
        self.best = current
        self.last_saved = filepath
        self._store_best(filepath, epoch)


# ------------------------------------------------------------------------ random state
def _layer_generators(model) -> dict:
    """The seeded generators of the model's layers (Dropout(seed=...), GaussianNoise, ...), by layer name."""
    out = {}
    layers = [model] + list(model._all_layers()) if hasattr(model, "_all_layers") else [model]
    for layer in layers:
        generator = getattr(layer, "_generator", None)
        if isinstance(generator, np.random.Generator):
            out.setdefault(layer.name, generator)
    return out


def get_random_state(model) -> dict:
    """The state of every random source training uses: ``backend.rng()`` and the layers' seeded generators,
    as JSON-able dicts (``bit_generator.state``)."""
    return {"rng": B.rng().bit_generator.state,
            "layers": {name: g.bit_generator.state for name, g in _layer_generators(model).items()}}


def _set_generator_state(generator, state, what: str) -> None:
    if not isinstance(state, dict) or state.get("bit_generator") != type(generator.bit_generator).__name__:
        raise ValueError(f"{what}: a random state for {type(generator.bit_generator).__name__} was expected, got "
                         f"{str(state)[:100]}")
    try:
        generator.bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"{what}: invalid random state ({err})") from None


def set_random_state(model, state: dict, what: str = "set_random_state") -> None:
    if not isinstance(state, dict):
        raise ValueError(f"{what}: the random state must be a dict")
    if state.get("rng") is not None:
        _set_generator_state(B.rng(), state["rng"], what)
    generators = _layer_generators(model)
    for name, value in (state.get("layers") or {}).items():
        if name in generators:
            _set_generator_state(generators[name], value, f"{what}, layer {name!r}")


# ------------------------------------------------------------------------ BackupAndRestore
class BackupAndRestore(Callback):
    """Back up the training state so that a run killed mid-way resumes where it stopped.

    At the end of every epoch (or every ``save_freq`` batches) it writes ``<backup_dir>/backup.h5``
    atomically: the weights, the optimizer state (slots and iteration count), the next epoch, the
    learning rate, and the random state (``backend.rng()`` and the layers' seeded generators). Rerunning
    the same ``fit`` after a crash or SIGKILL restores all of it in ``on_train_begin`` and resumes at the
    first unfinished epoch: with ``save_freq='epoch'`` the run ends bit-identical (on the CPU) to one that
    was never interrupted. With ``save_freq=N`` a backup taken mid-epoch resumes at the start of that
    epoch with the mid-epoch weights (Keras's behaviour), so part of that epoch is trained twice.

    Args:
        backup_dir: a directory for the backup (created if needed); one per training run.
        save_freq: ``'epoch'`` or a number of batches (``False``: never back up, only restore).
        delete_checkpoint: delete the backup when ``fit`` finishes (not when it is interrupted).
        double_checkpoint: keep the previous backup as ``backup.prev.h5`` and fall back to it if the
            latest cannot be read.
    """

    FILENAME = "backup.h5"
    PREVIOUS = "backup.prev.h5"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True, double_checkpoint=False):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: backup_dir is required")
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq if save_freq is False else _check_save_freq(save_freq, "BackupAndRestore")
        self.delete_checkpoint = bool(delete_checkpoint)
        self.double_checkpoint = bool(double_checkpoint)
        self.resumed_epoch = None
        self._current_epoch = 0
        self._batches_seen = 0
        self._expect_epoch = None

    @property
    def path(self) -> str:
        return os.path.join(self.backup_dir, self.FILENAME)

    @property
    def previous_path(self) -> str:
        return os.path.join(self.backup_dir, self.PREVIOUS)

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        self._batches_seen = 0
        self.resumed_epoch = None
        self._expect_epoch = None
        candidates = [self.path] + ([self.previous_path] if self.double_checkpoint else [])
        errors = []
        for path in candidates:
            if not os.path.isfile(path):
                continue
            try:
                next_epoch = self._restore(path)
            except ValueError as err:
                if not self.double_checkpoint:
                    raise
                errors.append(str(err))
                continue
            self.resumed_epoch = next_epoch
            self._expect_epoch = next_epoch
            self.model._initial_epoch_override = next_epoch
            return
        if errors:
            raise ValueError(f"BackupAndRestore: no backup in {self.backup_dir!r} could be read: {errors}")

    def on_epoch_begin(self, epoch, logs=None):
        if self._expect_epoch is not None:
            expected, self._expect_epoch = self._expect_epoch, None
            if epoch < expected:
                raise RuntimeError(
                    f"BackupAndRestore restored the state after epoch {expected} from {self.path!r}, but the "
                    f"training loop started at epoch {epoch + 1}: it does not honour model._initial_epoch_override. "
                    f"Pass initial_epoch={expected} to fit() or update shenjing")
        self._current_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq in ("epoch", False):
            return
        self._batches_seen += 1
        if self._batches_seen >= self.save_freq:
            self._batches_seen = 0
            self._backup(next_epoch=self._current_epoch, step=batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._backup(next_epoch=epoch + 1, step=0)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint:
            for path in (self.path, self.previous_path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            with contextlib.suppress(OSError):
                os.rmdir(self.backup_dir)  # only if empty

    # ----------------------------------------------------------------- files
    def _backup(self, next_epoch: int, step: int) -> None:
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        state = {"format": BACKUP_FORMAT, "next_epoch": int(next_epoch), "step": int(step),
                 "random": get_random_state(model), "model": model.name}
        if optimizer is not None and not getattr(optimizer, "uses_schedule", False):
            state["learning_rate"] = optimizer._learning_rate
        os.makedirs(self.backup_dir, exist_ok=True)
        remove_stale_temporaries(self.path)  # left by a run killed mid-write
        h5py = H.require_h5py()
        if self.double_checkpoint and os.path.isfile(self.path):
            os.replace(self.path, self.previous_path)
        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["training_state"] = to_json(state)
                H.write_keras2_weights(f.create_group("model_weights"), model)
                if optimizer is not None:
                    H.write_optimizer_state(f.create_group("optimizer_state"), optimizer)

    def _restore(self, path: str) -> int:
        model = self.model
        source = f"BackupAndRestore({path!r})"
        with H.open_h5(path, source) as f:
            state = H.read_json_attr(f, "training_state", source)
            if not isinstance(state, dict) or state.get("format") != BACKUP_FORMAT:
                raise ValueError(f"{source}: not a shenjing backup file")
            next_epoch = state.get("next_epoch")
            if isinstance(next_epoch, bool) or not isinstance(next_epoch, int) or next_epoch < 0:
                raise ValueError(f"{source}: invalid epoch {next_epoch!r}")
            pairs = H.read_keras2_weights(H.safe_child(f, "model_weights", source, kind="group"), model,
                                          source=source)
            optimizer = getattr(model, "optimizer", None)
            opt_state = None
            group = H.safe_child(f, "optimizer_state", source, kind="group", required=False)
            if optimizer is not None and group is not None:
                opt_state = H.read_optimizer_state(group, optimizer, H.optimizer_variables(model, optimizer), source)
            H.assign(pairs)
        if opt_state is not None:
            optimizer.set_state(opt_state)
            lr = state.get("learning_rate")
            if isinstance(lr, (int, float)) and not isinstance(lr, bool) and not optimizer.uses_schedule \
                    and math.isfinite(lr) and lr >= 0:
                optimizer._learning_rate = float(lr)
        set_random_state(model, state.get("random") or {}, source)
        return next_epoch


__all__ = ["ModelCheckpoint", "BackupAndRestore", "get_random_state", "set_random_state"]
