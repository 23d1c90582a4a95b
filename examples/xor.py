"""XOR with a two-layer network — the classic Keras 1 program, imports changed only.

    python examples/xor.py

Dense(10, tanh) -> Dense(1, sigmoid), SGD(lr=0.1), binary cross-entropy:
41 parameters, 100% accuracy, predict_classes -> [[0], [1], [1], [0]].
"""

import numpy as np

from shenjing.layers.core import Activation, Dense
from shenjing.models import Sequential
from shenjing.optimizers import SGD
from shenjing.utils import set_random_seed


def build_and_train(epochs=1000, seed=7, verbose=0):
    set_random_seed(seed)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype="float32")
    y = np.array([[0], [1], [1], [0]], dtype="float32")

    model = Sequential()
    model.add(Dense(10, input_dim=2))
    model.add(Activation("tanh"))
    model.add(Dense(1))
    model.add(Activation("sigmoid"))

    sgd = SGD(lr=0.1)
    model.compile(loss="binary_crossentropy", optimizer=sgd, metrics=["accuracy"])
    history = model.fit(X, y, batch_size=1, nb_epoch=epochs, verbose=verbose)
    return model, history, X, y


if __name__ == "__main__":
    model, history, X, y = build_and_train(verbose=0)
    model.summary()
    print(f"final loss {history.history['loss'][-1]:.4f}, accuracy {history.history['accuracy'][-1]:.2f}")
    print("probabilities:\n", model.predict_proba(X))
    print("classes:\n", model.predict_classes(X))
