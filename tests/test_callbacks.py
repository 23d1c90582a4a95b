"""Callbacks driven through CallbackList by a small simulated fit loop and a fake model."""

import csv
import math
import sys

import numpy as np
import pytest

from shenjing import callbacks as C

# ------------------------------------------------------------------ fakes


class FakeOptimizer:
    """The optimizer contract the callbacks rely on."""

    def __init__(self, learning_rate=0.1, schedule=None, use_ema=False):
        self._lr = learning_rate
        self._schedule = schedule
        self.use_ema = use_ema
        self.ema = None  # list of arrays, one per trainable weight
        self.swaps = 0
        self.finalized = 0

    @property
    def uses_schedule(self):
        return self._schedule is not None

    @property
    def learning_rate(self):
        return float(self._schedule(0)) if self._schedule else float(np.float32(self._lr))

    @learning_rate.setter
    def learning_rate(self, value):
        if self.uses_schedule:
            raise TypeError("learning rate is driven by a schedule")
        self._lr = value

    def swap_ema_weights(self, variables):
        self.swaps += 1
        for v, a in zip(variables, self.ema):
            tmp = v.copy()
            v[...] = a
            a[...] = tmp

    def finalize_variable_values(self, variables):
        self.finalized += 1
        for v, a in zip(variables, self.ema):
            v[...] = a


class FakeModel:
    """Weights are NumPy arrays updated in place, as the optimizers do."""

    def __init__(self, optimizer=None):
        self.trainable_weights = [np.zeros(3), np.zeros((2, 2))]
        self.optimizer = optimizer or FakeOptimizer()
        self.stop_training = False
        self.history = None
        if self.optimizer.use_ema:
            self.optimizer.ema = [np.full_like(w, -1.0) for w in self.trainable_weights]

    def get_weights(self):
        return [w.copy() for w in self.trainable_weights]

    def set_weights(self, weights):
        for w, new in zip(self.trainable_weights, weights):
            w[...] = new

    def train_step(self):
        for w in self.trainable_weights:
            w += 1.0  # in place: a snapshot that is not a copy would follow along

    @property
    def marker(self):
        return float(self.trainable_weights[0][0])


def fit(model, callbacks=None, epochs=3, steps=4, batch_loss=None, val=None, verbose=0, metrics=None):
    """A miniature training loop calling the hooks the way the real one does.

    batch_loss(epoch, step) -> loss of one batch; val(epoch) -> dict of validation logs or None.
    After epoch e (0-based), model.marker == (e + 1) * steps.
    """
    batch_loss = batch_loss or (lambda e, s: 1.0 / (e + 1))
    cbs = C.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                         verbose=verbose, epochs=epochs, steps=steps)
    model.stop_training = False
    cbs.on_train_begin()
    logs = {}
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        total = 0.0
        for step in range(steps):
            cbs.on_train_batch_begin(step)
            model.train_step()
            total += batch_loss(epoch, step)
            logs = {"loss": total / (step + 1)}
            for name, value in (metrics or {}).items():
                logs[name] = value(epoch)
            cbs.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        epoch_logs = dict(logs)
        val_logs = val(epoch) if val else None
        if val_logs is not None:
            cbs.on_test_begin()
            for step in range(2):
                cbs.on_test_batch_begin(step)
                cbs.on_test_batch_end(step, dict(val_logs))
            cbs.on_test_end(dict(val_logs))
            epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
        cbs.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return model.history


def val_losses(values):
    return lambda epoch: {"loss": values[epoch]}


# ------------------------------------------------------------------ base / list


class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        attr = object.__getattribute__(self, name)
        if name.startswith("on_") and callable(attr):
            def wrapped(*args, **kwargs):
                object.__getattribute__(self, "calls").append(name)
                return attr(*args, **kwargs)
            return wrapped
        return attr


def test_callback_base_hooks_are_noops_and_keras2_batch_aliases_are_called():
    seen = []

    class Keras2Style(C.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, log):  # the logs are passed positionally, whatever their name
            seen.append(("end", batch, log["loss"]))

    cb = Keras2Style()
    fit(FakeModel(), [cb, C.Callback()], epochs=1, steps=2)
    assert seen == [("begin", 0), ("end", 0, 1.0), ("begin", 1), ("end", 1, 1.0)]
    assert cb.params == {"verbose": 0, "epochs": 1, "steps": 2}


