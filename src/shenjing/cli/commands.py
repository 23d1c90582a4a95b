"""``shenjing train``, ``evaluate``, ``predict`` and ``summary``.

A train config (JSON, or YAML with PyYAML installed)::

    {
      "model": [                                   # or "layers": [...]; or {"class_name": "Sequential", "config": ...}
        {"class_name": "Dense", "config": {"units": 16, "activation": "relu", "input_shape": [4]}},
        {"Dense": {"units": 3, "activation": "softmax"}}          # short form: {class name: config}
      ],
      "compile": {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
      "fit": {"epochs": 20, "batch_size": 16, "validation_split": 0.2},
      "dataset": {"csv": "iris.csv", "target": "species"},        # or "mnist_sample", {"name": ...}, ...
      "callbacks": [{"class_name": "EarlyStopping", "config": {"patience": 3}}],    # optional
      "seed": 1                                                   # optional
    }

``compile`` defaults to Adam with a loss that suits the data (categorical cross-entropy and accuracy for
classes, sparse categorical cross-entropy for text, mean squared error for regression).
"""

from __future__ import annotations

import os
import sys
import time

import numpy

from . import data as D
from .common import (
    CLIError,
    check_keys,
    default_model_path,
    describe_loss,
    load_model_file,
    loss_name,
    read_config,
    save_model_with_meta,
)

TOP_KEYS = {"model", "layers", "compile", "fit", "dataset", "callbacks", "seed", "name", "output"}
FIT_KEYS = {"epochs", "batch_size", "validation_split", "shuffle", "verbose", "class_weight", "initial_epoch",
            "steps_per_epoch", "validation_freq", "nb_epoch"}
COMPILE_KEYS = {"optimizer", "loss", "metrics", "loss_weights", "weighted_metrics"}


def _say(message: str = "") -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------- the model
def _layer_entry(entry, index: int) -> dict:
    if isinstance(entry, dict) and "class_name" in entry:
        unknown = set(entry) - {"class_name", "config", "module", "registered_name"}
        if unknown:
            raise CLIError(f"layer {index}: unknown key(s) {sorted(unknown)} beside 'class_name' and 'config'")
        return {"class_name": entry["class_name"], "config": entry.get("config") or {}}
    if isinstance(entry, dict) and len(entry) == 1:  # {"Dense": {"units": 10}}
        (class_name, config), = entry.items()
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise CLIError(f"layer {index} ({class_name}): its config must be a mapping, got {config!r}")
        return {"class_name": class_name, "config": config}
    raise CLIError(f"layer {index}: expected {{\"class_name\": ..., \"config\": {{...}}}} or "
                   f"{{\"ClassName\": {{...}}}}, got {entry!r}"[:300])


def build_model(config: dict, name: str):
    """The model a config describes: a list of layers, or a (Sequential or functional) model config."""
    from ..models import Model
    from ..saving import model_from_config

    spec = config.get("model", config.get("layers"))
    if "model" in config and "layers" in config:
        raise CLIError("give the layers either as 'model' or as 'layers', not both")
    if spec is None:
        raise CLIError("the config has no model: add "
                       "\"model\": [{\"class_name\": \"Dense\", \"config\": {...}}, ...]")
    if isinstance(spec, dict) and "layers" in spec and "class_name" not in spec:
        spec = {"class_name": "Sequential", "config": dict(spec)}  # the inner Sequential config
    if isinstance(spec, list):
        if not spec:
            raise CLIError("the model's layer list is empty")
        entries = [_layer_entry(e, i) for i, e in enumerate(spec)]
        spec = {"class_name": "Sequential", "config": {"name": config.get("name", name), "layers": entries}}
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise CLIError("'model' must be a list of layers or a model config {\"class_name\": \"Sequential\", "
                       "\"config\": {\"layers\": [...]}}")
    if isinstance(spec.get("config"), dict) and isinstance(spec["config"].get("layers"), list) and \
            spec["class_name"] == "Sequential":
        spec = {"class_name": "Sequential",
                "config": dict(spec["config"], layers=[_layer_entry(e, i)
                                                       for i, e in enumerate(spec["config"]["layers"])])}
    try:
        model = model_from_config(spec)
    except (ValueError, TypeError, KeyError) as err:
        raise CLIError(f"cannot build the model: {err}") from None
    if not isinstance(model, Model):
        raise CLIError(f"'model' describes a {type(model).__name__} layer, not a model")
    return model


