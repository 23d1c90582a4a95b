"""The ``shenjing`` command: ``demo``, ``train``, ``evaluate``, ``predict``, ``summary``.

    shenjing demo [--epochs 5] [--output DIR]            # the seed CNN on the embedded MNIST sample, offline
    shenjing train CONFIG [--output PATH] [--epochs N]   # a JSON / YAML config: model, compile, fit, dataset
    shenjing evaluate MODEL DATA [--target COLUMN]       # DATA: mnist, mnist_sample, fashion_mnist, .csv, .npz, .txt
    shenjing predict MODEL INPUT [--top K]               # INPUT: a PNG / JPEG image, a .npy array, a .csv of features
    shenjing summary MODEL [--plot model.png]

Bad input (a missing file, a wrong shape, an unknown data set, a malformed config) prints
``shenjing <command>: error: <what is wrong>`` on standard error and exits with status 1 (2 for a wrong
command line). ``SHENJING_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from .common import CLIError

__all__ = ["main", "CLIError"]

_TRAIN_EPILOG = """\
config (JSON; YAML needs PyYAML):
  {"model": [{"class_name": "Dense", "config": {"units": 16, "activation": "relu", "input_shape": [4]}},
             {"class_name": "Dense", "config": {"units": 3, "activation": "softmax"}}],
   "compile": {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]},
   "fit": {"epochs": 20, "batch_size": 16, "validation_split": 0.2},
   "dataset": {"csv": "iris.csv", "target": "species"}}

'model' may also be a Sequential config ({"class_name": "Sequential", "config": {"layers": [...]}}), and a
layer may be written {"Dense": {"units": 3}}. 'dataset': mnist, mnist_sample (embedded), fashion_mnist
({"name": "mnist", "path": DIR} reads local IDX files), {"name": "tinyshakespeare", "path": "input.txt",
"seq_len": 64}, or {"csv": FILE, "target": COLUMN} (options: columns, features, task, normalize, shuffle,
test_split). 'compile' defaults to adam and a loss suited to the data; 'callbacks' lists
{"class_name": "EarlyStopping", "config": {...}} entries; 'seed' (default 1).
"""


def _parser() -> tuple:
    parser = argparse.ArgumentParser(prog="shenjing", description="shenjing (神经): deep learning on NumPy, Keras API")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="train the seed CNN on the embedded MNIST sample (no network needed)",
                               description="Train the seed convolutional network on the MNIST sample shipped "
                                           "with shenjing (10,000 training and 2,000 test images), print its "
                                           "test accuracy, and save the model (shenjing_demo.keras) and, when "
                                           "matplotlib is installed, its training curves "
                                           "(shenjing_demo_history.png).")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="progress output (default 1)")
    demo.add_argument("--output", metavar="DIR", default=".",
                      help="folder for shenjing_demo.keras and the plot (default: the current folder)")
    demo.add_argument("--no-plot", action="store_true", help="do not draw the training curves")

    train = commands.add_parser("train", help="train a model described by a JSON or YAML config file",
                                description="Build, compile and train the model a config file describes, on the "
                                            "data set it names, then save it (with what predict and evaluate need "
                                            "to read data the same way: class names, columns, vocabulary).",
                                epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("config", metavar="CONFIG", help="the config file (.json, or .yaml / .yml)")
    train.add_argument("--output", metavar="PATH",
                       help="where to save the model: a .keras / .h5 file, or a folder (created) to hold "
                            "CONFIG_NAME.keras; default: CONFIG_NAME.keras in the current folder")
    train.add_argument("--epochs", type=int, help="override the config's fit epochs")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2), help="progress output (default 1)")
    train.add_argument("--no-plot", action="store_true", help="do not save the training-curve PNG")

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a data set",
                                   description="Load a saved model (.keras / .h5) and print its loss and metrics on "
                                               "DATA: mnist, mnist_sample or fashion_mnist (their test part), a .csv "
                                               "with a target column, an .npz holding arrays x and y, or (for a "
                                               "text model) a .txt file.")
    evaluate.add_argument("model", metavar="MODEL", help="the saved model")
    evaluate.add_argument("data", metavar="DATA", help="a data set name or a .csv / .npz / .txt file")
    evaluate.add_argument("--target", help="the CSV's target column (default: the one the model was trained on)")
    evaluate.add_argument("--batch-size", type=int, default=256, help="batch size (default 256)")
    evaluate.add_argument("--limit", type=int, default=None, help="use only the first N samples")

    predict = commands.add_parser("predict", help="print a saved model's predictions for an input",
                                  description="Load a saved model and print its prediction for INPUT: a PNG / JPEG "
                                              "image (needs Pillow: pip install shenjing[image]), a .npy array (one "
                                              "sample or a batch) or a .csv of feature rows. Classifiers print the "
                                              "class and its probability.")
    predict.add_argument("model", metavar="MODEL", help="the saved model")
    predict.add_argument("input", metavar="INPUT", help="an image, a .npy array or a .csv file")
    predict.add_argument("--top", type=int, default=1, help="print the K most probable classes (default 1)")
    predict.add_argument("--invert", choices=("auto", "yes", "no"), default="auto",
                         help="invert a grayscale image (auto: when its background is light, as MNIST digits are "
                              "light on dark)")
    predict.add_argument("--limit", type=int, default=20, help="print at most N predictions (0: all; default 20)")

    summary = commands.add_parser("summary", help="print a saved model's layers, shapes and parameters",
                                  description="Load a saved model and print its summary table, compile arguments "
                                              "and the data it was trained on.")
    summary.add_argument("model", metavar="MODEL", help="the saved model")
    summary.add_argument("--plot", metavar="PNG", help="also draw the layer graph into this PNG (needs matplotlib)")
    return parser, {"demo": demo, "train": train, "evaluate": evaluate, "predict": predict, "summary": summary}


def main(argv=None) -> int:
    parser, subparsers = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    for name in ("epochs", "top", "batch_size", "limit"):
        value = getattr(args, name, None)
        if value is not None and value <= 0 and not (name == "limit" and value == 0 and args.command == "predict"):
            subparsers[args.command].error(f"--{name.replace('_', '-')} must be a positive integer")
    try:
        return _run(args)
    except (CLIError, FileNotFoundError, IsADirectoryError, PermissionError, ValueError, TypeError, KeyError,
            ImportError, OSError, MemoryError) as err:
        if os.environ.get("SHENJING_DEBUG"):
            raise
        message = str(err) if isinstance(err, (CLIError, ValueError, OSError, ImportError)) else \
            f"{type(err).__name__}: {err}"
        sys.stderr.write(f"shenjing {args.command}: error: {message}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"shenjing {args.command}: interrupted\n")
        return 130


def _run(args) -> int:
    if args.command == "demo":
        from .demo import run_demo

        run_demo(epochs=args.epochs, seed=args.seed, verbose=args.verbose, output=args.output,
                 plot=not args.no_plot)
        return 0
    from . import commands

    if args.command == "train":
        return commands.train(args.config, output=args.output, epochs=args.epochs, verbose=args.verbose,
                              seed=args.seed, plot=not args.no_plot)
    if args.command == "evaluate":
        return commands.evaluate(args.model, args.data, target=args.target, batch_size=args.batch_size,
                                 limit=args.limit)
    if args.command == "predict":
        return commands.predict(args.model, args.input, top=args.top, invert=args.invert, limit=args.limit)
    if args.command == "summary":
        return commands.summary(args.model, plot_path=args.plot)
    raise CLIError(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses it first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