def test_callback_list_forwards_every_hook_in_order():
    rec = Recorder()
    fit(FakeModel(), [rec], epochs=1, steps=1, val=lambda e: {"loss": 0.5})
    assert rec.calls == [
        "on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_batch_begin",
        "on_train_batch_end", "on_batch_end", "on_test_begin", "on_test_batch_begin",
        "on_test_batch_end", "on_test_batch_begin", "on_test_batch_end", "on_test_end",
        "on_epoch_end", "on_train_end"]
    cbs = C.CallbackList([rec])
    rec.calls.clear()
    cbs.on_predict_begin()
    cbs.on_predict_batch_begin(0)
    cbs.on_predict_batch_end(0, {"outputs": None})
    cbs.on_predict_end()
    assert rec.calls == ["on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end"]


def test_callback_list_shares_one_logs_dict_and_adds_defaults_once():
    model = FakeModel()
    history = C.History()
    cbs = C.CallbackList([history], add_history=True, add_progbar=True, model=model, verbose=0, epochs=1, steps=1)
    assert sum(isinstance(cb, C.History) for cb in cbs) == 1
    assert sum(isinstance(cb, C.ProgbarLogger) for cb in cbs) == 1
    assert model.history is history
    assert all(cb.model is model for cb in cbs)
    assert all(cb.params == {"verbose": 0, "epochs": 1, "steps": 1} for cb in cbs)

    class Adder(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["extra"] = 7

    cbs = C.CallbackList([Adder()], add_history=True, model=model, verbose=0, epochs=1, steps=1)
    logs = {"loss": 1.0}
    cbs.on_train_begin()
    cbs.on_epoch_end(0, logs)
    assert logs["extra"] == 7
    assert model.history.history == {"loss": [1.0], "extra": [7]}
    with pytest.raises(TypeError, match="Callback"):
        C.CallbackList([object()])


# ------------------------------------------------------------------ History


def test_history_records_epoch_logs_and_sets_model_history():
    model = FakeModel()
    history = fit(model, epochs=3, steps=2, val=val_losses([0.9, 0.8, 0.7]),
                  metrics={"accuracy": lambda e: 0.5 + 0.1 * e})
    assert isinstance(history, C.History)
    assert model.history is history
    assert history.epoch == [0, 1, 2]
    assert history.history["loss"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert history.history["accuracy"] == pytest.approx([0.5, 0.6, 0.7])
    assert history.history["val_loss"] == pytest.approx([0.9, 0.8, 0.7])
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 2}


def test_history_continues_across_fits_with_the_same_object():
    model = FakeModel()
    history = C.History()
    fit(model, [history], epochs=2, steps=1)
    fit(model, [history], epochs=1, steps=1)
    assert len(history.history["loss"]) == 3
    assert history.epoch == [0]


# ------------------------------------------------------------------ EarlyStopping


def test_early_stopping_patience():
    model = FakeModel()
    es = C.EarlyStopping(monitor="val_loss", patience=2)
    history = fit(model, [es], epochs=10, val=val_losses([1.0, 0.9, 0.95, 0.92, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]))
    # best at epoch 1; epochs 2 and 3 do not improve -> stop at epoch 3
    assert history.epoch == [0, 1, 2, 3]
    assert es.stopped_epoch == 3
    assert es.best == pytest.approx(0.9)
    assert model.stop_training is True


def test_early_stopping_min_delta():
    es = C.EarlyStopping(monitor="val_loss", patience=1, min_delta=0.1)
    history = fit(FakeModel(), [es], epochs=10, val=val_losses([1.0, 0.95, 0.5, 0.45] + [0.0] * 6))
    # 0.95 is not an improvement of more than 0.1 over 1.0 -> stop at epoch 1
    assert history.epoch == [0, 1]
    es = C.EarlyStopping(monitor="val_loss", patience=1, min_delta=-0.1)  # the sign is ignored
    assert es.min_delta == 0.1


def test_early_stopping_mode_auto_and_explicit():
    assert C.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert C.EarlyStopping(monitor="val_auc").mode == "max"
    assert C.EarlyStopping(monitor="precision").mode == "max"
    assert C.EarlyStopping(monitor="val_recall").mode == "max"
    assert C.EarlyStopping(monitor="val_loss").mode == "min"
    assert C.EarlyStopping(monitor="mae").mode == "min"
    assert C.EarlyStopping(monitor="val_accuracy", mode="min").mode == "min"
    with pytest.warns(UserWarning, match="mode 'bogus' is unknown"):
        assert C.EarlyStopping(monitor="val_loss", mode="bogus").mode == "min"

    es = C.EarlyStopping(monitor="val_accuracy", patience=1)
    history = fit(FakeModel(), [es], epochs=10, val=lambda e: {"accuracy": [0.5, 0.6, 0.55, 0.7][e % 4]})
    assert history.epoch == [0, 1, 2]


def test_early_stopping_baseline():
    # never beats the baseline 0.5 -> stops once patience epochs have passed, even while improving
    es = C.EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    history = fit(FakeModel(), [es], epochs=10, val=val_losses([0.9, 0.8, 0.7, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0]))
    assert history.epoch == [0, 1]
    # beats it at epoch 1 -> normal patience from there on
    es = C.EarlyStopping(monitor="val_loss", patience=2, baseline=0.5)
    history = fit(FakeModel(), [es], epochs=10, val=val_losses([0.9, 0.4, 0.3, 0.35, 0.36, 0.1, 0, 0, 0, 0]))
    assert history.epoch == [0, 1, 2, 3, 4]


def test_early_stopping_start_from_epoch():
    losses = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]
    es = C.EarlyStopping(monitor="val_loss", patience=1, start_from_epoch=3)
    history = fit(FakeModel(), [es], epochs=8, val=val_losses(losses))
    # epochs 0-2 ignored; epoch 3 is the first best, epoch 4 does not improve -> stop
    assert history.epoch == [0, 1, 2, 3, 4]
    assert es.best == pytest.approx(1.3)