def _default_compile(data: D.Data) -> dict:
    if data.task == "regression":
        return {"optimizer": "adam", "loss": "mse", "metrics": ["mae"]}
    if data.task == "text":
        return {"optimizer": "adam", "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}
    return {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]}


def _callbacks(specs) -> list:
    from .. import callbacks as callbacks_module
    from .. import callbacks_extra

    if specs is None:
        return []
    if not isinstance(specs, list):
        raise CLIError("'callbacks' must be a list of {\"class_name\": ..., \"config\": {...}}")
    out = []
    for i, entry in enumerate(specs):
        entry = _layer_entry(entry, i)
        cls = getattr(callbacks_module, entry["class_name"], None) or getattr(callbacks_extra, entry["class_name"],
                                                                              None)
        if not isinstance(cls, type) or not issubclass(cls, callbacks_module.Callback):
            raise CLIError(f"callback {i}: unknown callback {entry['class_name']!r}")
        try:
            out.append(cls(**entry["config"]))
        except (TypeError, ValueError) as err:
            raise CLIError(f"callback {i} ({entry['class_name']}): {err}") from None
    return out


# ------------------------------------------------------------------------------------------- train
def _section(config: dict, name: str, what: str, allowed: set, shown: set | None = None) -> dict:
    """A copy of the mapping ``config[name]`` ({} when absent), its keys checked against ``allowed``."""
    section = config.get(name) or {}
    if not isinstance(section, dict):
        raise CLIError(f"'{name}' must be a mapping ({what})")
    check_keys(section, allowed, name, shown)
    return dict(section)


def train(config_path, output=None, epochs=None, verbose=1, seed=None, plot=True) -> int:
    from ..utils import set_random_seed

    config = read_config(config_path)
    check_keys(config, TOP_KEYS, config_path)
    base_dir = os.path.dirname(os.path.abspath(config_path))
    stem = os.path.splitext(os.path.basename(config_path))[0]
    seed = seed if seed is not None else config.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CLIError(f"seed must be an integer, got {seed!r}")
    set_random_seed(seed)

    if "dataset" not in config:
        raise CLIError(f"{config_path}: the config has no 'dataset' (e.g. \"mnist_sample\" or {{\"csv\": \"data.csv\", "
                       f"\"target\": \"column\"}})")
    compile_args = _section(config, "compile", "optimizer, loss, metrics", COMPILE_KEYS)
    data = _load_training_data(config["dataset"], base_dir, seed, describe_loss(compile_args.get("loss")))
    compile_args = dict(_default_compile(data), **compile_args)

    model = build_model(config, stem)
    fit_args = _section(config, "fit", "epochs, batch_size, validation_split, ...", FIT_KEYS,
                        shown=FIT_KEYS - {"nb_epoch"})
    if "nb_epoch" in fit_args:
        fit_args["epochs"] = fit_args.pop("nb_epoch")
    if epochs is not None:
        fit_args["epochs"] = epochs
    fit_args.setdefault("epochs", 1)
    fit_args.setdefault("batch_size", 32)
    fit_args["verbose"] = verbose if verbose is not None else fit_args.get("verbose", 1)

    try:
        model.compile(**compile_args)
    except (ValueError, TypeError) as err:
        raise CLIError(f"compile: {err}") from None
    x = D.fit_inputs(data.x, model, data.meta, "the training data")
    if model_input_unknown(model):
        _build_on(model, x)
    y = D.encode_targets(data.y, model, loss_name(model), data.task, data.num_classes)
    callbacks = _callbacks(config.get("callbacks"))

    model.summary(print_fn=_say)
    _say(f"data: {len(x)} training samples of shape {tuple(x.shape[1:])}" +
         (f", {data.num_classes} classes" if data.num_classes else "") +
         (f"; {len(data.x_test)} test samples" if data.x_test is not None else ""))
    start = time.perf_counter()
    try:
        history = model.fit(x, y, callbacks=callbacks, **fit_args)
    except (ValueError, TypeError) as err:
        raise CLIError(f"fit: {err}") from None
    _say(f"trained {len(history.epoch)} epoch(s) in {time.perf_counter() - start:.1f} s")

    if data.x_test is not None and data.y_test is not None:
        x_test = D.fit_inputs(data.x_test, model, data.meta, "the test data")
        y_test = D.encode_targets(data.y_test, model, loss_name(model), data.task, data.num_classes)
        _print_results(model.evaluate(x_test, y_test, batch_size=fit_args["batch_size"], verbose=0,
                                      return_dict=True), "test")

    output = output if output is not None else config.get("output")
    if output is not None and not isinstance(output, str):
        raise CLIError(f"output must be a path, got {output!r}")
    if output is not None and config.get("output") == output and not os.path.isabs(output):
        output = os.path.join(base_dir, output)
    path = default_model_path(output, stem)
    save_model_with_meta(model, path, data.meta)
    _say(f"saved the model to {path}")
    if plot:
        _plot_history(history, os.path.splitext(path)[0] + "_history.png")
    return 0


