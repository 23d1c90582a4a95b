"""Callbacks: objects the training loop calls at fixed points of ``fit``,
``evaluate`` and ``predict`` (Keras's ``keras.callbacks``).

The loop talks to callbacks only through :class:`CallbackList`, which forwards
every hook to each callback with the same ``logs`` dict, so that a callback may
add entries (``'learning_rate'``) that later callbacks (History, the progress
bar, CSVLogger) see.

What a callback may use of the model: ``stop_training`` (bool, checked after
each batch and epoch), ``get_weights()`` / ``set_weights(list)``,
``trainable_weights``, ``history``, and ``optimizer`` with the
``learning_rate`` property, ``uses_schedule``, ``use_ema``,
``swap_ema_weights(variables)`` and ``finalize_variable_values(variables)``.

``params`` (``set_params``) holds ``{'verbose': int, 'epochs': int, 'steps': int or None}``.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import sys
import warnings

from .utils.progbar import Progbar

__all__ = [
    "TensorBoard", "GradientMonitor",
    "ModelCheckpoint", "BackupAndRestore",
    "Callback",
    "CallbackList",
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
    "CSVLogger",
    "LambdaCallback",
    "SwapEMAWeights",
]

_HOOKS = (
    "on_train_begin", "on_train_end",
    "on_epoch_begin", "on_epoch_end",
    "on_train_batch_begin", "on_train_batch_end",
    "on_batch_begin", "on_batch_end",
    "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end",
    "on_predict_begin", "on_predict_end",
    "on_predict_batch_begin", "on_predict_batch_end",
    "on_gradients",
)


def _print(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _to_float(value) -> float:
    """A Python float from a float, a NumPy/CuPy scalar or a 0-d array."""
    if hasattr(value, "item"):
        value = value.item()
    return float(value)


def _copy_weights(weights) -> list:
    """Copies of the arrays, so that in-place optimizer updates cannot change a snapshot."""
    return [w.copy() if hasattr(w, "copy") else w for w in weights]


_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "fbeta", "iou")


def _resolve_mode(mode: str, monitor: str, owner: str) -> str:
    """'min' or 'max' for a monitored quantity; ``'auto'`` guesses from the name."""
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner}: mode {mode!r} is unknown (expected 'auto', 'min' or 'max'); using 'auto'.",
                      stacklevel=3)
        mode = "auto"
    if mode != "auto":
        return mode
    name = monitor.lower()
    if name.startswith("val_"):
        name = name[4:]
    return "max" if any(word in name for word in _MAXIMIZED) else "min"


def _missing_monitor(owner: str, monitor: str, logs: dict) -> None:
    available = ", ".join(sorted(logs)) or "(none)"
    warnings.warn(
        f"{owner} is conditioned on metric {monitor!r}, which is not available in the epoch logs. "
        f"Available metrics are: {available}.",
        stacklevel=3)


# ---------------------------------------------------------------------- base
class Callback:
    """Base class: every hook is a no-op. Subclasses override the ones they need.

    ``self.model`` is the model being trained and ``self.params`` the loop's
    parameters (``verbose``, ``epochs``, ``steps``). The Keras 2 hooks
    ``on_batch_begin`` / ``on_batch_end`` are called for training batches
    (the default ``on_train_batch_*`` forwards to them).
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = dict(params) if params else {}

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        """Keras 2 alias: called at the beginning of every training batch."""

    def on_batch_end(self, batch, logs=None):
        """Keras 2 alias: called at the end of every training batch."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)

    def on_gradients(self, batch, grads_and_vars, logs=None):
        """Called in every training step of ``fit``, after ``backward()`` and just before the optimizer
        step, with the ``(gradient array or None, Variable)`` pairs about to be applied. Read-only."""

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


class CallbackList:
    """The container the loop calls: forwards each hook to every callback, in order.

    ``add_history`` / ``add_progbar`` append a :class:`History` / :class:`ProgbarLogger`
    unless the user already passed one. ``params`` (keyword arguments) go to
    ``set_params`` of every callback; ``model`` to ``set_model``.
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"CallbackList: expected Callback instances, got {type(cb).__name__}: {cb!r}")
        self.model = None
        self.params = {}
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if add_progbar and self._progbar is None:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        if add_history and self._history is None:
            self._history = History()
            self.callbacks.append(self._history)
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        if not isinstance(callback, Callback):
            raise TypeError(f"CallbackList.append: expected a Callback, got {type(callback).__name__}")
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)

    def set_model(self, model):
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        self.params = dict(params) if params else {}
        for cb in self.callbacks:
            cb.set_params(self.params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def __getitem__(self, index):
        return self.callbacks[index]

    def _call(self, hook, *args, logs=None):
        if logs is None:
            logs = {}
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)  # positional, as Keras calls them: user hooks may name it otherwise

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_gradients(self, batch, grads_and_vars, logs=None):
        for cb in self.callbacks:
            if type(cb).on_gradients is not Callback.on_gradients:
                cb.on_gradients(batch, grads_and_vars, logs if logs is not None else {})

    # Keras 2 names for the training-batch hooks.
    on_batch_begin = on_train_batch_begin
    on_batch_end = on_train_batch_end

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs)


