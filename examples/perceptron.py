"""Rosenblatt's perceptron with the classic perceptron rule, on a linearly separable set.

    python examples/perceptron.py

Prediction: step(w·x + b) with the Heaviside step (shenjing.activations.step).
Rule: for each misclassified sample, w += lr·(target − prediction)·x, b += lr·(target − prediction).
On separable data it stops after finitely many updates with zero errors (Novikoff's theorem).
"""

import numpy as np

from shenjing import activations
from shenjing.autodiff import Tensor


def make_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 2))
    margin = X @ np.array([1.5, -1.0]) + 0.2
    keep = np.abs(margin) > 0.1  # a clear margin makes the set separable with room to spare
    return X[keep], (margin[keep] > 0).astype("float64")


def train_perceptron(X, y, learning_rate=0.1, max_epochs=100):
    w = np.zeros(X.shape[1])
    b = 0.0
    errors_per_epoch = []
    for _ in range(max_epochs):
        errors = 0
        for xi, target in zip(X, y):
            prediction = float(activations.step(Tensor(xi @ w + b)).data)
            update = learning_rate * (target - prediction)
            if update:
                w += update * xi
                b += update
                errors += 1
        errors_per_epoch.append(errors)
        if errors == 0:
            break
    return w, b, errors_per_epoch


if __name__ == "__main__":
    X, y = make_data()
    w, b, errors = train_perceptron(X, y)
    predictions = activations.step(Tensor(X @ w + b)).data
    print(f"errors per epoch: {errors}")
    print(f"final weights {w.round(3)}, bias {b:.3f}; training errors: {int((predictions != y).sum())}")