def model_input_unknown(model) -> bool:
    return D.model_input_shape(model) is None


def _build_on(model, x) -> None:
    try:
        model.build((None,) + tuple(x.shape[1:]))
    except (ValueError, TypeError) as err:
        raise CLIError(f"cannot build the model for inputs of shape {tuple(x.shape[1:])}: {err}") from None


def _load_training_data(spec, base_dir, seed, loss) -> D.Data:
    if isinstance(spec, dict) and "csv" in spec:
        allowed = {"csv", "target", "features", "columns", "task", "normalize", "shuffle", "test_split", "header",
                   "delimiter"}
        check_keys(spec, allowed, "dataset (csv)")
        return D.load_csv(D.resolve_path(spec["csv"], base_dir), spec, seed=seed, loss=loss)
    return D.load_dataset(spec, base_dir, seed)


def _plot_history(history, path) -> None:
    try:
        from ..plotting import plot_history, require_matplotlib

        require_matplotlib()
    except ImportError:
        from ..plotting import MATPLOTLIB_HINT

        _say(f"training-curve plot skipped: matplotlib is not installed ({MATPLOTLIB_HINT})")
        return
    plot_history(history, path)
    _say(f"saved the training curves to {path}")


def _print_results(results: dict, label: str) -> None:
    _say(f"{label}: " + " - ".join(f"{k}: {float(v):.4f}" for k, v in results.items()))


# ---------------------------------------------------------------------------------------- evaluate
def evaluate(model_path, data_arg, target=None, batch_size=256, verbose=0, limit=None) -> int:
    model, meta = load_model_file(model_path)
    if not getattr(model, "compiled", False):
        raise CLIError(f"the model {model_path!r} was saved without its compile arguments (loss, metrics), so it "
                       f"cannot be evaluated")
    loss = loss_name(model)
    data = _evaluation_data(data_arg, meta, target, loss)
    x, y = data.x, data.y
    if limit:
        x, y = x[:limit], y[:limit]
    x = D.fit_inputs(x, model, data.meta or meta, f"{data_arg}")
    y = D.encode_targets(y, model, loss, data.task, data.num_classes)
    try:
        results = model.evaluate(x, y, batch_size=batch_size, verbose=verbose, return_dict=True)
    except (ValueError, TypeError) as err:
        raise CLIError(f"evaluate: {err}") from None
    _say(f"{len(x)} samples from {data_arg}")
    _print_results(results, "evaluation")
    return 0


def _evaluation_data(arg, meta, target, loss) -> D.Data:
    lower = str(arg).lower()
    if os.path.exists(arg):
        if os.path.isdir(arg):
            raise CLIError(f"{arg!r} is a directory; give a data set name, a .csv, an .npz or a .txt file")
        if lower.endswith(".csv"):
            spec = {"target": target} if target is not None else {}
            if meta.get("dataset") != "csv" and target is None:
                raise CLIError(f"name the target column of {arg!r} with --target")
            return D.load_csv(arg, spec, meta=meta if meta.get("dataset") == "csv" else None, loss=loss)
        if lower.endswith(".npz"):
            x, y = D.load_npz(arg)
            task = "regression" if y.dtype.kind == "f" and not meta.get("num_classes") else "classification"
            if meta.get("dataset") == "tinyshakespeare":
                task = "text"
            return D.Data(x, y, task=task, num_classes=meta.get("num_classes"), meta=meta)
        if lower.endswith(".txt"):
            if meta.get("vocabulary") is None:
                raise CLIError(f"{arg!r}: a text file can only be evaluated with a model trained by shenjing train on "
                               f"text (its vocabulary is saved with it)")
            data = D.load_text(arg, {}, meta)
            return data
        raise CLIError(f"cannot tell what {arg!r} holds from its name; expected .csv, .npz or .txt")
    name = str(arg)
    if name in ("mnist", "mnist_sample", "fashion_mnist"):
        data = D.load_named(name, {})
        return D.Data(data.x_test, data.y_test, task="classification", num_classes=10, meta=data.meta)
    if name == "tinyshakespeare":
        raise CLIError("give the text file itself: shenjing evaluate MODEL path/to/input.txt")
    if lower.endswith((".csv", ".npz", ".txt")):
        raise CLIError(f"the data file {arg!r} does not exist")
    raise CLIError(f"unknown data set {arg!r} (and no such file); expected mnist, mnist_sample, fashion_mnist, or a "
                   f".csv, .npz or .txt file")