@pytest.mark.parametrize("verbose", [0, 1])
def test_early_stopping_restores_best_weights_when_it_stops(capsys, verbose):
    model = FakeModel()
    steps = 2
    es = C.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=verbose)
    fit(model, [es], epochs=10, steps=steps, val=val_losses([1.0, 0.5, 0.7, 0.8, 0.1, 0, 0, 0, 0, 0]))
    assert es.stopped_epoch == 3
    assert es.best_epoch == 1
    assert model.marker == (1 + 1) * steps
    np.testing.assert_array_equal(model.trainable_weights[1], np.full((2, 2), 4.0))
    out = capsys.readouterr().out
    if verbose:
        assert "Epoch 4: early stopping" in out
        assert "Restoring model weights from the end of the best epoch: 2." in out
    else:
        assert out == ""


def test_early_stopping_restores_best_weights_when_training_ends_normally():
    model = FakeModel()
    es = C.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    fit(model, [es], epochs=4, steps=3, val=val_losses([1.0, 0.2, 0.5, 0.6]))
    assert es.stopped_epoch == 0
    assert model.marker == 2 * 3  # the weights at the end of epoch 1


def test_early_stopping_restores_best_weights_when_another_callback_stops():
    model = FakeModel()

    class StopAt(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                self.model.stop_training = True

    es = C.EarlyStopping(monitor="loss", patience=10, restore_best_weights=True)
    fit(model, [es, StopAt()], epochs=10, steps=1, batch_loss=lambda e, s: [3, 1, 2][e])
    assert model.marker == 2  # epoch 1 had the lowest loss


def test_early_stopping_warns_on_missing_monitor():
    es = C.EarlyStopping(monitor="val_acc")
    with pytest.warns(UserWarning, match=r"'val_acc'.*Available metrics are: loss"):
        history = fit(FakeModel(), [es], epochs=2)
    assert history.epoch == [0, 1]


# ------------------------------------------------------------------ learning-rate callbacks


def test_learning_rate_scheduler_two_argument_schedule(capsys):
    model = FakeModel(FakeOptimizer(learning_rate=1.0))
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5

    history = fit(model, [C.LearningRateScheduler(schedule, verbose=1)], epochs=3)
    assert seen == [(0, 1.0), (1, 0.5), (2, 0.25)]
    assert history.history["learning_rate"] == [0.5, 0.25, 0.125]
    assert history.history["lr"] == [0.5, 0.25, 0.125]
    assert model.optimizer.learning_rate == 0.125
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.25." in capsys.readouterr().out


def test_learning_rate_scheduler_one_argument_schedule():
    model = FakeModel(FakeOptimizer(learning_rate=1.0))
    history = fit(model, [C.LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1))], epochs=3)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.1 / 3])
    assert model.optimizer.learning_rate == pytest.approx(0.1 / 3)


