"""The training API: ``compile``, ``fit``, ``evaluate``, ``predict`` and the ``*_on_batch`` methods.

One training step: forward with ``training=True`` → the compiled losses
(weighted per output) plus the regularization penalties → ``backward()`` →
the optimizer updates the trainable weights in place → the streaming metrics
see the batch. Callbacks are called around every batch and epoch.
"""

from __future__ import annotations

import warnings

from .. import backend as B
from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers as optimizers_module
from ..autodiff import Tensor, no_grad, ops
from ..autodiff.variable import graph_generation
from ..callbacks import CallbackList
from . import data_adapter as da
from .step_replay import StepReplay

_IGNORED_COMPILE_KWARGS = {"run_eagerly", "jit_compile", "steps_per_execution", "sample_weight_mode", "auto_scale_loss"}


def _per_output(value, names: list, argument: str):
    """A list/dict/single value given for the outputs, as a list aligned with ``names``."""
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"compile: {argument} names unknown output(s) {sorted(unknown)}; the outputs are {names}")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)) and len(names) > 1:
        if len(value) != len(names):
            raise ValueError(f"compile: {argument} has {len(value)} entries, but the model has {len(names)} outputs "
                             f"({names})")
        return list(value)
    return [value] * len(names)


class Trainer:
    """The Keras training methods, mixed into :class:`~shenjing.models.Model`."""

    def __init__(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._compiled_losses = None
        self._compiled_metric_specs = None
        self._metrics_per_output = None
        self._loss_tracker = None

    # ---------------------------------------------------------------- compile
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                **kwargs) -> None:
        """Configure training: ``optimizer`` (name or object), ``loss`` (one, or one per output as a list /
        dict), ``metrics`` (names or objects, for every output or per output), ``loss_weights``."""
        unknown = set(kwargs) - _IGNORED_COMPILE_KWARGS
        if unknown:
            raise TypeError(f"compile: unexpected keyword argument(s) {sorted(unknown)}")
        self.optimizer = optimizers_module.get(optimizer)
        self._loss_spec = loss
        self._loss_weights_spec = loss_weights
        self._metrics_spec = metrics
        self._weighted_metrics_spec = weighted_metrics
        self._compiled_losses = None
        self._metrics_per_output = None
        self.compiled = True
        self._train_variables = None

    def _output_names_or_default(self) -> list:
        return self.output_names

    def _resolve_compiled(self, output_shapes: list) -> None:
        """Resolve losses and metrics once the output shapes are known (``'accuracy'`` needs them)."""
        if self._metrics_per_output is not None:
            return
        names = self._output_names_or_default()
        if self._loss_spec is None:
            raise ValueError(f"Model {self.name!r} was compiled without a loss; pass loss= to compile()")
        specs = _per_output(self._loss_spec, names, "loss")
        self._compiled_losses = [losses_module.get(s) if s is not None else None for s in specs]
        weights = _per_output(self._loss_weights_spec, names, "loss_weights") if self._loss_weights_spec is not None \
            else [1.0] * len(names)
        self._loss_weights = [1.0 if w is None else float(w) for w in weights]
        self._metrics_per_output = []
        for spec_name, weighted in (("_metrics_spec", False), ("_weighted_metrics_spec", True)):
            spec = getattr(self, spec_name)
            if spec is None:
                per_output = [[] for _ in names]
            elif isinstance(spec, dict):
                per_output = [spec.get(n, []) for n in names]
                per_output = [m if isinstance(m, (list, tuple)) else [m] for m in per_output]
            elif isinstance(spec, (list, tuple)) and len(names) > 1 and spec and all(
                    isinstance(m, (list, tuple)) for m in spec):
                per_output = [list(m) for m in spec]
            else:
                per_output = [list(spec) if isinstance(spec, (list, tuple)) else [spec] for _ in names]
            for i, (output_metrics, shape) in enumerate(zip(per_output, output_shapes)):
                if len(self._metrics_per_output) <= i:
                    self._metrics_per_output.append([])
                for m in output_metrics:
                    metric = metrics_module.get(m, loss=self._compiled_losses[i], output_shape=shape)
                    prefix = f"{names[i]}_" if len(names) > 1 else ""
                    self._metrics_per_output[i].append((prefix + ("weighted_" if weighted else "") + metric.name,
                                                        metric, weighted))
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._output_loss_trackers = [metrics_module.Mean(name=f"{n}_loss") for n in names] if len(names) > 1 else []

    @property
    def metrics_names(self) -> list:
        names = ["loss"] + [t.name for t in self._output_loss_trackers or []]
        for per_output in self._metrics_per_output or []:
            names.extend(name for name, _, _ in per_output)
        return names

    def _reset_metrics(self) -> None:
        for tracker in [self._loss_tracker] + list(self._output_loss_trackers):
            tracker.reset_state()
        for per_output in self._metrics_per_output:
            for _, metric, _ in per_output:
                metric.reset_state()

    def reset_metrics(self) -> None:
        if self._metrics_per_output is not None:
            self._reset_metrics()

    def _logs(self) -> dict:
        logs = {"loss": self._loss_tracker.result()}
        for tracker in self._output_loss_trackers:
            logs[tracker.name] = tracker.result()
        for per_output in self._metrics_per_output:
            for name, metric, _ in per_output:
                logs[name] = metric.result()
        return logs

    # ------------------------------------------------------------------ steps
    def _forward(self, xs: list, training: bool) -> list:
        out = self(xs[0] if len(xs) == 1 else xs, training=training)
        return list(out) if isinstance(out, (list, tuple)) else [out]

    def _total_loss(self, ys, outputs, sample_weights):
        """The weighted sum of the per-output losses plus the regularization penalties.

        ``sample_weights``: None, or one array (or None) per output.
        """
        total = None
        per_output = []
        sample_weights = sample_weights or [None] * len(outputs)
        for loss, weight, y, out, sw in zip(self._compiled_losses, self._loss_weights, ys, outputs, sample_weights):
            if loss is None:
                per_output.append(None)
                continue
            value = loss(y, out, sample_weight=_masked_weights(sw, out._keras_mask, mean_over_valid=True))
            per_output.append(value)
            term = value if weight == 1.0 else ops.mul(value, weight)
            total = term if total is None else ops.add(total, term)
        for penalty in self.losses:
            total = penalty if total is None else ops.add(total, penalty)
        return total, per_output

    def _update_metrics(self, ys, outputs, sample_weights, total, per_output, batch_size: int) -> None:
        self._loss_tracker.update_state(float(total.data), sample_weight=batch_size)
        for tracker, value in zip(self._output_loss_trackers, per_output):
            if value is not None:
                tracker.update_state(float(value.data), sample_weight=batch_size)
        sample_weights = sample_weights or [None] * len(outputs)
        for per, y, out, sw in zip(self._metrics_per_output, ys, outputs, sample_weights):
            if not per:  # (a replayed step leaves out an output no metric reads: None)
                continue
            mask = out._keras_mask
            for _, metric, weighted in per:
                metric.update_state(y, out.data, sample_weight=_masked_weights(sw if weighted else None, mask))

    def _prepare_variables(self) -> None:
        """Fix the list of trained variables (and the optimizer's slots, in that order) for this fit."""
        self._train_variables = self.trainable_weights
        if hasattr(self.optimizer, "build"):
            self.optimizer.build(self._train_variables)

    def _train_step(self, xs, ys, sample_weight, callbacks=None, step: int = 0) -> None:
        replayer = self.__dict__.get("_step_replay")
        if replayer is None:
            replayer = StepReplay()
            object.__setattr__(self, "_step_replay", replayer)  # (not a layer attribute: no new generation)
        plan, outputs, total, per_output = replayer.forward(self, xs, ys, sample_weight)
        variables = self._train_variables
        if total.requires_grad:  # a model with nothing to train still reports its loss
            for v in variables:
                v.grad = None
            if plan is None:
                total.backward()
            else:
                plan.backward(total)
            grads_and_vars = [(v.grad, v) for v in variables]
            if callbacks is not None:
                callbacks.on_gradients(step, grads_and_vars)  # the one moment the gradients exist
            self.optimizer.apply_gradients(grads_and_vars)
            for v in variables:
                v.grad = None
        self._update_metrics(ys, outputs, sample_weight, total, per_output, int(xs[0].shape[0]))

    def _test_step(self, xs, ys, sample_weight) -> None:
        with no_grad():
            outputs = self._forward(xs, training=False)
            total, per_output = self._total_loss(ys, outputs, sample_weight)
        self._update_metrics(ys, outputs, sample_weight, total, per_output, int(xs[0].shape[0]))

    # ------------------------------------------------------------------- data
    def _prepare(self, method, x, y=None, sample_weight=None, class_weight=None, need_y=True):
        """Check and standardise arrays: lists aligned with the inputs / outputs, sample weights combined."""
        if x is None:
            raise ValueError(f"{method}: x is required")
        input_shapes = self._input_shapes()
        known = input_shapes is not None
        input_names = self.input_names if known else []
        xs = da.to_array_list(x, input_names, "x", method)
        ys = da.to_array_list(y, self.output_names if known else [], "y", method) if y is not None else None
        if need_y and ys is None:
            raise ValueError(f"{method}: y is required (the targets of the loss)")
        if sample_weight is None:
            sw = present = None
        else:
            sw = da.sample_weight_list(sample_weight, self.output_names, len(ys) if ys is not None else 1, method)
            present = [w for w in sw if w is not None] if sw else None
        n = da.check_lengths({"x": xs, "y": ys, "sample_weight": present}, method)
        da.check_finite(xs, "x", method)
        da.check_finite(ys, "y", method)
        da.check_finite(present, "sample_weight", method)
        if known:
            da.check_input_shapes(xs, input_shapes, input_names, self.name, method)
        if class_weight is not None:
            if ys is None or len(ys) != 1:
                raise ValueError(f"{method}: class_weight is only supported for models with a single output; "
                                 f"model {self.name!r} has {0 if ys is None else len(ys)}. Use sample_weight per "
                                 f"output instead")
            sw = [self._apply_class_weight(ys[0], class_weight, sw[0] if sw else None)]
        return xs, ys, sw, n

    def _apply_class_weight(self, y, class_weight: dict, sw):
        xp = B.xp
        classes = y.argmax(axis=-1) if y.ndim > 1 and y.shape[-1] > 1 else xp.round(y.reshape(len(y), -1)[:, 0])
        classes = classes.astype("int64")
        table = xp.ones(int(max(int(classes.max()) + 1, max(class_weight) + 1)), dtype=B.floatx())
        for k, w in class_weight.items():
            table[int(k)] = w
        weights = table[classes]
        return weights if sw is None else sw * weights

    def _ensure_ready(self, method, xs, ys) -> None:
        """Build the model on a sample if needed, resolve losses/metrics and validate the targets."""
        if not self.compiled and method != "predict":
            raise RuntimeError(f"{method}: model {self.name!r} must be compiled first: call model.compile(optimizer, "
                               f"loss) before {method}()")
        if not self.built or self._input_shapes() is None and not self.weights:
            with no_grad():
                self._forward([x[:1] for x in xs], training=False)
        if method == "predict":
            return
        output_shapes = self._output_shapes_for(xs)
        self._resolve_compiled(output_shapes)
        if ys is not None:
            for loss, y, shape in zip(self._compiled_losses, ys, output_shapes):
                if loss is not None and hasattr(loss, "validate_targets"):
                    loss.validate_targets(y, shape)

    def _output_shapes_for(self, xs) -> list:
        if self._is_graph:
            return [t.shape for t in self._outputs]
        with no_grad():
            outs = self._forward([x[:1] for x in xs], training=False)
        return [(None,) + tuple(o.shape[1:]) for o in outs]

    def _batches(self, method, x, y, sw, batch_size, shuffle=False, steps=None):
        if _is_generator_like(x):
            return da.GeneratorBatches(x, steps, method, self._standardize_batch)
        return da.ArrayBatches(x, y, sw, batch_size, shuffle, steps)

    def _standardize_batch(self, item):
        if isinstance(item, tuple) and len(item) in (2, 3):
            x, y, sw = item if len(item) == 3 else (item[0], item[1], None)
        else:
            x, y, sw = item, None, None
        xs, ys, sw, _ = self._prepare("fit", x, y, sw, need_y=False)
        return xs, ys, sw

    # -------------------------------------------------------------------- fit
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, **kwargs):
        """Train for ``epochs`` epochs of mini-batches; returns the :class:`History`.

        Keras 1 spellings: ``nb_epoch`` (= epochs); ``show_accuracy`` is ignored with a warning.
        """
        epochs = _legacy_fit_kwargs(kwargs, epochs)
        verbose = 1 if verbose == "auto" else int(verbose)
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
        batch_size = da.check_batch_size(batch_size, "fit")
        generator = _is_generator_like(x)
        val = None
        if generator:
            if not self.compiled:
                raise RuntimeError("fit: the model must be compiled first: call model.compile(optimizer, loss)")
            if hasattr(x, "__getitem__"):
                first = self._standardize_batch(x[0])
            else:
                x = _peek(x)
                first = self._standardize_batch(x.first)
            train = self._batches("fit", x, None, None, batch_size, steps=steps_per_epoch)
            self._ensure_ready("fit", first[0], first[1])
        else:
            xs, ys, sw, n = self._prepare("fit", x, y, sample_weight, class_weight)
            if validation_data is None and validation_split:
                (xs, ys, sw), val = da.split_validation([xs, ys, sw], validation_split, n)
            self._ensure_ready("fit", xs, ys)
            train = self._batches("fit", xs, ys, sw, batch_size, shuffle=shuffle, steps=steps_per_epoch)
        if validation_data is not None:
            val = self._unpack_validation(validation_data)
        self._prepare_variables()
        self.stop_training = False
        callback_list = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                                     verbose=verbose, epochs=epochs, steps=len(train))
        callback_list.on_train_begin()
        # BackupAndRestore resumes an interrupted run from its last finished epoch
        initial_epoch = self.__dict__.pop("_initial_epoch_override", initial_epoch)
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self._reset_metrics()
            callback_list.on_epoch_begin(epoch)
            for step, (xb, yb, swb) in enumerate(train):
                callback_list.on_train_batch_begin(step)
                self._train_step(xb, yb, swb, callback_list, step)
                logs = self._logs()
                callback_list.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_batches(val, validation_batch_size or batch_size, validation_steps,
                                                  callback_list)
                epoch_logs.update({"val_" + k: v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        callback_list.on_train_end(logs)
        return self.history

    def _unpack_validation(self, validation_data):
        if _is_generator_like(validation_data):
            return validation_data
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight)"
                             f", got {type(validation_data).__name__} of length {len(validation_data)}")
        vx, vy = validation_data[0], validation_data[1]
        vsw = validation_data[2] if len(validation_data) == 3 else None
        xs, ys, sw, _ = self._prepare("fit (validation_data)", vx, vy, vsw)
        for loss, y, shape in zip(self._compiled_losses, ys, self._output_shapes_for(xs)):
            if loss is not None and hasattr(loss, "validate_targets"):
                loss.validate_targets(y, shape)
        return xs, ys, sw

    def _evaluate_batches(self, data, batch_size, steps, callback_list) -> dict:
        self._reset_metrics()
        if _is_generator_like(data):
            batches = da.GeneratorBatches(data, steps, "evaluate", self._standardize_batch)
        else:
            batches = da.ArrayBatches(data[0], data[1], data[2], batch_size, False, steps)
        callback_list.on_test_begin()
        logs = {}
        for step, (xb, yb, swb) in enumerate(batches):
            callback_list.on_test_batch_begin(step)
            self._test_step(xb, yb, swb)
            logs = self._logs()
            callback_list.on_test_batch_end(step, logs)
        callback_list.on_test_end(logs)
        return logs

    # --------------------------------------------------------------- evaluate
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False, **kwargs):
        """The loss (and metrics) on the data: a scalar if there are no metrics, else a list (or a dict)."""
        if kwargs.pop("show_accuracy", None) is not None:
            warnings.warn("evaluate: show_accuracy is a Keras 1 argument and is ignored; pass metrics=['accuracy'] "
                          "to compile() instead", stacklevel=2)
        if kwargs:
            raise TypeError(f"evaluate: unexpected keyword argument(s) {sorted(kwargs)}")
        verbose = 1 if verbose == "auto" else int(verbose)
        batch_size = da.check_batch_size(batch_size, "evaluate")
        if _is_generator_like(x):
            if hasattr(x, "__getitem__"):
                first = self._standardize_batch(x[0])
            else:
                x = _peek(x)
                first = self._standardize_batch(x.first)
            self._ensure_ready("evaluate", first[0], first[1])
            data = x
            n_steps = steps if steps is not None else (len(x) if hasattr(x, "__len__") else None)
        else:
            xs, ys, sw, _ = self._prepare("evaluate", x, y, sample_weight)
            self._ensure_ready("evaluate", xs, ys)
            data = (xs, ys, sw)
            n_steps = steps or -(-len(xs[0]) // batch_size)
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                                     steps=n_steps)
        logs = self._evaluate_batches(data, batch_size, steps, callback_list)
        if return_dict:
            return dict(logs)
        values = [logs[k] for k in self.metrics_names if k in logs]
        return values[0] if len(values) == 1 else values

    # ---------------------------------------------------------------- predict
    def predict(self, x, batch_size=None, verbose=0, steps=None, callbacks=None):
        """Outputs for ``x`` in batches (inference mode), as host arrays (a list for several outputs)."""
        verbose = 0 if verbose == "auto" else int(verbose)
        batch_size = da.check_batch_size(batch_size, "predict")
        if _is_generator_like(x):
            batches = da.GeneratorBatches(x, steps, "predict", self._standardize_batch)
        else:
            xs, _, _, _ = self._prepare("predict", x, need_y=False)
            self._ensure_ready("predict", xs, None)
            batches = da.ArrayBatches(xs, None, None, batch_size, False, steps)
        callback_list = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                                     steps=len(batches))
        callback_list.on_predict_begin()
        chunks = None
        with no_grad():
            for step, (xb, _, _) in enumerate(batches):
                callback_list.on_predict_batch_begin(step)
                outs = [o.data for o in self._forward(xb, training=False)]
                if chunks is None:
                    chunks = [[o] for o in outs]
                else:
                    for c, o in zip(chunks, outs):
                        c.append(o)
                callback_list.on_predict_batch_end(step, {"outputs": outs})
        callback_list.on_predict_end()
        results = [B.to_host(B.xp.concatenate(c, axis=0)) for c in chunks]
        return results[0] if len(results) == 1 else results

    def predict_classes(self, x, batch_size=32, verbose=0):
        """Keras 1/2: class indices — argmax for several units, ``probability > 0.5`` for one unit."""
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype("int32")

    def predict_proba(self, x, batch_size=32, verbose=0):
        """Keras 1/2: the predicted probabilities (``predict``); warns if the outputs are not in [0, 1]."""
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.min() < 0 or proba.max() > 1:
            warnings.warn("predict_proba: the model's outputs are not probabilities (not in [0, 1]); "
                          "did you forget a sigmoid/softmax?", stacklevel=2)
        return proba

    # ------------------------------------------------------------- on_batch
    def _checked_batch(self, x, y=None):
        """``([x], [y])`` when ``x`` (and ``y``, unless None: a prediction) are one plain array each for a
        built model with one input (and one compiled output) and every check of :meth:`_prepare` and
        :meth:`_ensure_ready` passes -- the same checks, without their generality. None in any other
        case: the caller then takes the general path, which raises the errors.

        The checks of shapes and dtypes are made once for a batch like the one before (same shapes and
        dtypes, same model generation and loss); then only the checks that read the values run."""
        ndarray = B.xp.ndarray
        if type(x) is not ndarray or not self.built:
            return None
        if y is not None and (type(y) is not ndarray or not self.compiled or self._metrics_per_output is None
                              or len(self._compiled_losses) != 1):
            return None
        loss = None if y is None else self._compiled_losses[0]
        # (a loss's own validate_targets, on its class or the object, runs every batch: no shapes known to pass)
        plain = loss is None or (type(loss).validate_targets is losses_module.Loss.validate_targets
                                 and "validate_targets" not in loss.__dict__)
        seen = (x.shape, x.dtype, None if y is None else (y.shape, y.dtype), graph_generation[0], B.floatx(),
                id(loss), getattr(loss, "fn", None))
        if plain and self.__dict__.get("_checked_like") == seen:
            if not B.all_finite(x):
                return None
            if y is None:
                return [x], None
            if loss is None:
                if not B.all_finite(y):
                    return None
            elif not loss.target_values_pass(y, lambda: self._output_shapes_for([x])[0]):
                return None
            return [x], [y]
        input_shapes = self._input_shapes()
        if input_shapes is None or len(input_shapes) != 1:
            return None
        floatx = B.floatx()
        for a in (x,) if y is None else (x, y):
            kind = a.dtype.kind
            if not a.ndim or not (kind in "iub" or a.dtype == floatx):
                return None
            if not B.all_finite(a):
                return None
        n = x.shape[0]
        if n == 0 or y is not None and y.shape[0] != n:
            return None
        shape = input_shapes[0]
        if shape is not None and (x.ndim != len(shape) or not da._dims_fit(shape, x.shape)):
            return None
        if loss is not None:
            loss.validate_targets(y, self._output_shapes_for([x])[0])
        if plain:
            object.__setattr__(self, "_checked_like", seen)  # (not a layer attribute: no new generation)
        return [x], None if y is None else [y]

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, reset_metrics=True, return_dict=False):
        """One gradient step on one batch; returns the loss (and metrics) of that batch."""
        checked = self._checked_batch(x, y) if sample_weight is None and class_weight is None and y is not None \
            else None
        if checked is None:
            xs, ys, sw, _ = self._prepare("train_on_batch", x, y, sample_weight, class_weight)
            self._ensure_ready("train_on_batch", xs, ys)
        else:
            (xs, ys), sw = checked, None
        if getattr(self, "_train_variables", None) is None:
            self._prepare_variables()
        if reset_metrics:
            self._reset_metrics()
        self._train_step(xs, ys, sw)
        return self._format_logs(self._logs(), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, reset_metrics=True, return_dict=False):
        """Loss (and metrics) on one batch, no update."""
        xs, ys, sw, _ = self._prepare("test_on_batch", x, y, sample_weight)
        self._ensure_ready("test_on_batch", xs, ys)
        if reset_metrics:
            self._reset_metrics()
        self._test_step(xs, ys, sw)
        return self._format_logs(self._logs(), return_dict)

    def predict_on_batch(self, x):
        """Outputs for one batch, as host arrays."""
        checked = self._checked_batch(x)
        if checked is None:
            xs, _, _, _ = self._prepare("predict_on_batch", x, need_y=False)
            self._ensure_ready("predict", xs, None)
        else:
            xs = checked[0]
        with no_grad():
            outs = [B.to_host(o.data) for o in self._forward(xs, training=False)]
        return outs[0] if len(outs) == 1 else outs

    # ----------------------------------------------------- Keras 1/2 generators
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, class_weight=None, initial_epoch=0,
                      samples_per_epoch=None, nb_epoch=None, nb_val_samples=None, **ignored):
        """Keras 1/2: ``fit`` on a generator. Keras 1's ``samples_per_epoch`` / ``nb_val_samples`` count
        samples, not batches; they are turned into steps using the size of the first batch."""
        if nb_epoch is not None:
            epochs = nb_epoch
        _warn_ignored("fit_generator", ignored, {"max_queue_size", "max_q_size", "workers", "nb_worker",
                                                 "use_multiprocessing", "pickle_safe", "shuffle"})
        if steps_per_epoch is None and samples_per_epoch is not None:
            steps_per_epoch = self._samples_to_steps(generator, samples_per_epoch)
        if validation_steps is None and nb_val_samples is not None and _is_generator_like(validation_data):
            validation_steps = self._samples_to_steps(validation_data, nb_val_samples)
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data, validation_steps=validation_steps,
                        class_weight=class_weight, initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, val_samples=None, verbose=0, **ignored):
        """Keras 1/2: ``evaluate`` on a generator."""
        _warn_ignored("evaluate_generator", ignored, {"max_queue_size", "max_q_size", "workers", "nb_worker",
                                                      "use_multiprocessing", "pickle_safe"})
        if steps is None and val_samples is not None:
            steps = self._samples_to_steps(generator, val_samples)
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_generator(self, generator, steps=None, val_samples=None, verbose=0, **ignored):
        """Keras 1/2: ``predict`` on a generator."""
        _warn_ignored("predict_generator", ignored, {"max_queue_size", "max_q_size", "workers", "nb_worker",
                                                     "use_multiprocessing", "pickle_safe"})
        if steps is None and val_samples is not None:
            steps = self._samples_to_steps(generator, val_samples)
        return self.predict(generator, steps=steps, verbose=verbose)

    @staticmethod
    def _samples_to_steps(generator, samples) -> int:
        batch_size = getattr(generator, "batch_size", None)
        if batch_size is None:
            raise ValueError("samples_per_epoch / nb_val_samples count samples, but the generator has no "
                             "batch_size attribute to turn them into steps; pass steps_per_epoch / steps instead")
        return max(1, -(-int(samples) // int(batch_size)))

    def _format_logs(self, logs: dict, return_dict: bool):
        if return_dict:
            return logs
        if len(logs) == 1:  # the loss alone (metrics_names lists only names that ``_logs`` has)
            return logs["loss"]
        values = [logs[k] for k in self.metrics_names if k in logs]
        return values[0] if len(values) == 1 else values


def _is_generator_like(x) -> bool:
    """A generator, iterator or ``Sequence`` (not an array, a list of arrays, or a dict)."""
    if x is None or isinstance(x, (dict, list, tuple, Tensor)) or hasattr(x, "shape"):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__") or (hasattr(x, "__getitem__") and hasattr(x, "__len__"))


def _masked_weights(sample_weight, mask, mean_over_valid: bool = False):
    """Sample weights with masked (padded) steps set to zero. For a loss averaged over its elements,
    ``mean_over_valid`` rescales so that the mean runs over the real steps only (as Keras 3)."""
    if mask is None:
        return sample_weight
    weights = mask.astype(B.floatx())
    if mean_over_valid:
        valid = float(weights.sum())
        weights = weights * (weights.size / valid) if valid else weights
    if sample_weight is None:
        return weights
    sample_weight = sample_weight.reshape(sample_weight.shape + (1,) * (weights.ndim - sample_weight.ndim))
    return weights * sample_weight


class _peek:
    """An iterator whose first item was looked at (to build the model) and is still delivered first."""

    def __init__(self, iterable):
        self._iterator = iter(iterable)
        self.first = next(self._iterator)
        self._pending = True

    def __iter__(self):
        return self

    def __next__(self):
        if self._pending:
            self._pending = False
            return self.first
        return next(self._iterator)


def _warn_ignored(method: str, ignored: dict, known: set) -> None:
    unknown = set(ignored) - known
    if unknown:
        raise TypeError(f"{method}: unexpected keyword argument(s) {sorted(unknown)}")
    if ignored:
        warnings.warn(f"{method}: {sorted(ignored)} are ignored (shenjing prepares batches in the training "
                      f"process)", stacklevel=3)


def _legacy_fit_kwargs(kwargs: dict, epochs):
    if "nb_epoch" in kwargs:
        epochs = kwargs.pop("nb_epoch")
    if "show_accuracy" in kwargs:
        kwargs.pop("show_accuracy")
        warnings.warn("fit: show_accuracy is a Keras 1 argument and is ignored; pass metrics=['accuracy'] to "
                      "compile() instead", stacklevel=3)
    if kwargs:
        raise TypeError(f"fit: unexpected keyword argument(s) {sorted(kwargs)}")
    return epochs