# ----------------------------------------------------------------------------------------- predict
def predict(model_path, input_path, top=1, invert="auto", limit=20, batch_size=256) -> int:
    model, meta = load_model_file(model_path, compile=False)
    x, note = D.load_predict_input(input_path, model, meta, invert)
    try:
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
    except (ValueError, TypeError) as err:
        raise CLIError(f"predict: {err}") from None
    outputs = numpy.asarray(outputs)
    _say(f"{os.path.basename(input_path)}: {note}")
    names = meta.get("class_names")
    vocabulary = meta.get("vocabulary")
    shown = outputs[:limit] if limit else outputs
    for i, row in enumerate(shown):
        _say(f"{i}: " + describe_prediction(row, names, vocabulary, top))
    if limit and len(outputs) > limit:
        _say(f"... {len(outputs) - limit} more (--limit 0 prints every one)")
    return 0


def _is_probabilities(row) -> bool:
    return row.ndim == 1 and row.size > 1 and (row >= -1e-6).all() and abs(float(row.sum()) - 1) < 1e-3


def describe_prediction(row, class_names=None, vocabulary=None, top=1) -> str:
    row = numpy.asarray(row, dtype="float64")
    if row.ndim > 1:  # one prediction per time step: describe the last
        row = row[-1]
    labels = class_names or (list(vocabulary) if vocabulary else None)

    def label(k):
        if labels is not None and k < len(labels):
            return repr(labels[k]) if vocabulary and not class_names else str(labels[k])
        return str(k)

    if _is_probabilities(row):
        order = numpy.argsort(-row)[:max(1, top)]
        return ", ".join(f"class {label(int(k))} (probability {row[k]:.4f})" for k in order)
    if row.size == 1 and 0 <= row[0] <= 1 and (class_names is None or len(class_names) <= 2):
        k = int(row[0] >= 0.5)
        p = row[0] if k else 1 - row[0]
        return f"class {label(k)} (probability {p:.4f})"
    if row.size > 1 and labels is not None:  # scores (e.g. logits) of a classifier
        k = int(row.argmax())
        return f"class {label(k)} (score {row[k]:.4f})"
    return "value " + ", ".join(f"{v:.6g}" for v in row)


# ----------------------------------------------------------------------------------------- summary
def summary(model_path, plot_path=None) -> int:
    model, meta = load_model_file(model_path)
    model.summary(print_fn=_say)
    if getattr(model, "compiled", False):
        from ..saving.serialization import compile_config

        config = compile_config(model) or {}
        optimizer = config.get("optimizer")
        if isinstance(optimizer, dict):
            optimizer = optimizer.get("class_name", optimizer)
        _say(f"compiled: optimizer {optimizer}, loss {describe_loss(config.get('loss')) or '?'}, "
             f"metrics {config.get('metrics') or []}")
    else:
        _say("not compiled (saved without its compile arguments)")
    if meta:
        parts = [f"data set: {meta.get('dataset', '?')}"]
        if meta.get("class_names"):
            parts.append(f"classes: {', '.join(map(str, meta['class_names'][:20]))}")
        if meta.get("features"):
            parts.append(f"features: {', '.join(meta['features'][:20])}")
        if meta.get("vocabulary"):
            parts.append(f"vocabulary: {len(meta['vocabulary'])} characters, seq_len {meta.get('seq_len')}")
        _say("; ".join(parts))
    if plot_path:
        try:
            from ..plotting import plot_model
            plot_model(model, plot_path)
        except ImportError as err:
            raise CLIError(str(err)) from None
        _say(f"saved the model's graph to {plot_path}")
    return 0