# ------------------------------------------------------------------- History
class History(Callback):
    """Records the epoch logs: ``history`` maps each name to its list of values per
    epoch, ``epoch`` lists the epoch indices. ``fit`` returns this object, and
    sets it as ``model.history``.

    The dict is kept across ``fit`` calls with the same object (continued
    training appends); ``epoch`` restarts at each ``fit``.
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def set_model(self, model):
        super().set_model(model)
        if model is not None:
            model.history = self

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(value)
        if self.model is not None:
            self.model.history = self


# ------------------------------------------------------------- ProgbarLogger
class ProgbarLogger(Callback):
    """Prints ``Epoch 1/10`` and a progress bar per epoch (``verbose=1``), one line
    per epoch (``verbose=2``) or nothing (``verbose=0``); ``verbose`` comes from
    ``params``. The epoch's final line shows the validation metrics too.
    Outside ``fit``, ``evaluate`` and ``predict`` get a bar of their own.

    Args:
        count_mode: ``'steps'`` (the default: the bar counts batches) or
            ``'samples'`` (counts the ``'size'`` entry of the batch logs, target
            ``params['samples']``).
    """

    _HIDDEN = ("batch", "size")

    def __init__(self, count_mode="steps"):
        super().__init__()
        if count_mode not in ("steps", "samples"):
            raise ValueError(f"ProgbarLogger: count_mode must be 'steps' or 'samples', got {count_mode!r}")
        self.count_mode = count_mode
        self.verbose = 1
        self.epochs = 1
        self.target = None
        self.seen = 0
        self.progbar = None
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = self.params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else int(verbose or 0)
        self.epochs = self.params.get("epochs", 1) or 1
        key = "samples" if self.count_mode == "samples" else "steps"
        self.target = self.params.get(key)

    # fit
    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._start_bar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._batch_update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish_bar(logs)

    def on_train_end(self, logs=None):
        self._in_fit = False

    # evaluate (validation inside fit stays silent: it shows in the epoch's line)
    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._start_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._batch_update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish_bar(logs)

    # predict
    def on_predict_begin(self, logs=None):
        self._start_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._batch_update(batch, None)  # predict logs hold outputs, not metrics

    def on_predict_end(self, logs=None):
        self._finish_bar(None)

    # helpers
    def _start_bar(self):
        self.seen = 0
        self.progbar = Progbar(self.target, verbose=self.verbose,
                               unit_name="sample" if self.count_mode == "samples" else "step")

    def _shown(self, logs) -> list:
        if not logs:
            return []
        items = [(k, v) for k, v in logs.items() if k not in self._HIDDEN]
        if "learning_rate" in logs:  # 'lr' is the Keras 2 alias of the same value
            items = [(k, v) for k, v in items if k != "lr"]
        return items

    def _batch_update(self, batch, logs):
        if self.progbar is None:
            self._start_bar()
        if self.count_mode == "samples":
            self.seen += int((logs or {}).get("size", 1))
        else:
            self.seen = batch + 1
        items = self._shown(logs)
        # The loop's batch logs are running means already: show them as given.
        self.progbar.stateful_metrics.update(k for k, _ in items)
        self.progbar.update(self.seen, items, finalize=False)

    def _finish_bar(self, logs):
        if self.progbar is None:
            self._start_bar()
        if self.target is None:
            self.target = self.seen  # learnt from the first epoch
            self.progbar.target = self.seen
        items = self._shown(logs)
        self.progbar.stateful_metrics.update(k for k, _ in items)
        self.progbar.update(self.seen, items, finalize=True)
        self.progbar = None


# ------------------------------------------------------------- EarlyStopping
class EarlyStopping(Callback):
    """Stops training when a monitored quantity stops improving.

    Args:
        monitor: the epoch-log entry to watch (``'val_loss'``).
        min_delta: the smallest change that counts as an improvement.
        patience: the number of epochs without improvement after which training stops.
        verbose: 1 prints a message when stopping / restoring.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (``'max'`` for names containing
            acc / auc / precision / recall, ``'min'`` otherwise).
        baseline: a value to reach: while the monitored quantity has not beaten it,
            epochs count towards ``patience`` even when they improve on the best so far.
        restore_best_weights: at the end of training (whether stopped by this
            callback, by another one, or by running out of epochs) set the weights
            of the best epoch.
        start_from_epoch: the number of warm-up epochs during which nothing is checked.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def _improves(self, value, reference) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value < reference - self.min_delta
        return value > reference + self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            _missing_monitor("EarlyStopping", self.monitor, logs)
            return None
        return _to_float(value)

    def on_epoch_end(self, epoch, logs=None):
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improves(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model.get_weights())
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


