"""Vanishing gradients, seen layer by layer.

Three networks of ten hidden Dense layers (64 units each) and a softmax output, trained with the same
budget (1 epoch of SGD with momentum on 5,000 images of the MNIST sample shipped with shenjing):

- ``sigmoid``: sigmoid after every hidden layer. Each sigmoid multiplies the backward signal by at most
  0.25, so the gradient reaching the first layers is orders of magnitude smaller than at the top;
- ``relu``: the same network with ReLU (derivative 1 where active);
- ``sigmoid+bn``: the sigmoid network with BatchNormalization before each sigmoid, which keeps the
  pre-activations near 0, where the sigmoid's slope is largest.

A GradientMonitor callback records each layer's gradient norm (mean over the epoch's steps). The program
prints the per-layer norms, the ratio of the first hidden layer's gradient norm to the output layer's
for each network, and the test accuracy; with matplotlib installed it saves the per-layer gradient norms
of the three networks in one plot (``vanishing_gradients.png``).

    python examples/vanishing_gradients.py [--samples 5000] [--epochs 1] [--output vanishing_gradients.png]
"""

import argparse
import warnings

from shenjing import layers
from shenjing.callbacks_extra import GradientMonitor
from shenjing.datasets import mnist
from shenjing.models import Sequential
from shenjing.optimizers import SGD
from shenjing.utils import set_random_seed, to_categorical

DEPTH = 10
WIDTH = 64
NETWORKS = ("sigmoid", "relu", "sigmoid+bn")


def build(kind: str, depth: int = DEPTH, width: int = WIDTH) -> Sequential:
    """``depth`` hidden Dense layers named dense_1 … dense_<depth>, then the softmax layer 'output'."""
    model = Sequential(name=kind.replace("+", "_"))
    for i in range(1, depth + 1):
        shape = {"input_shape": (784,)} if i == 1 else {}
        if kind == "sigmoid+bn":
            model.add(layers.Dense(width, name=f"dense_{i}", **shape))
            model.add(layers.BatchNormalization(momentum=0.9, name=f"batch_norm_{i}"))  # short budget
            model.add(layers.Activation("sigmoid", name=f"sigmoid_{i}"))
        else:
            model.add(layers.Dense(width, activation=kind, name=f"dense_{i}", **shape))
    model.add(layers.Dense(10, activation="softmax", name="output"))
    return model


def load(samples: int):
    (x_train, y_train), (x_test, y_test) = mnist.load_sample()
    x_train = x_train[:samples].reshape(-1, 784).astype("float32") / 255
    x_test = x_test.reshape(-1, 784).astype("float32") / 255
    return (x_train, to_categorical(y_train[:samples], 10)), (x_test, to_categorical(y_test, 10))


def run(samples: int = 5000, epochs: int = 1, seed: int = 1, depth: int = DEPTH, verbose: int = 0) -> dict:
    """Train the three networks; returns ``{network: {'norms': {layer: grad norm}, 'ratio': first/last,
    'accuracy': test accuracy}}`` (norms of the last epoch, for the Dense layers, input to output)."""
    (x_train, y_train), (x_test, y_test) = load(samples)
    results = {}
    for kind in NETWORKS:
        set_random_seed(seed)
        model = build(kind, depth)
        model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        monitor = GradientMonitor(verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the sigmoid network's warnings are the point; the table says it all
            model.fit(x_train, y_train, batch_size=50, epochs=epochs, callbacks=[monitor], verbose=verbose)
        dense = [f"dense_{i}" for i in range(1, depth + 1)] + ["output"]
        norms = {name: monitor.history[name][-1][0] for name in dense}
        _, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
        results[kind] = {"norms": norms, "ratio": norms["dense_1"] / norms["output"], "accuracy": float(accuracy),
                         "alerts": list(monitor.alerts)}
    return results


def report(results: dict) -> None:
    names = list(next(iter(results.values()))["norms"])
    print("gradient norm per layer (mean over the last epoch's steps)")
    print(f"{'layer':<10s}" + "".join(f"{kind:>14s}" for kind in results))
    for name in names:
        print(f"{name:<10s}" + "".join(f"{r['norms'][name]:14.3e}" for r in results.values()))
    print()
    for kind, r in results.items():
        print(f"{kind:<11s} first/last layer gradient ratio {r['ratio']:.3e}   test accuracy {r['accuracy']:.4f}")
    for kind, r in results.items():
        flagged = sorted({(layer, what) for _, layer, what, _, _ in r["alerts"]})
        if flagged:
            print(f"GradientMonitor flagged in {kind}: " + ", ".join(f"{layer} ({what})" for layer, what in flagged))


def plot(results: dict, path: str) -> bool:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install shenjing[plot])")
        return False
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    for kind, r in results.items():
        names = list(r["norms"])
        ax.semilogy(range(1, len(names) + 1), [r["norms"][n] for n in names], "-o", markersize=4,
                    label=f"{kind} (first/last {r['ratio']:.1e})")
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([n.replace("dense_", "") for n in names])
    ax.set_xlabel("Dense layer (1 = next to the input)")
    ax.set_ylabel("gradient norm")
    ax.set_title("per-layer gradient norm, 10 hidden layers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path)
    print(f"saved the plot to {path}")
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000, help="training images (default 5000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    parser.add_argument("--output", default="vanishing_gradients.png", help="the plot's file name")
    args = parser.parse_args(argv)
    results = run(args.samples, args.epochs)
    report(results)
    plot(results, args.output)


if __name__ == "__main__":
    main()
