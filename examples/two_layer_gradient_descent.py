"""A two-layer sigmoid network trained by plain full-batch gradient descent, written with tensors.

    python examples/two_layer_gradient_descent.py

Forward: h = σ(X·W1 + b1), ŷ = σ(h·W2 + b2); loss = Σ (ŷ − y)² (sum of squares);
backward by shenjing's autodiff; update W -= lr · ∂loss/∂W on the whole batch, 1,500 times.
"""

import numpy as np

from shenjing.autodiff import Tensor, nn


def train(iterations=1500, learning_rate=0.5, seed=1):
    rng = np.random.default_rng(seed)
    X = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype="float64")
    y = np.array([[0], [1], [1], [0]], dtype="float64")
    params = {
        "W1": Tensor(rng.normal(0, 1, (3, 4)), requires_grad=True),
        "b1": Tensor(np.zeros(4), requires_grad=True),
        "W2": Tensor(rng.normal(0, 1, (4, 1)), requires_grad=True),
        "b2": Tensor(np.zeros(1), requires_grad=True),
    }
    losses = []
    for _ in range(iterations):
        hidden = nn.sigmoid(Tensor(X) @ params["W1"] + params["b1"])
        prediction = nn.sigmoid(hidden @ params["W2"] + params["b2"])
        loss = ((prediction - y) ** 2).sum()
        loss.backward()
        for p in params.values():
            p.data -= learning_rate * p.grad
            p.grad = None
        losses.append(float(loss.data))
    return losses, prediction.data


if __name__ == "__main__":
    losses, prediction = train()
    print(f"loss: start {losses[0]:.4f}, after 500 {losses[499]:.4f}, after 1500 {losses[-1]:.4f}")
    print("monotonically decreasing:", all(b <= a for a, b in zip(losses, losses[1:])))
    print("predictions:", prediction.ravel().round(3))