# ---------------------------------------------------------- learning rates
def _check_settable_rate(model, owner: str) -> None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError(f"{owner}: the model has no optimizer; compile the model before training")
    if getattr(optimizer, "uses_schedule", False):
        raise TypeError(
            f"{owner} cannot set the learning rate of this {type(optimizer).__name__}: its learning rate is "
            f"driven by a schedule (a LearningRateSchedule or callable was passed as learning_rate), and the "
            f"callback and the schedule would fight over it. Either compile with a constant learning_rate "
            f"and keep {owner}, or keep the schedule and remove {owner}.")


def _schedule_arity(schedule) -> int:
    """1 for ``schedule(epoch)``, 2 for ``schedule(epoch, lr)``."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return 2
    positional = 0
    for p in signature.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return 2
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return 2 if positional >= 2 else 1


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of each epoch.

    ``schedule(epoch, lr)`` (or the Keras 1 form ``schedule(epoch)``) gets the
    0-based epoch index and the current rate and returns the new rate. The rate
    used is logged as ``'learning_rate'`` (and ``'lr'``, the Keras 2 name).
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose
        self._arity = _schedule_arity(schedule)

    def on_train_begin(self, logs=None):
        _check_settable_rate(self.model, "LearningRateScheduler")

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if self._arity == 2:
            rate = self.schedule(epoch, _to_float(optimizer.learning_rate))
        else:
            rate = self.schedule(epoch)
        try:
            rate = _to_float(rate)
        except (TypeError, ValueError):
            raise ValueError(f"LearningRateScheduler: the schedule must return a number, got {rate!r} "
                             f"for epoch {epoch}") from None
        if not math.isfinite(rate) or rate < 0:
            raise ValueError(f"LearningRateScheduler: the schedule returned learning rate {rate} for epoch {epoch}; "
                             f"expected a finite number >= 0")
        optimizer.learning_rate = rate
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = _to_float(self.model.optimizer.learning_rate)
            logs["learning_rate"] = rate
            logs["lr"] = rate


class ReduceLROnPlateau(Callback):
    """Multiplies the learning rate by ``factor`` when ``monitor`` has not improved
    for ``patience`` epochs; then waits ``cooldown`` epochs before counting again;
    never goes below ``min_lr``. An improvement is a change of more than ``min_delta``.
    The rate used in the epoch is logged as ``'learning_rate'`` (and ``'lr'``).

    As in Keras, the last epoch of a cooldown already counts towards ``patience``
    (so ``cooldown=1`` waits no longer than ``cooldown=0``).
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if "epsilon" in kwargs:  # the Keras 1 name of min_delta
            min_delta = kwargs.pop("epsilon")
            warnings.warn("ReduceLROnPlateau: 'epsilon' is deprecated, use 'min_delta'.", stacklevel=2)
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected arguments {sorted(kwargs)}")
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1 (it multiplies the learning rate), got {factor}")
        if factor <= 0:
            raise ValueError(f"ReduceLROnPlateau: factor must be > 0, got {factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.mode = _resolve_mode(mode, monitor, "ReduceLROnPlateau")
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improves(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        _check_settable_rate(self.model, "ReduceLROnPlateau")
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        optimizer = self.model.optimizer
        old_rate = _to_float(optimizer.learning_rate)
        logs["learning_rate"] = old_rate
        logs["lr"] = old_rate
        current = logs.get(self.monitor)
        if current is None:
            _missing_monitor("ReduceLROnPlateau", self.monitor, logs)
            return
        current = _to_float(current)
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best = current
            self.wait = 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        # (1 + 1e-6): a float32-stored rate equal to min_lr is not reduced again
        if self.wait >= self.patience and old_rate > self.min_lr * (1 + 1e-6):
            new_rate = max(old_rate * self.factor, self.min_lr)
            optimizer.learning_rate = new_rate
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_rate}.")
            self.cooldown_counter = self.cooldown
            self.wait = 0


# ------------------------------------------------------------ TerminateOnNaN
class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        try:
            value = _to_float(loss)
        except (TypeError, ValueError):
            return
        if not math.isfinite(value):
            _print(f"Batch {batch}: Invalid loss ({value}), terminating training")
            self.model.stop_training = True


# ----------------------------------------------------------------- CSVLogger
class CSVLogger(Callback):
    """Writes the epoch logs to a CSV file: a header, then one row per epoch
    (flushed at once, so the file is readable during training).

    Args:
        filename: the CSV file.
        separator: the field separator.
        append: add to an existing file instead of overwriting it; the header is
            written only when the file is new or empty, and the rows follow its columns.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None
        self.writer = None
        self.csv_file = None
        self.append_header = True

    def on_train_begin(self, logs=None):
        self.keys = None
        self.writer = None
        self.append_header = True
        if self.append and os.path.isfile(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f, delimiter=self.sep), None)
            if header:
                self.append_header = False
                self.keys = [k for k in header if k != "epoch"]
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")

    @staticmethod
    def _cell(value):
        if isinstance(value, str):
            return value
        if getattr(value, "ndim", None) == 0:
            return str(value)  # NumPy scalars print their own precision: '0.6917123' for float32
        if hasattr(value, "__iter__"):
            return "[" + ", ".join(str(v) for v in value) + "]"
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.csv_file is None:  # used without on_train_begin
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            # With validation_freq > 1 the first epoch may have no 'val_' entries:
            # reserve their columns so later epochs can fill them.
            if not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys if k not in ("learning_rate", "lr")]
        if self.writer is None:
            dialect = type("_Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect,
                                         extrasaction="ignore")
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, self._cell(logs[k]) if k in logs else "NA") for k in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.csv_file = None
        self.writer = None


# ------------------------------------------------------------ LambdaCallback
class LambdaCallback(Callback):
    """A callback made of plain functions, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs['loss']))``.

    Epoch hooks get ``(epoch, logs)``, batch hooks ``(batch, logs)``, the others
    ``(logs)``. ``on_batch_begin`` / ``on_batch_end`` run for training batches
    (after ``on_train_batch_begin`` / ``on_train_batch_end`` if both are given).
    Any hook name of :class:`Callback` is accepted as a keyword.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None, **kwargs):
        super().__init__()
        unknown = sorted(set(kwargs) - set(_HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hook(s) {unknown}; expected some of {list(_HOOKS)}")
        functions = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_batch_begin=on_batch_begin,
                         on_batch_end=on_batch_end, on_train_begin=on_train_begin, on_train_end=on_train_end)
        functions.update(kwargs)
        for name, fn in functions.items():
            if fn is not None and not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable, got {fn!r}")
        self._functions = {name: fn for name, fn in functions.items() if fn is not None}

    def _run(self, name, *args):
        fn = self._functions.get(name)
        if fn is not None:
            fn(*args)

    def on_train_begin(self, logs=None):
        self._run("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._run("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._run("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._run("on_epoch_end", epoch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._run("on_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._run("on_batch_end", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._run("on_train_batch_begin", batch, logs)
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._run("on_train_batch_end", batch, logs)
        self.on_batch_end(batch, logs)

    def on_gradients(self, batch, grads_and_vars, logs=None):
        self._run("on_gradients", batch, grads_and_vars, logs)

    def on_test_begin(self, logs=None):
        self._run("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._run("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._run("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._run("on_test_batch_end", batch, logs)

    def on_predict_begin(self, logs=None):
        self._run("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._run("on_predict_end", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._run("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._run("on_predict_batch_end", batch, logs)


# ------------------------------------------------------------ SwapEMAWeights
class SwapEMAWeights(Callback):
    """Uses the optimizer's exponential moving average of the weights (``use_ema=True``)
    for validation and prediction, and leaves it in the model at the end of training.

    During ``fit`` the averaged weights are swapped in for each evaluation and
    swapped back afterwards, so training continues from the raw weights. With
    ``swap_on_epoch=True`` they are also in the model from the end of each epoch
    until the next epoch begins, so epoch-end callbacks (checkpoints, early
    stopping) see them. At the end of training
    ``optimizer.finalize_variable_values(model.trainable_weights)`` writes the
    averages into the weights.
    """

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._swapped = False
        self._in_fit = False

    def _optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None or not getattr(optimizer, "use_ema", False):
            raise ValueError(
                "SwapEMAWeights needs an optimizer created with use_ema=True; got "
                f"{type(optimizer).__name__ if optimizer is not None else 'no optimizer'} with "
                f"use_ema={getattr(optimizer, 'use_ema', None)}")
        return optimizer

    def _swap_in(self):
        if not self._swapped:
            self._optimizer().swap_ema_weights(self.model.trainable_weights)
            self._swapped = True

    def _swap_out(self):
        if self._swapped:
            self._optimizer().swap_ema_weights(self.model.trainable_weights)
            self._swapped = False

    def on_train_begin(self, logs=None):
        self._optimizer()
        self._swapped = False
        self._in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._swap_out()

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch:
            self._swap_in()

    def on_test_begin(self, logs=None):
        self._swap_in()

    def on_test_end(self, logs=None):
        # With swap_on_epoch, validation inside fit leaves the averages in until the next epoch begins.
        if not (self.swap_on_epoch and self._in_fit):
            self._swap_out()

    def on_predict_begin(self, logs=None):
        self._swap_in()

    def on_predict_end(self, logs=None):
        self._swap_out()

    def on_train_end(self, logs=None):
        self._swap_out()  # the optimizer's averages must be back in its slots before finalizing
        self._in_fit = False
        self._optimizer().finalize_variable_values(self.model.trainable_weights)


from .callbacks_extra import GradientMonitor, TensorBoard  # noqa: E402  (they need the Callback base too)
from .saving.checkpoint import BackupAndRestore, ModelCheckpoint  # noqa: E402  (saving needs the Callback base)