def test_learning_rate_scheduler_errors():
    with pytest.raises(TypeError, match="callable"):
        C.LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match="must return a number"):
        fit(FakeModel(), [C.LearningRateScheduler(lambda e: "fast")], epochs=1)
    model = FakeModel(FakeOptimizer(schedule=lambda step: 0.1))
    with pytest.raises(TypeError, match="LearningRateScheduler.*schedule"):
        fit(model, [C.LearningRateScheduler(lambda e: 0.1)], epochs=1)


def test_reduce_lr_on_plateau_patience_cooldown_min_lr(capsys):
    model = FakeModel(FakeOptimizer(learning_rate=1.0))
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=2, min_lr=0.2, verbose=1)
    losses = [1.0] * 12
    history = fit(model, [cb], epochs=12, val=val_losses(losses))
    # epoch 0 best; 1, 2 wait -> reduce after epoch 2; epoch 3 cooldown; 4 (the cooldown's last epoch
    # already counts, as in Keras), 5 wait -> reduce after 5; ...
    assert history.history["learning_rate"] == pytest.approx(
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2])
    assert model.optimizer.learning_rate == pytest.approx(0.2)
    out = capsys.readouterr().out
    assert out.count("ReduceLROnPlateau reducing learning rate") == 3
    assert "Epoch 3: ReduceLROnPlateau reducing learning rate to 0.5." in out


def test_reduce_lr_on_plateau_improvement_resets_and_mode_max():
    model = FakeModel(FakeOptimizer(learning_rate=1.0))
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=2, min_delta=0.01)
    fit(model, [cb], epochs=6, val=val_losses([1.0, 0.9, 0.8, 0.7, 0.695, 0.699]))
    # improves until epoch 3; 4 (within min_delta) and 5 wait -> one reduction
    assert model.optimizer.learning_rate == pytest.approx(0.1)

    model = FakeModel(FakeOptimizer(learning_rate=1.0))
    cb = C.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1)
    assert cb.mode == "max"
    fit(model, [cb], epochs=3, val=lambda e: {"accuracy": [0.5, 0.6, 0.6][e]})
    assert model.optimizer.learning_rate == pytest.approx(0.1)


def test_reduce_lr_on_plateau_errors():
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=2)
    model = FakeModel(FakeOptimizer(schedule=lambda step: 0.1))
    with pytest.raises(TypeError, match=r"ReduceLROnPlateau.*schedule"):
        fit(model, [C.ReduceLROnPlateau()], epochs=1)
    with pytest.warns(UserWarning, match="'val_loss'.*Available metrics are"):
        fit(FakeModel(), [C.ReduceLROnPlateau()], epochs=1)


# ------------------------------------------------------------------ TerminateOnNaN


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_terminate_on_nan(capsys, bad):
    model = FakeModel()
    history = fit(model, [C.TerminateOnNaN()], epochs=5, steps=4,
                  batch_loss=lambda e, s: bad if (e, s) == (1, 2) else 1.0)
    assert model.stop_training is True
    assert history.epoch == [0, 1]
    assert model.marker == 4 + 3  # stopped right after the bad batch
    assert "Batch 2: Invalid loss" in capsys.readouterr().out


def test_terminate_on_nan_leaves_finite_losses_alone():
    history = fit(FakeModel(), [C.TerminateOnNaN()], epochs=3)
    assert history.epoch == [0, 1, 2]


# ------------------------------------------------------------------ CSVLogger


def read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_header_and_one_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    fit(FakeModel(), [C.CSVLogger(path)], epochs=3, steps=1, val=val_losses([0.9, 0.8, 0.7]),
        metrics={"accuracy": lambda e: 0.25 * e})
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_loss"]
    assert len(rows) == 4
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert [float(r[3]) for r in rows[1:]] == pytest.approx([0.9, 0.8, 0.7])
    assert float(rows[2][1]) == 0.25


