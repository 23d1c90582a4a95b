"""``shenjing demo``: the seed CNN on the embedded MNIST sample, end to end, offline; saves the trained
model (``shenjing_demo.keras``) and, when matplotlib is installed, its training curves
(``shenjing_demo_history.png``)."""

from __future__ import annotations

import os
import time

from .. import layers
from ..datasets import mnist
from ..models import Sequential
from ..optimizers import SGD
from ..utils import set_random_seed, to_categorical


def seed_cnn() -> Sequential:
    """The seed program's network (channels-last): Conv 4@5x5 tanh → Conv 8@3x3 tanh → MaxPool 2 →
    Conv 16@3x3 relu → MaxPool 2 → Dense 128 tanh → Dense 10 softmax."""
    return Sequential([
        layers.Conv2D(4, 5, activation="tanh", input_shape=(28, 28, 1)),
        layers.Conv2D(8, 3, activation="tanh"),
        layers.MaxPooling2D(2),
        layers.Conv2D(16, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="tanh", kernel_initializer="normal"),
        layers.Dense(10, activation="softmax", kernel_initializer="normal"),
    ], name="seed_cnn")


MODEL_FILE = "shenjing_demo.keras"
PLOT_FILE = "shenjing_demo_history.png"


def run_demo(epochs: int = 5, seed: int = 1, verbose: int = 1, output: str | None = ".", plot: bool = True) -> float:
    """Train and evaluate; save the model and the training-curve PNG into ``output`` (a folder, created if
    needed; ``None`` saves nothing); returns the test accuracy."""
    set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = mnist.load_sample()
    x_train = x_train.reshape(-1, 28, 28, 1).astype("float32") / 255
    x_test = x_test.reshape(-1, 28, 28, 1).astype("float32") / 255
    y_train, y_test = to_categorical(y_train, 10), to_categorical(y_test, 10)
    print(f"MNIST sample shipped with shenjing: {len(x_train)} training and {len(x_test)} test images")

    model = seed_cnn()
    model.compile(optimizer=SGD(learning_rate=0.05, momentum=0.9, nesterov=True, decay=1e-6),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=100, epochs=epochs, validation_split=0.1, verbose=verbose)
    elapsed = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=500, verbose=0)
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f}); trained in {elapsed:.1f} s")
    if output is not None:
        save_outputs(model, history, output, plot)
    return accuracy


def save_outputs(model, history, output: str, plot: bool = True) -> None:
    from ..saving import save_model

    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, MODEL_FILE)
    save_model(model, path)
    print(f"saved the trained model to {path} (try: shenjing summary {path})")
    if not plot:
        return
    try:
        from ..plotting import plot_history, require_matplotlib

        require_matplotlib()
    except ImportError:
        from ..plotting import MATPLOTLIB_HINT

        print(f"training-curve plot skipped: matplotlib is not installed; to get it: {MATPLOTLIB_HINT}")
        return
    plot_path = os.path.join(output, PLOT_FILE)
    plot_history(history, plot_path)
    print(f"saved the training curves to {plot_path}")