def test_csv_logger_flushes_each_row(tmp_path):
    path = tmp_path / "log.csv"
    lines_seen = []

    class Peek(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            lines_seen.append(len(read_csv(path)))

    fit(FakeModel(), [C.CSVLogger(path), Peek()], epochs=2, steps=1)
    assert lines_seen == [2, 3]


def test_csv_logger_append_keeps_one_header_and_separator(tmp_path):
    path = tmp_path / "log.tsv"
    fit(FakeModel(), [C.CSVLogger(path, separator="\t", append=True)], epochs=2, steps=1,
        val=val_losses([0.9, 0.8]))
    fit(FakeModel(), [C.CSVLogger(path, separator="\t", append=True)], epochs=1, steps=1,
        val=val_losses([0.5]))
    rows = read_csv(path, "\t")
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[0] for r in rows] == ["epoch", "0", "1", "0"]
    assert float(rows[3][2]) == 0.5
    # append=False overwrites
    fit(FakeModel(), [C.CSVLogger(path, separator="\t")], epochs=1, steps=1, val=val_losses([0.1]))
    assert len(read_csv(path, "\t")) == 2


def test_csv_logger_without_validation_reserves_val_columns(tmp_path):
    path = tmp_path / "log.csv"
    fit(FakeModel(), [C.CSVLogger(path)], epochs=2, steps=1, val=lambda e: {"loss": 0.3} if e == 1 else None)
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert rows[1][2] == "NA"
    assert float(rows[2][2]) == 0.3


def test_csv_logger_writes_numpy_scalars_compactly(tmp_path):
    path = tmp_path / "log.csv"
    cb = C.CSVLogger(path)
    cbs = C.CallbackList([cb], model=FakeModel(), verbose=0, epochs=1, steps=1)
    cbs.on_train_begin()
    cbs.on_epoch_end(0, {"loss": np.float32(0.1), "val_loss": np.array(0.25, dtype=np.float32)})
    cbs.on_train_end()
    assert read_csv(path)[1] == ["0", "0.1", "0.25"]
    assert cb.csv_file is None


# ------------------------------------------------------------------ LambdaCallback


def test_lambda_callback():
    events = []
    cb = C.LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
        on_batch_begin=lambda batch, logs: events.append(f"batch_begin {batch}"),
        on_batch_end=lambda batch, logs: events.append(f"batch_end {batch} {logs['loss']}"),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"),
        on_test_end=lambda logs: events.append(f"test_end {logs['loss']}"),
    )
    fit(FakeModel(), [cb], epochs=1, steps=2, val=val_losses([0.5]))
    assert events == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0 1.0", "batch_begin 1",
                      "batch_end 1 1.0", "test_end 0.5", "epoch_end 0 ['loss', 'val_loss']", "train_end"]


def test_lambda_callback_train_batch_hooks_and_errors():
    events = []
    cb = C.LambdaCallback(on_train_batch_end=lambda b, logs: events.append(("train", b)),
                          on_batch_end=lambda b, logs: events.append(("batch", b)))
    fit(FakeModel(), [cb], epochs=1, steps=1)
    assert events == [("train", 0), ("batch", 0)]
    with pytest.raises(TypeError, match="unknown hook"):
        C.LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="callable"):
        C.LambdaCallback(on_epoch_end=3)


# ------------------------------------------------------------------ SwapEMAWeights


def test_swap_ema_weights_validates_with_averages_and_finalizes():
    model = FakeModel(FakeOptimizer(use_ema=True))
    during_validation = []

    class Peek(C.Callback):
        def on_test_begin(self, logs=None):
            during_validation.append(self.model.marker)

    # SwapEMAWeights comes first so its on_test_begin runs before Peek's
    fit(model, [C.SwapEMAWeights(), Peek()], epochs=2, steps=2, val=val_losses([0.5, 0.4]))
    assert during_validation == [-1.0, -1.0]  # the EMA weights were in the model
    assert model.optimizer.finalized == 1
    assert model.marker == -1.0  # finalize_variable_values wrote the averages
    assert model.optimizer.swaps == 4  # in and out around each validation


def test_swap_ema_weights_swap_on_epoch():
    model = FakeModel(FakeOptimizer(use_ema=True))
    at_epoch_end = []

    class Peek(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            at_epoch_end.append(self.model.marker)

        def on_epoch_begin(self, epoch, logs=None):
            at_epoch_end.append(("begin", self.model.marker))

    fit(model, [C.SwapEMAWeights(swap_on_epoch=True), Peek()], epochs=2, steps=2, val=val_losses([0.5, 0.4]))
    # epoch 1 begins from the raw weights (2.0), not the averages
    assert at_epoch_end == [("begin", 0.0), -1.0, ("begin", 2.0), -1.0]
    assert model.optimizer.finalized == 1
    np.testing.assert_array_equal(model.optimizer.ema[0], np.full(3, -1.0))
    assert model.marker == -1.0


def test_swap_ema_weights_requires_ema():
    with pytest.raises(ValueError, match="use_ema=True"):
        fit(FakeModel(), [C.SwapEMAWeights()], epochs=1)


# ------------------------------------------------------------------ ProgbarLogger


def test_progbar_logger_verbose_1_not_a_tty(capsys):
    fit(FakeModel(), epochs=2, steps=4, verbose=1, val=val_losses([0.25, 0.125]),
        metrics={"accuracy": lambda e: 0.75})
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2"
    assert lines[2] == "Epoch 2/2"
    assert len(lines) == 4
    for line, loss, val in ((lines[1], "1.0000", "0.2500"), (lines[3], "0.5000", "0.1250")):
        assert line.startswith("4/4 [==============================] - ")
        assert "/step - " in line
        assert line.endswith(f" - loss: {loss} - accuracy: 0.7500 - val_loss: {val}")


def test_progbar_logger_verbose_2(capsys):
    fit(FakeModel(), epochs=2, steps=4, verbose=2, val=val_losses([0.25, 0.125]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2"
    assert lines[1].startswith("4/4 - ")
    assert lines[1].endswith("s - loss: 1.0000 - val_loss: 0.2500")
    assert "[" not in lines[1]
    assert len(lines) == 4


def test_progbar_logger_verbose_0_is_silent(capsys):
    fit(FakeModel(), [C.ProgbarLogger()], epochs=2, steps=4, verbose=0)
    assert capsys.readouterr().out == ""


def test_progbar_logger_unknown_steps_and_learning_rate(capsys, monkeypatch):
    model = FakeModel()
    # steps=None: the loop does not know the epoch length; the bar learns it
    cbs = C.CallbackList([C.LearningRateScheduler(lambda e: 0.01)], add_progbar=True, model=model,
                         verbose=1, epochs=2, steps=None)
    cbs.on_train_begin()
    for epoch in range(2):
        cbs.on_epoch_begin(epoch)
        for step in range(3):
            cbs.on_train_batch_end(step, {"loss": 0.5})
        cbs.on_epoch_end(epoch, {"loss": 0.5})
    cbs.on_train_end()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("3/3 [===")  # the target is learnt at the end of the first epoch
    assert lines[1].endswith(" - loss: 0.5000 - learning_rate: 0.0100")  # 'lr' alias not shown twice
    assert lines[3].startswith("3/3 [===")

    # while the first epoch runs, a terminal shows the count without a target
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    cbs = C.CallbackList(add_progbar=True, model=model, verbose=1, epochs=1, steps=None)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_train_batch_end(0, {"loss": 0.5})
    assert capsys.readouterr().out.startswith("\r      1/Unknown - ")


def test_progbar_logger_evaluate_outside_fit(capsys):
    cbs = C.CallbackList(add_progbar=True, model=FakeModel(), verbose=1, epochs=1, steps=2)
    cbs.on_test_begin()
    for step in range(2):
        cbs.on_test_batch_end(step, {"loss": 0.3})
    cbs.on_test_end({"loss": 0.3})
    out = capsys.readouterr().out
    assert out.splitlines() == [out.splitlines()[0]]
    assert out.startswith("2/2 [==============================]")
    assert out.rstrip().endswith("loss: 0.3000")


def test_progbar_logger_tty_redraws(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    fit(FakeModel(), epochs=1, steps=3, verbose=1)
    out = capsys.readouterr().out
    assert out.count("\r") >= 1
    assert out.endswith("\n")
    assert "3/3 [==============================]" in out


def test_progbar_logger_count_mode():
    with pytest.raises(ValueError, match="count_mode"):
        C.ProgbarLogger(count_mode="epochs")
